#!/usr/bin/env bash
# Proves the edge install works: a fresh venv with only the base install (numpy, onnxruntime,
# pyserial, websockets: no torch, no onnx) runs `inkstream eval`, `inkstream bench --quick` and the
# recognizer API (greedy, beam and word decoders) on a committed fixture.
#
# Usage (from anywhere): tests/edge_install_check.sh      PYTHON=python3.11 to choose the interpreter,
# MODEL=path.onnx to check another model than the shipped one.
# The venv is created at <repo>/.venv-edge (reused when it exists; delete it for a clean check).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv-edge"
PYTHON="${PYTHON:-python3}"
FIXTURE="$REPO/tests/fixtures/runtime/unipen_lines.npz"
MODEL_ARGS=()
if [ -n "${MODEL:-}" ]; then MODEL_ARGS=(--model "$(realpath "$MODEL")"); fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "$REPO"   # the base install: no extras

# run from outside the repository so the installed package, not the source tree, is imported
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

echo "== no torch, no onnx in the edge venv"
"$VENV/bin/python" - <<'EOF'
import importlib.util, sys
for name in ("torch", "onnx", "wordfreq"):
    if importlib.util.find_spec(name) is not None:
        sys.exit(f"{name} is installed in the edge venv; the check needs a base install only")
print("ok")
EOF

echo "== inkstream eval (greedy, beam with the character LM, then the default: the word decoder with both LMs)"
"$VENV/bin/inkstream" eval "$FIXTURE" --limit 3 --decoder greedy --json "${MODEL_ARGS[@]}" | tail -n 1 | "$VENV/bin/python" -c \
  'import json,sys; r=json.loads(sys.stdin.read()); assert {"cer","wer","samples","chars"} <= set(r), r; print("ok", r["samples"], "samples")'
"$VENV/bin/inkstream" eval "$FIXTURE" --limit 2 --decoder beam --json "${MODEL_ARGS[@]}" | tail -n 1 | "$VENV/bin/python" -c \
  'import json,sys; r=json.loads(sys.stdin.read()); assert r["samples"] == 2, r; print("ok beam")'
printf 'Jennifer\n' > words.txt
"$VENV/bin/inkstream" eval "$FIXTURE" --limit 2 --words words.txt --json "${MODEL_ARGS[@]}" | tail -n 1 | "$VENV/bin/python" -c \
  'import json,sys; r=json.loads(sys.stdin.read()); assert r["samples"] == 2 and r["decoder"] == "word", r; print("ok word")'

echo "== inkstream bench --quick"
"$VENV/bin/inkstream" bench --quick --json "${MODEL_ARGS[@]}" | tail -n 1 | "$VENV/bin/python" -c '
import json, sys
r = json.loads(sys.stdin.read())
keys = ["per_sample_us_chunk1", "per_sample_us_chunk4", "per_sample_us_chunk16", "floor_us_per_frame",
        "ort_call_overhead_us", "ratio_vs_rerun", "ratio_vs_torch", "per_stream_us_1", "per_stream_us_16",
        "per_stream_us_256", "rtf_200hz", "rss_mb"]
delay = [f"{k}_{d}" for d in ("greedy", "beam", "word") for k in ("emission_delay_p50_ms", "emission_delay_p90_ms",
                                                         "not_shown_at_pen_up", "emission_delay_chars")]
missing = [k for k in keys + delay if k not in r]
assert not missing, missing
assert r["ratio_vs_torch"] is None, "torch must not be importable here"
assert all(r[k] is not None for k in delay), "the emission delay needs no torch and no wordfreq"
print("ok", {k: r[k] for k in ("rtf_200hz", "rss_mb", "emission_delay_p50_ms_word", "emission_delay_p90_ms_word")})'

echo "== recognizer API"
"$VENV/bin/python" "$REPO/tests/api_check.py" "$FIXTURE" "${MODEL:+$(realpath "$MODEL")}"
echo "== the network view's gradient (numpy backpropagation from the float32 file, no onnx package)"
"$VENV/bin/python" - <<'EOF'
import numpy as np
from runtime.app.sources import DEMO_SAMPLES
from runtime.app.ui.gradient import GradientService
from runtime.ink import load_corpus
from runtime.model import default_model_path

answer = GradientService(str(default_model_path())).answer(0, load_corpus(DEMO_SAMPLES).points(2).astype(np.float64))
assert answer.get("values") and max(answer["values"]) == 1.0, answer.get("error", answer)
print("ok", repr(answer["char"]), len(answer["values"]), "samples")
EOF
echo "== inkstream demo --no-ui (emulated tablet on a pty -> serial reader -> recognizer)"
timeout 300 "$VENV/bin/inkstream" demo --no-ui --speed 20 "${MODEL_ARGS[@]}" > demo.out
grep -q . demo.out && echo "ok $(wc -l < demo.out) lines"
echo "edge install check passed"
