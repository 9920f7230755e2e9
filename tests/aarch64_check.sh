#!/usr/bin/env bash
# Checks the Raspberry Pi claim on an emulated aarch64: in an arm64 Debian bookworm root (the base
# of Raspberry Pi OS) run by qemu-user as a Cortex-A72 (a Pi 4's core), the edge install from this
# checkout (`pip install ./inkstream`, aarch64 wheels only) runs `inkstream eval` (greedy and beam),
# the recognizer API and `inkstream recognize` from an emulated tablet on a pty, and the int8
# model's log-probabilities on a fixture sample match the x86 host's. Prints what it ran.
#
# Usage (as root, from anywhere): nice -n 10 tests/aarch64_check.sh
#   AARCH64_ROOT=dir   where the arm64 root lives (default <repo>/.aarch64-root, git-ignored);
#                      built once with debootstrap (a few minutes), reused after; delete it to rebuild
#   MIRROR=url         Debian mirror for debootstrap (default http://deb.debian.org/debian)
#   HOST_PYTHON=path   the x86 Python that gives the reference figures (default <repo>/.venv/bin/python,
#                      then <repo>/.venv-edge/bin/python); it needs numpy and onnxruntime
# Each run copies the working tree (tracked and untracked, not ignored files) into the root and
# installs it in a fresh venv there, so the check sees today's dependencies. Needs Debian's
# qemu-user-static, binfmt-support and debootstrap (installed with apt-get when missing).
#
# Emulated speed says nothing about a Pi's speed, so no timing is printed as if it were one; on a
# Pi run `inkstream bench` instead.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="${AARCH64_ROOT:-$REPO/.aarch64-root}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
FIXTURE_REL="tests/fixtures/runtime/unipen_lines.npz"
MARKER="$ROOT/.inkstream-aarch64-root"   # written once debootstrap finished and python3 runs
SRC=/opt/inkstream                        # the checkout inside the root ("pip install ./inkstream" from /opt)
VENV=/opt/inkstream-venv
RUN=/tmp/inkstream-check                  # scratch space inside the root, recreated each run
# Without it qemu emulates its "max" CPU (SVE, dot product, fp16): numpy then raises false
# floating-point warnings and int8 runs 4-5x slower than on the core a Pi really has. qemu reads it
# when the kernel hands it an aarch64 binary, so it is exported for debootstrap and chroot too.
export QEMU_CPU=cortex-a72
START=$SECONDS

