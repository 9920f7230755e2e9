"""The reference firmware (firmware_bridge/firmware/) runs: MicroPython's WebAssembly port under
Node.js executes its encoder, touch filter and main loop on a simulated Pico and panel
(tests/firmware_wasm/sim/), and the host decoder reads what it wrote.

Needs node and npm; the MicroPython package is installed on first use into .cache/ (git-ignored).
"""
import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest

from firmware_bridge import inkstream
from firmware_bridge.firmware import touch

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).parent / "firmware_wasm"
VECTORS = json.loads((REPO / "tests" / "fixtures" / "bridge" / "inkstream_vectors.json").read_text())
NPM_PACKAGE = "@micropython/micropython-webassembly-pyscript"
NPM_VERSION = "1.27.0"  # the version this test was written against
NPM_PREFIX = REPO / ".cache" / "micropython-wasm"
MP_DIR = NPM_PREFIX / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"

PERIOD_US = 5000          # main.RATE_HZ = 200
TICK_START = 2**30 - 400_000  # MicroPython's ticks_us wraps 0.4 s into the run
START_US, STOP_US, END_US = 50_000, 1_500_000, 2_300_000
BOOTSEL_US = 1_950_000  # BOOTSEL held from here: the loop stops at the next heartbeat (2 s)
FULL = 65535


def _grid(q12):
    """A 16-bit position the RP2040's 12-bit ADC reads exactly."""
    return (q12 << 4) | (q12 >> 8)


# What the pen does (µs since the firmware started; positions in ADC counts; contact ohms).
TOUCHES = [
    dict(from_us=200_000, to_us=400_000, x=[20000, 30000], y=[40000, 35000], r_ohm=300),
    # 7 ms off the panel (one or two readings): a bounce, not a lift
    dict(from_us=407_000, to_us=500_000, x=[30000, 30000], y=[35000, 30000], r_ohm=300),
    # one reading far away: a glitch, skipped
    dict(from_us=500_000, to_us=505_000, x=[60000, 60000], y=[5000, 5000], r_ohm=300),
    dict(from_us=505_000, to_us=600_000, x=[_grid(1875)] * 2, y=[_grid(1870)] * 2, r_ohm=800),
    dict(from_us=990_000, to_us=1_100_000, x=[_grid(600)] * 2, y=[_grid(3100)] * 2, r_ohm=100),
    # after STOP: must not be sent
    dict(from_us=1_600_000, to_us=1_700_000, x=[30000, 30000], y=[30000, 30000], r_ohm=300),
]
STROKES = [(200_000, 600_000), (990_000, 1_100_000)]  # touch-down .. lift while streaming
PANEL = dict(rx_ohm=touch.R_X_PLATE, ry_ohm=300.0)
SESSION = 0x1234
TOUCH_READINGS = [(30000, 20000, 20000, 20000), (30000, 20000, 20000, 30000), (31000, 20100, 20000, 30000),
                  (31000, 20100, 0, 65535), (31000, 20100, 0, 65535), (31000, 20100, 0, 65535)]


def _touch_at(t_us):
    for seg in TOUCHES:
        if seg["from_us"] <= t_us < seg["to_us"]:
            f = (t_us - seg["from_us"]) / (seg["to_us"] - seg["from_us"])
            return (seg["x"][0] + f * (seg["x"][1] - seg["x"][0]),
                    seg["y"][0] + f * (seg["y"][1] - seg["y"][0]), seg["r_ohm"])
    return None


