"""Training, resume, DDP on CPU (gloo), and export parity, on the small UNIPEN fixture."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training tests need the 'train' extra (torch)")

from conftest import FIXTURES, REPO  # noqa: E402

WORDS = FIXTURES / "train" / "unipen_words_48.npz"
TINY = ["--train", f"npz:{WORDS}", "--val", f"npz:{WORDS}", "--data-root", str(FIXTURES),
        "--hidden-size", "32", "--num-layers", "2", "--input-size", "16", "--max-batch-frames", "3000",
        "--no-progress", "--workers", "1", "--threads", "1"]


def _train(out, *extra, env=None, **kw):
    cmd = [sys.executable, "-m", "runtime.app.cli", "train", "--out", str(out), "--cache-dir", str(out / "cache"), *TINY, *extra]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=240, **kw)


def _weights(path):
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return ckpt["step"], ckpt["model"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    r = _train(out, "--max-steps", "40", "--eval-every", "20", "--keep-every", "20")
    assert r.returncode == 0, r.stderr[-2000:]
    return out


def test_train_runs_to_a_checkpoint_with_metrics_and_curves(tiny_run):
    for name in ("best.pt", "last.pt", "metrics.jsonl", "curves.png", "config.json"):
        assert (tiny_run / name).exists(), name
    rows = [json.loads(l) for l in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if r["kind"] == "val"]
    assert [r["step"] for r in val] == [20, 40]
    assert all(0.0 <= r["cer"] <= 1.5 for r in val)
    ckpt = torch.load(tiny_run / "last.pt", map_location="cpu", weights_only=False)
    assert ckpt["model_config"]["hidden_size"] == 32 and ckpt["step"] == 40
    assert "optimizer" in ckpt and "rng" in ckpt


def test_loss_goes_down_on_the_fixture(tiny_run):
    rows = [json.loads(l) for l in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if r["kind"] == "train"]
    assert losses[-1] < losses[0]


def test_widening_preserves_the_function_and_init_grows_a_trained_model(tiny_run, tmp_path):
    from training.model import ModelConfig, OnlineLSTMCTC, widen_state_dict

    ckpt = torch.load(tiny_run / "best.pt", map_location="cpu", weights_only=False)
    small_cfg = ModelConfig(**ckpt["model_config"])
    small = OnlineLSTMCTC(small_cfg).eval()
    small.load_state_dict(ckpt["model"])
    wide = OnlineLSTMCTC(ModelConfig(**{**ckpt["model_config"], "hidden_size": 48})).eval()
    wide.load_state_dict(widen_state_dict(wide, ckpt["model"], small_cfg))
    x = torch.randn(2, 30, small_cfg.num_features, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(small(x)[0], wide(x)[0], atol=1e-6)
    with pytest.raises(ValueError, match="only hidden_size"):
        widen_state_dict(OnlineLSTMCTC(ModelConfig(**{**ckpt["model_config"], "num_layers": 3})), ckpt["model"], small_cfg)

    # through the command line: --init from the 32-unit run into a 48-unit model, then training on
    r = _train(tmp_path / "wide", "--init", str(tiny_run / "best.pt"), "--max-steps", "5", "--eval-every", "5",
               *("--hidden-size", "48"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "widened 32 -> 48" in r.stdout
    grown = torch.load(tmp_path / "wide" / "last.pt", map_location="cpu", weights_only=False)
    assert grown["model_config"]["hidden_size"] == 48 and grown["step"] == 5


def test_learning_rate_schedules():
    from training.train import TrainConfig, learning_rate

    cos = TrainConfig(train=("npz:x.npz",), schedule="cosine", lr=1e-3, min_lr=1e-5, warmup_steps=10, max_steps=110)
    lrs = [learning_rate(cos, s) for s in range(111)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)  # warm-up
    assert lrs[60] == pytest.approx((1e-3 + 1e-5) / 2)  # half way down
    assert lrs[110] == pytest.approx(1e-5) and all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    plateau = TrainConfig(train=("npz:x.npz",), lr=1e-3, min_lr=1e-5, warmup_steps=10)
    assert learning_rate(plateau, 500) == pytest.approx(1e-3)
    assert learning_rate(plateau, 500, lr_scale=0.25) == pytest.approx(2.5e-4)
    assert learning_rate(plateau, 500, lr_scale=1e-6) == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(train=("npz:x.npz",), schedule="linear")


def test_killed_run_resumes_exactly(tmp_path):
    unbroken = tmp_path / "unbroken"
    # augmentation on: its random draws are part of the state a resume must restore
    aug = ("--augment-shear", "0.3", "--augment-stretch", "0.2")
    r = _train(unbroken, "--max-steps", "24", "--eval-every", "12", "--ckpt-every", "2", *aug)
    assert r.returncode == 0, r.stderr[-2000:]

    broken = tmp_path / "broken"
    # the killed run is told to go on much longer, so it cannot finish before the kill; the
    # resumed run stops at 24 like the unbroken one (max_steps changes nothing else)
    cmd = [sys.executable, "-m", "runtime.app.cli", "train", "--out", str(broken), "--cache-dir", str(broken / "cache"),
           *TINY, "--max-steps", "100000", "--eval-every", "12", "--ckpt-every", "2", *aug]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        last = broken / "last.pt"
        if last.exists():
            try:
                step = torch.load(last, map_location="cpu", weights_only=False)["step"]
            except Exception:  # being replaced right now; atomic rename means the next read works
                step = 0
            if step >= 6:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                killed_at = step
                break
        time.sleep(0.05)
    assert killed_at is not None, "the run stalled before it wrote a checkpoint at step 6"
    assert killed_at < 24
    r = _train(broken, "--max-steps", "24", "--eval-every", "12", "--ckpt-every", "2", "--resume", *aug)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "[resume]" in r.stdout
    step_a, wa = _weights(unbroken / "last.pt")
    step_b, wb = _weights(broken / "last.pt")
    assert step_a == step_b == 24
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_ddp_on_cpu_with_gloo_two_processes(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "runtime.app.cli", "train", "--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache"), *TINY,
           "--max-steps", "6", "--eval-every", "6"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, (r.stdout[-1500:], r.stderr[-3000:])
    assert "DDP x2" in r.stdout
    step, _ = _weights(tmp_path / "last.pt")
    assert step == 6


def test_a_bad_start_is_one_line_not_a_traceback(tmp_path):
    # a model --init cannot grow into (the shipped model is wider than the tiny one), a held-out
    # set as training data, a missing corpus
    for extra, message in (
            (["--init", str(REPO / "runtime" / "models" / "model.onnx")], "only a larger hidden_size"),
            (["--train", "iamondb:val"], "may not be trained on"),
            (["--train", f"npz:{tmp_path / 'missing.npz'}"], "missing.npz")):
        r = _train(tmp_path / "out", *extra)
        assert r.returncode != 0
        assert "inkstream train: " in r.stderr and message in r.stderr, r.stderr[-1500:]
        assert "Traceback" not in r.stderr


def test_training_refuses_held_out_sets():
    from training.data import _source_samples

    for name in ("iamondb:val", "iamondb:test", "unipen-text:val", "imadocsen-sentences:val", "imadocsen-words:val"):
        with pytest.raises(ValueError, match="may not be trained on"):
            next(_source_samples(name, str(FIXTURES), for_training=True))
    with pytest.raises(ValueError, match="validation writers too"):
        next(_source_samples("imadocsen-words", str(FIXTURES), for_training=True))


def test_imadocsen_is_split_by_writer():
    from conftest import need_shared
    from training.data import IMADOCSEN_VAL_WRITERS, _source_samples

    from runtime.ink import load_corpus

    path = need_shared("imadocsen", "sentences.npz")
    corpus = load_corpus(path)
    writer_of = dict(zip(corpus.ids.tolist(), corpus.writers.tolist()))
    writers = lambda split: {writer_of[i] for _, _, i in _source_samples(
        f"imadocsen-sentences:{split}", str(path.parents[1]), for_training=split == "train")}
    train, val = writers("train"), writers("val")
    assert val == set(IMADOCSEN_VAL_WRITERS) and not train & val and len(train) == 20


def test_bad_config_names_the_field():
    from training.train import TrainConfig

    with pytest.raises(ValueError, match="lr"):
        TrainConfig(lr=0)
    with pytest.raises(ValueError, match="weight"):
        TrainConfig(train=("iamondb:train=abc",))


def test_export_parity_metadata_and_runtime_load(tiny_run, tmp_path):
    from export.onnx_export import export_checkpoint
    from runtime.model import METADATA_KEYS, OnnxModel
    from runtime.recognizer import StreamingRecognizer
    from runtime.ink import load_corpus

    res = export_checkpoint(tiny_run / "best.pt", tmp_path)
    assert res["parity_max_abs_diff"] < 1e-4
    assert Path(res["int8"]).exists()
    m = OnnxModel(res["onnx"])
    for k in METADATA_KEYS:
        assert k in m.info.metadata
    assert m.info.hidden_size == 32 and m.info.num_layers == 2
    q = OnnxModel(res["int8"])
    assert q.info.metadata.get("quantization")
    # the exported file recognises like the torch model decodes
    from training.train import greedy_decode, load_checkpoint, model_from_checkpoint
    from runtime.features import extract

    model = model_from_checkpoint(load_checkpoint(tiny_run / "best.pt"))
    rec = StreamingRecognizer(res["onnx"], decoder="greedy")  # compared with the torch greedy decode
    c = load_corpus(WORDS)
    for i in range(5):
        p = c.points(i)
        x = torch.from_numpy(extract(p))[None]
        with torch.no_grad():
            lp, _, _ = model(x)
        assert rec.recognize(p).text == greedy_decode(lp, [x.shape[1]], rec.alphabet)[0]


def test_average_of_kept_checkpoints_is_their_mean_and_is_validated(tiny_run, tmp_path):
    a, b = tiny_run / "step_000020.pt", tiny_run / "step_000040.pt"
    assert a.exists() and b.exists()
    out = tmp_path / "avg.pt"
    r = subprocess.run([sys.executable, "-m", "runtime.app.cli", "average", str(out), str(a), str(b),
                        "--data-root", str(FIXTURES)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "[val]" in r.stdout
    avg = torch.load(out, map_location="cpu", weights_only=False)
    wa, wb = _weights(a)[1], _weights(b)[1]
    for k in wa:
        torch.testing.assert_close(avg["model"][k], (wa[k] + wb[k]) / 2)
    assert avg["averaged_from"] == [20, 40] and avg["step"] == 40 and 0.0 <= avg["best_cer"] <= 1.5
    # a snapshot carries no optimizer state, so --resume cannot mistake it for last.pt
    assert "optimizer" not in torch.load(a, map_location="cpu", weights_only=False)


def test_size_sweep_benches_an_untrained_model_of_the_asked_shape():
    pytest.importorskip("onnx")
    from export.size_sweep import parse_sizes, sweep
    from runtime.app.cli import main

    assert parse_sizes("3x256, 2x16") == [(3, 256), (2, 16)]
    with pytest.raises(ValueError, match="LAYERSxHIDDEN"):
        parse_sizes("3x")
    assert main(["bench", "--sizes", "abc"]) == 2
    lines = []
    (row,) = sweep([(1, 16)], quick=True, log=lines.append)
    assert (row["layers"], row["hidden"]) == (1, 16) and lines[0].startswith("1x16:")
    assert row["step_us_1frame"] > 0 and row["floor_us_per_frame"] > 0 and row["rtf_200hz"] > 0


def test_export_command_and_training_further_from_the_exported_file(tiny_run, tmp_path):
    """inkstream export writes the files; --init FILE.onnx reads the float32 weights back (gate
    order and biases undone), so a shipped model can be trained further; int8 is refused."""
    from runtime.model import OnnxModel
    from training.onnx_import import checkpoint_from_onnx
    from training.train import model_from_checkpoint

    r = subprocess.run([sys.executable, "-m", "runtime.app.cli", "export", str(tiny_run / "best.pt"), "--out",
                        str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    onnx_file = tmp_path / "model.onnx"
    model = model_from_checkpoint(checkpoint_from_onnx(onnx_file))
    x = np.random.default_rng(0).standard_normal((2, 9, 7)).astype(np.float32)
    om = OnnxModel(onnx_file)
    h, c = om.zero_state(2)
    expected, _, _ = om.step(x, h, c)
    got, _, _ = model(torch.from_numpy(x))
    assert np.abs(got.detach().numpy() - expected).max() < 1e-4
    with pytest.raises(ValueError, match="int8"):
        checkpoint_from_onnx(tmp_path / "model.int8.onnx")
    r = _train(tmp_path / "again", "--init", str(onnx_file), "--max-steps", "3", "--eval-every", "3")
    assert r.returncode == 0 and f"[init] weights from {onnx_file}" in r.stdout, r.stderr[-2000:]