step() { echo; echo "== $*"; }
die() { echo "aarch64 check FAILED: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, binfmt_misc, mounts and chroot)"
[ "$(uname -m)" = x86_64 ] || die "meant for an x86_64 host (this is $(uname -m))"

HOST_PYTHON="${HOST_PYTHON:-}"
if [ -z "$HOST_PYTHON" ]; then
  for p in "$REPO/.venv/bin/python" "$REPO/.venv-edge/bin/python"; do
    if [ -x "$p" ]; then HOST_PYTHON="$p"; break; fi
  done
fi
[ -n "$HOST_PYTHON" ] || die "no x86 reference Python: create $REPO/.venv or set HOST_PYTHON"
"$HOST_PYTHON" -c 'import numpy, onnxruntime' 2>/dev/null || die "$HOST_PYTHON cannot import numpy and onnxruntime"

# ---------------------------------------------------------------------------------------------
step "host tools: qemu-user-static, binfmt-support, debootstrap; qemu-aarch64 enabled in binfmt_misc"
if ! { [ -x /usr/bin/qemu-aarch64-static ] && command -v update-binfmts >/dev/null && command -v debootstrap >/dev/null; }; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q qemu-user-static binfmt-support debootstrap >/dev/null ||
    { apt-get update -q >/dev/null && apt-get install -y -q qemu-user-static binfmt-support debootstrap >/dev/null; }
fi
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 2>/dev/null || true   # complains when it is already enabled
[ "$(head -n 1 /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null)" = enabled ] ||
  die "qemu-aarch64 is not enabled in /proc/sys/fs/binfmt_misc"
grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 ||
  die "qemu-aarch64 is registered without the F flag, so it would have to be copied into the root"
echo "ok $(dpkg-query -W -f='qemu-user-static ${Version}' qemu-user-static), QEMU_CPU=$QEMU_CPU"

# ---------------------------------------------------------------------------------------------
mounts_under_root() { awk -v r="$ROOT/" 'index($2, r) == 1 {print $2}' /proc/self/mounts; }

unmount_all() {
  # deepest first; a lazy unmount only if a process still holds one
  local m
  for m in $(mounts_under_root | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" || echo "could not unmount $m" >&2
  done
}

if [ ! -f "$MARKER" ]; then
  step "building the arm64 bookworm root in $ROOT (debootstrap, minbase; a few minutes)"
  if [ -e "$ROOT" ]; then
    # a root left half-built: never delete through a bind mount of the host's /dev or /proc
    [ -z "$(mounts_under_root)" ] || die "$ROOT is incomplete and has mounts under it: $(mounts_under_root | tr '\n' ' ')"
    rm -rf "$ROOT"
  fi
  debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$ROOT" "$MIRROR" > "$REPO/.aarch64-debootstrap.log" 2>&1 ||
    { tail -n 20 "$REPO/.aarch64-debootstrap.log" >&2; die "debootstrap failed (log: $REPO/.aarch64-debootstrap.log)"; }
  rm -f "$REPO/.aarch64-debootstrap.log"
  chroot "$ROOT" /usr/bin/python3 -c 'import platform, venv; assert platform.machine() == "aarch64"' ||
    die "python3 does not run in the new root"
  touch "$MARKER"
  echo "ok built"
else
  step "reusing the arm64 root in $ROOT (delete it to rebuild)"
fi
[ -z "$(mounts_under_root)" ] || { echo "unmounting what a previous run left mounted"; unmount_all; }

# pip inside must trust what pip on the host trusts (this network may re-sign TLS with its own CA)
# and use the host's index settings; the host's find-links and file:// indexes hold x86 files and
# paths that do not exist in the root, so they are left out.
cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$ROOT/etc/ssl/certs/ca-certificates.crt"
if [ -d /usr/local/share/ca-certificates ]; then
  mkdir -p "$ROOT/usr/local/share/ca-certificates"
  cp -r /usr/local/share/ca-certificates/. "$ROOT/usr/local/share/ca-certificates/"
fi
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
cp /etc/hosts "$ROOT/etc/hosts"
if [ -f /etc/pip.conf ]; then cp /etc/pip.conf "$ROOT/etc/pip.conf"; fi
CHROOT_ENV=(PATH="$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" HOME=/root
            LANG=C.UTF-8 QEMU_CPU="$QEMU_CPU" PIP_CERT=/etc/ssl/certs/ca-certificates.crt
            PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT="${PIP_DEFAULT_TIMEOUT:-120}")
for v in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  if [ -n "${!v:-}" ] && [[ "${!v}" != file:* ]]; then CHROOT_ENV+=("$v=${!v}"); fi
done
inside() { chroot "$ROOT" /usr/bin/env -i "${CHROOT_ENV[@]}" "$@"; }
# onnxruntime's cpuinfo reads /sys, which is not mounted in the root (the host's /sys describes
# x86 cores, and onnxruntime segfaults on it under qemu-user), so each process prints that it
# could not detect the CPU and goes on without it (a Pi has its /sys, so a Pi does not say so).
# inside_q drops those lines and shows the rest of stderr (all of it when the command fails).
CPUINFO_NOISE='^(Error in cpuinfo: |onnxruntime (cpuid_info )?warning: .*(cpuinfo|CPU vendor))'
inside_q() {
  local err="$HOST_WORK/stderr" rc=0
  inside "$@" 2> "$err" || rc=$?
  if [ $rc != 0 ]; then cat "$err" >&2; return $rc; fi
  grep -v -E "$CPUINFO_NOISE" "$err" >&2 || true
}

HOST_WORK="$(mktemp -d)"
cleanup() {
  local rc=$?
  unmount_all
  rm -rf "$HOST_WORK"
  if [ -n "$(mounts_under_root)" ]; then echo "still mounted under $ROOT: $(mounts_under_root | tr '\n' ' ')" >&2; rc=1; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# /proc for Python and onnxruntime, /dev and /dev/pts for the emulated tablet's pseudo-terminal
mount --bind /dev "$ROOT/dev"
mount --bind /dev/pts "$ROOT/dev/pts"
mount -t proc proc "$ROOT/proc"

# ---------------------------------------------------------------------------------------------
step "copying the checkout to $SRC in the root (tracked and untracked files, not ignored ones)"
rm -rf "$ROOT$SRC" "$ROOT$RUN"
mkdir -p "$ROOT$SRC" "$ROOT$RUN"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |   # skip files deleted in the tree
  tar --null -T - -cf -) | tar -x -C "$ROOT$SRC"
echo "ok $(find "$ROOT$SRC" -type f | wc -l) files, $(du -sh "$ROOT$SRC" | cut -f1)"

step "fresh venv in the root, then the edge install as the README says for a Pi: pip install ./inkstream"
inside /usr/bin/python3 -m venv --clear "$VENV"
# --only-binary: a dependency without an aarch64 (or pure-Python) wheel fails here instead of
# compiling, which a Pi user would not want either. The pip cache in the root is kept between runs.
if ! inside sh -c "cd /opt && pip install --quiet --only-binary=:all: --report $RUN/pip-report.json ./inkstream" \
     > "$HOST_WORK/pip.log" 2>&1; then
  cat "$HOST_WORK/pip.log" >&2; die "pip install ./inkstream failed inside the arm64 root"
fi
grep -v '^$' "$HOST_WORK/pip.log" || true

step "what was installed (each from an aarch64 or a pure-Python wheel)"
inside python - "$RUN/pip-report.json" <<'EOF'
import json, platform, re, sys
from importlib import metadata

report = json.load(open(sys.argv[1]))
bad = []
rows = []
for item in report["install"]:
    name, version = item["metadata"]["name"], item["metadata"]["version"]
    url = item["download_info"]["url"]
    if name == "inkstream":
        assert url.startswith("file://"), url
        rows.append((name, version, "built from the checkout " + url[len("file://"):]))
        continue
    wheel = url.rsplit("/", 1)[-1].split("#")[0]
    if not wheel.endswith(".whl"):
        bad.append(f"{name} {version} from {wheel}, not a wheel")
        continue
    platform_tag = wheel[:-4].split("-")[-1]
    if platform_tag == "any":
        kind = "pure-Python wheel"
    elif "aarch64" in platform_tag:
        kind = "aarch64 wheel"
    else:
        kind = f"WRONG PLATFORM {platform_tag}"
        bad.append(f"{name} {version}: {wheel}")
    rows.append((name, version, f"{kind}: {wheel}"))

print(f"python {platform.python_version()} on {platform.machine()} ({platform.libc_ver()[0]} {platform.libc_ver()[1]})")
requires = [r.split(";")[0] for r in metadata.requires("inkstream") if "extra ==" not in r]
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
direct = {norm(re.match(r"[A-Za-z0-9._-]+", r).group()) for r in requires}
width = max(len(n) for n, _, _ in rows)
for name, version, how in sorted(rows, key=lambda r: (norm(r[0]) not in direct | {"inkstream"}, norm(r[0]))):
    mark = "*" if norm(name) in direct else " "
    print(f"  {mark} {name:<{width}} {version:<12} {how}")
print("  (* the edge install's own dependencies: " + ", ".join(requires) + ")")
missing = direct - {norm(n) for n, _, _ in rows}
if missing:
    bad.append(f"not installed by this run: {sorted(missing)}")
for name in ("torch", "onnx"):
    try:
        metadata.version(name)
        bad.append(f"{name} is installed; the edge install must not need it")
    except metadata.PackageNotFoundError:
        pass
try:
    from numpy._core._multiarray_umath import __cpu_features__ as features  # numpy 2
except ImportError:
    from numpy.core._multiarray_umath import __cpu_features__ as features
on = sorted(k for k, v in features.items() if v)
print("numpy sees CPU features:", " ".join(on))
# Cortex-A72 is ARMv8.0-A: no dot product, no fp16 arithmetic, no SVE (qemu's default "max" CPU has all)
if any(features.get(k) for k in ("ASIMDDP", "ASIMDHP", "SVE")):
    bad.append("the emulated CPU is not a Cortex-A72 (QEMU_CPU was not applied)")
if bad:
    sys.exit("\n".join(bad))
EOF

# ---------------------------------------------------------------------------------------------
# The checks run from $RUN (outside the source tree) so the installed package is what is imported.
# Python warnings become errors: emulated-CPU artefacts showed up as RuntimeWarnings before.
FIXTURE="$SRC/$FIXTURE_REL"
host() { (cd "$REPO" && PYTHONPATH="$REPO" "$HOST_PYTHON" "$@"); }

step "inkstream eval $FIXTURE_REL --limit 3 (greedy, then beam): aarch64 against the x86 host"
for decoder in greedy beam; do
  inside sh -c "cd $RUN && python -W error::RuntimeWarning -m runtime.app.cli eval $FIXTURE --limit 3 --decoder $decoder --json" \
    > "$HOST_WORK/eval_$decoder.arm" 2> "$HOST_WORK/eval_$decoder.err" ||
    { cat "$HOST_WORK/eval_$decoder.err" >&2; die "inkstream eval --decoder $decoder failed inside"; }
  host -m runtime.app.cli eval "$REPO/$FIXTURE_REL" --limit 3 --decoder "$decoder" --json > "$HOST_WORK/eval_$decoder.x86"
  "$HOST_PYTHON" - "$decoder" "$HOST_WORK/eval_$decoder.arm" "$HOST_WORK/eval_$decoder.x86" <<'EOF'
import json, sys
decoder, arm, x86 = sys.argv[1], *(json.loads(open(p).read().strip().splitlines()[-1]) for p in sys.argv[2:])
keys = ("samples", "chars", "char_errors", "word_errors", "cer", "wer")
print(f"{decoder:6} aarch64: " + "  ".join(f"{k} {arm[k]:.4g}" for k in keys))
print(f"{decoder:6} x86:     " + "  ".join(f"{k} {x86[k]:.4g}" for k in keys))
assert arm["samples"] == 3, arm
assert all(arm[k] == x86[k] for k in keys), "aarch64 and x86 disagree"
print("ok same figures")
EOF
done
# the `inkstream` entry point itself, not only the module behind it
inside_q sh -c "cd $RUN && inkstream eval $FIXTURE --limit 1 --decoder greedy --json" | tail -n 1 | "$HOST_PYTHON" -c \
  'import json,sys; r=json.loads(sys.stdin.read()); assert r["samples"] == 1, r; print("ok the inkstream command runs")'

step "recognizer API: 3 streams fed 2 samples at a time == whole-sample recognize, greedy and beam"
inside_q sh -c "cd $RUN && python -W error::RuntimeWarning $SRC/tests/api_check.py $FIXTURE"

step "model log-probabilities on fixture sample 0: aarch64 against the x86 host, int8 (shipped) and float32"
cat > "$ROOT$RUN/logprobs.py" <<'EOF'
import sys
import numpy as np
from runtime.features import extract
from runtime.ink import load_corpus
from runtime.model import OnnxModel, default_model_path

fixture, out, label = sys.argv[1:]
result = {}
for name, path in (("int8", default_model_path(int8=True)), ("fp32", default_model_path(int8=False))):
    model = OnnxModel(path)
    frames = extract(np.asarray(load_corpus(fixture).points(0), np.float64), model.feature_config)
    h, c = model.zero_state()
    log_probs, _, _ = model.step(frames[None].astype(np.float32), h, c)
    result["frames"], result[name] = frames, log_probs[0]
np.savez(out, **result)
print(f"{label}: {frames.shape[0]} frames x {log_probs.shape[-1]} classes through {default_model_path().name} and "
      f"{default_model_path(int8=False).name}")
EOF
inside_q sh -c "cd $RUN && python -W error::RuntimeWarning logprobs.py $FIXTURE $RUN/logprobs_arm.npz aarch64"
host -W error::RuntimeWarning "$ROOT$RUN/logprobs.py" "$REPO/$FIXTURE_REL" "$HOST_WORK/logprobs_x86.npz" x86
"$HOST_PYTHON" - "$ROOT$RUN/logprobs_arm.npz" "$HOST_WORK/logprobs_x86.npz" <<'EOF'
import sys
import numpy as np
arm, x86 = np.load(sys.argv[1]), np.load(sys.argv[2])
df = float(np.abs(arm["frames"] - x86["frames"]).max())
print(f"features (numpy):         max abs difference {df:.3g}")
assert df < 1e-4, "the feature pipeline gives other frames on aarch64"
for name in ("fp32", "int8"):
    a, x = arm[name], x86[name]
    assert a.shape == x.shape, (name, a.shape, x.shape)
    d = np.abs(a - x)
    likely = x > np.log(1e-4)          # classes with a probability above 1e-4
    same_best = bool((a.argmax(-1) == x.argmax(-1)).all())
    print(f"{name} log-probabilities:   max abs difference {d.max():.3g} (over classes with p > 1e-4: "
          f"{d[likely].max():.3g}); probabilities: {np.abs(np.exp(a) - np.exp(x)).max():.3g}; "
          f"best class equal on every frame: {same_best}")
    assert same_best, f"{name}: aarch64 and x86 pick another class on some frame"
    if name == "fp32":
        assert d.max() < 1e-3, "float32: aarch64 and x86 differ by more than float rounding"
# The int8 file is dynamically quantized (activations to uint8 per call): onnxruntime's int8 kernels
# differ by CPU family, so only the float32 model has to agree to rounding; the int8 one has to
# decode alike (the eval figures above) and pick the same class on every frame.
print("ok")
EOF

step "inkstream recognize --source emulator:$FIXTURE_REL --speed 4 (an emulated tablet on a pty in the root)"
inside sh -c "cd $RUN && timeout 900 python -W error::RuntimeWarning -m runtime.app.cli recognize --source emulator:$FIXTURE --speed 4 --json --max-seconds 600" \
  > "$HOST_WORK/rec.arm" 2> "$HOST_WORK/rec.arm.err" ||
  { cat "$HOST_WORK/rec.arm.err" >&2; die "inkstream recognize failed inside"; }
host -m runtime.app.cli recognize --source "emulator:$REPO/$FIXTURE_REL" --speed 4 --json --max-seconds 600 \
  > "$HOST_WORK/rec.x86" 2> "$HOST_WORK/rec.x86.err"
grep -v -E "$CPUINFO_NOISE|^$" "$HOST_WORK/rec.arm.err" | sed 's/^/aarch64: /'
"$HOST_PYTHON" - "$HOST_WORK/rec.arm" "$HOST_WORK/rec.arm.err" "$HOST_WORK/rec.x86" "$HOST_WORK/rec.x86.err" 20 <<'EOF'
import json, re, sys

def read(out, err):
    finals = [json.loads(l)["text"] for l in open(out) if l.strip() and json.loads(l)["final"]]
    m = re.search(r"(\d+) lines from (\d+) pen samples, (\d+) serial errors", open(err).read())
    assert m, f"no summary line in {err}"
    return finals, *map(int, m.groups())

arm, x86 = read(*sys.argv[1:3]), read(*sys.argv[3:5])
print(f"aarch64: {arm[1]} lines from {arm[2]} pen samples, {arm[3]} serial errors")
print(f"x86:     {x86[1]} lines from {x86[2]} pen samples, {x86[3]} serial errors")
for i, text in enumerate(arm[0]):
    print(f"  line {i:2}: {text!r}")
assert arm[1] > 0 and arm[0], "no line recognized"
# The emulated tablet drops output, as a UART does, once 4096 bytes wait unread: at 20x real time
# a reader slowed by emulation (or by a busy host: see the x86 line) falls behind and frames are
# lost, which says how fast qemu is, not a Pi. So they are counted and shown, not failed on.
if arm[3] or arm[2] != x86[2]:
    print(f"note: aarch64 read {arm[2]} of the pen samples x86 read ({x86[2]}), with {arm[3]} serial errors: "
          f"at {sys.argv[5]}x real time the emulated reader lags the emulated tablet; not a Pi figure")
# a live line also ends on a quiet spell measured on the wall clock, so where lines are cut moves
# when the machine lags: count the lines read alike, do not require them
same = len(set(arm[0]) & set(x86[0]))
print(f"ok: the pty, the serial reader and the recognizer ran end to end ({same} of {len(arm[0])} lines read as on x86)")
EOF

step "summary"
echo "aarch64 check passed under qemu-user as a Cortex-A72 in Debian bookworm arm64: the edge install from"
echo "aarch64 wheels; eval (greedy, beam) with the x86 figures; the API; an emulated tablet on a pty; float32"
echo "log-probabilities as on x86 to rounding, int8 ones picking the same class on every frame."
echo "Emulated speed says nothing about a Pi's speed: no timing here is a Pi's; on a Pi run 'inkstream bench'."
echo "(the check took $(( (SECONDS - START) / 60 )) min $(( (SECONDS - START) % 60 )) s of emulation and setup on this host)"