def _install_micropython() -> Path:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} (Node.js) to run MicroPython's WebAssembly port")
    package_json = MP_DIR / "package.json"
    if not (package_json.exists() and json.loads(package_json.read_text())["version"] == NPM_VERSION):
        NPM_PREFIX.mkdir(parents=True, exist_ok=True)
        cmd = ["npm", "install", "--prefix", str(NPM_PREFIX), "--no-audit", "--no-fund", "--save-exact",
               f"{NPM_PACKAGE}@{NPM_VERSION}"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.skip(f"npm install {NPM_PACKAGE}@{NPM_VERSION} timed out (no registry?)")
        if done.returncode != 0:
            pytest.skip(f"npm install {NPM_PACKAGE}@{NPM_VERSION} failed (no registry?): "
                        f"{done.stderr.strip()[-300:]}")
    return MP_DIR / "micropython.mjs"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The firmware's run on the simulated board: (frames the host decoded, decoder, sim result)."""
    mp_module = _install_micropython()
    describe = inkstream.encode_command(inkstream.DESCRIBE, 0)
    assert 3 in describe  # an 0x03 byte, which a board's REPL takes for Ctrl-C
    scenario = dict(
        tick_start=TICK_START, end_us=END_US, bootsel_from_us=BOOTSEL_US, urandom_hex=SESSION.to_bytes(2, "little").hex(),
        panel=PANEL, touches=TOUCHES,
        commands=[dict(at_us=START_US, hex=(describe + inkstream.encode_command(inkstream.START, 1)).hex()),
                  dict(at_us=800_000, hex=inkstream.encode_command(inkstream.DESCRIBE, 2).hex()),
                  dict(at_us=STOP_US, hex=inkstream.encode_command(inkstream.STOP, 3).hex())],
        vectors=VECTORS["device_to_host"], touch_readings=TOUCH_READINGS)
    path = tmp_path_factory.mktemp("firmware_wasm") / "scenario.json"
    path.write_text(json.dumps(scenario))
    done = subprocess.run(["node", str(HERE / "run_firmware.mjs"), str(mp_module),
                           str(REPO / "firmware_bridge" / "firmware"), str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    decoder = inkstream.InkstreamDecoder()
    frames = decoder.feed_frames(bytes.fromhex(out["uart_hex"]))
    return frames, decoder, out["result"]


def test_the_main_loop_runs_until_bootsel_gives_the_repl_back(run):
    _, _, result = run
    # It got past the host's 0x03 bytes (data, not Ctrl-C) and the ticks wrap at 0.4 s.
    assert result["ended"] == "main returned", result["ended"]
    assert 2_000_000 <= result["sim_us"] < 2_010_000
    assert result["kbd_intr_char"] == 3  # Ctrl-C works again in the REPL
    assert result["adc_reads"] > 0


def test_the_firmware_encoder_makes_the_shared_vectors_byte_for_byte(run):
    _, _, result = run
    assert result["vectors"] == [v["hex"] for v in VECTORS["device_to_host"]]


def test_the_touch_filter_does_under_micropython_what_it_does_under_cpython(run):
    _, _, result = run
    f = touch.TouchFilter()
    expected = [f.update(*r) for r in TOUCH_READINGS]
    assert [tuple(r) if r is not None else None for r in result["touch_reports"]] == expected
    assert any(r is not None and r[3] for r in expected) and any(r is not None and not r[3] for r in expected)


def test_the_host_decodes_every_frame_in_sequence(run):
    frames, decoder, _ = run
    assert decoder.errors.total_bad_frames() == 0 and decoder.errors.lost == 0 and decoder.errors.stale == 0
    assert not decoder.describe_wanted
    assert [f.seq for f in frames] == [i % 256 for i in range(len(frames))]


def test_hello_at_boot_and_in_answer_to_describe(run):
    frames, _, _ = run
    hellos = [(i, f) for i, f in enumerate(frames) if isinstance(f, inkstream.HelloFrame)]
    assert [i for i, _ in hellos][0] == 0 and len(hellos) == 3  # boot, and two DESCRIBEs
    for _, h in hellos:
        assert (h.version, h.x_max, h.y_max, h.pressure_max, h.rate_hz, h.session, h.name) == (
            1, FULL, FULL, touch.PRESSURE_MAX, 1_000_000 // PERIOD_US, SESSION, "rp2040-resistive")
        assert h.units_per_mm == pytest.approx(FULL / 160.0, abs=0.01)


def test_heartbeats_every_second_say_whether_streaming(run):
    frames, _, _ = run
    beats = [f for f in frames if isinstance(f, inkstream.HeartbeatFrame)]
    assert [round(b.t_us / 1e6) for b in beats] == [0, 1, 2]
    assert all(abs(b.t_us - round(b.t_us / 1e6) * 1_000_000) <= 1000 for b in beats)
    assert [b.streaming for b in beats] == [START_US <= b.t_us < STOP_US for b in beats] == [False, True, False]


def test_samples_follow_the_pen_on_the_panel(run):
    frames, _, _ = run
    samples = [f for f in frames if isinstance(f, inkstream.SampleFrame)]
    times = [s.t_us for s in samples]
    assert all(START_US <= t < STOP_US for t in times)
    assert all(b > a and (b - a) % PERIOD_US == 0 for a, b in zip(times, times[1:]))
    # One pen-left sample per stroke: the bounce does not split stroke 1, the touch after STOP
    # sends nothing.
    lifts = [i for i, s in enumerate(samples) if s.flags == 0]
    assert len(lifts) == len(STROKES) and lifts[-1] == len(samples) - 1
    start = 0
    for (down_us, up_us), lift in zip(STROKES, lifts):
        stroke, left = samples[start:lift], samples[lift]
        start = lift + 1
        # Down after two touching readings, up after three readings off the panel.
        assert down_us + PERIOD_US <= stroke[0].t_us < down_us + 2 * PERIOD_US
        assert up_us + 2 * PERIOD_US <= left.t_us < up_us + 3 * PERIOD_US
        assert all(s.flags == inkstream.FLAG_TIP | inkstream.FLAG_PROXIMITY for s in stroke)
        assert (left.x, left.y, left.pressure) == (stroke[-1].x, stroke[-1].y, 0)
        for s in stroke:
            x, y, r = _touch_at(s.t_us)
            assert abs(s.x - x) <= 40 and abs(s.y - y) <= 40, (s, x, y)  # 12-bit ADC, pen moving
            assert abs(s.pressure - touch.pressure_of(r)) <= 2, (s, r)
        assert all(math.hypot(b.x - a.x, b.y - a.y) < 1000 for a, b in zip(stroke, stroke[1:]))  # no glitch
    # (The tap has a sample at 1 s, with the heartbeat: the sample must go first.)
    # One reading per period while touching, less: the first (debounce), the two in the bounce,
    # the glitch.
    assert [lifts[0], lifts[1] - lifts[0] - 1] == [80 - 1 - 2 - 1, 22 - 1]
    # The stationary dot and tap are read exactly.
    assert (samples[lifts[0]].x, samples[lifts[0]].y) == (_grid(1875), _grid(1870))
    assert (samples[lifts[1]].x, samples[lifts[1]].y) == (_grid(600), _grid(3100))
