"""``inkstream lm neural``: train the character LSTM language model that rescores a line's final
readings (:mod:`runtime.neural_lm`), and export it to ONNX.

The n-gram LMs of the decoders see a few characters or two words back; this model reads the whole
line. It is trained on random windows of running text (the sentences of the text files joined by
spaces), each starting at a word boundary after a line-start symbol, because a handwritten line
starts anywhere in a sentence. The text is normalised as the runtime normalises a reading
(:func:`runtime.neural_lm.lm_text`), so IAM-OnDB's ``word ,`` and ``word,`` score alike.

Default data: ``../shared/data/text/gutenberg.txt.gz`` and ``masc.txt.gz`` (both allow
commercial use); IAM-OnDB text is never read. The last ``--val-fraction`` of the text is held out
and its bits per character reported (on its first 400 windows, 51,200 characters). Training is
seeded; it writes ``last.pt`` to ``--run-dir`` every ``--ckpt-every`` updates and continues from
it with ``--resume``. The defaults are the shipped file's recipe (about an hour on two cores).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from runtime.neural_lm import DEFAULT_NEURAL_LM, LINE_START, VOCAB_SIZE, encode_text, lm_text
from training.word_lm import text_lines, text_paths


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text", nargs="+", help="text files, one sentence a line (default: gutenberg + masc)")
    parser.add_argument("--out", default=str(DEFAULT_NEURAL_LM), help="ONNX file to write (default: the shipped one)")
    parser.add_argument("--run-dir", default="runs/neural_lm", help="checkpoints and metrics")
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    parser.add_argument("--hidden-size", type=int, default=384)
    parser.add_argument("--embedding-size", type=int, default=64)
    parser.add_argument("--window", type=int, default=128, help="characters per training window")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--max-steps", type=int, default=8000,
                        help="updates; the cosine schedule spans them (a --resume with another value reshapes it)")
    parser.add_argument("--max-minutes", type=float, default=0.0, help="stop (and export) after this long; 0: no limit")
    parser.add_argument("--val-fraction", type=float, default=0.01)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--ckpt-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--float32", action="store_true", help="write float32 weights (default: int8)")


def read_text(paths) -> str:
    """The normalised sentences of the text files joined by single spaces."""
    return " ".join(line for line in map(lm_text, text_lines(paths)) if line)


class CharLSTM:
    """Embedding -> one LSTM layer -> linear, over :data:`runtime.neural_lm.VOCAB_SIZE` symbols.
    Built lazily so that importing this module does not import torch."""

    def __new__(cls, hidden_size: int, embedding_size: int):
        import torch

        class _Model(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = torch.nn.Embedding(VOCAB_SIZE, embedding_size)
                self.lstm = torch.nn.LSTM(embedding_size, hidden_size, batch_first=True)
                self.out = torch.nn.Linear(hidden_size, VOCAB_SIZE)

            def forward(self, ids):
                h, _ = self.lstm(self.embed(ids))
                return torch.log_softmax(self.out(h), dim=-1)

        return _Model()


def _word_starts(ids: np.ndarray) -> np.ndarray:
    """Positions just after a space: where a training window may start."""
    space = encode_text(" ")[0]
    return np.flatnonzero(ids[:-1] == space) + 1


def _batch(ids, starts, rng, batch_size, window):
    import torch

    s = rng.choice(starts, size=batch_size)
    idx = s[:, None] + np.arange(window)[None, :]
    target = ids[idx]
    inputs = np.concatenate([np.full((batch_size, 1), LINE_START, dtype=ids.dtype), target[:, :-1]], axis=1)
    return torch.from_numpy(inputs.astype(np.int64)), torch.from_numpy(target.astype(np.int64))


def _bits_per_char(model, ids, window, limit_windows=400) -> float:
    """Bits per character over consecutive windows of the held-out text (each from a line start)."""
    import torch

    n = min((len(ids) - 1) // window, limit_windows)
    if n == 0:
        return float("nan")
    target = ids[: n * window].reshape(n, window)
    inputs = np.concatenate([np.full((n, 1), LINE_START, dtype=ids.dtype), target[:, :-1]], axis=1)
    with torch.no_grad():
        model.eval()
        lp = model(torch.from_numpy(inputs.astype(np.int64)))
        model.train()
        nll = -lp.gather(2, torch.from_numpy(target.astype(np.int64))[..., None]).mean().item()
    return nll / math.log(2)


def export_onnx(model, path: str, meta: dict, int8: bool = True) -> None:
    """Write ``model`` as ONNX: ``ids`` (batch, time) int64 -> ``log_probs`` (batch, time, vocab),
    with ``meta`` as metadata (read back by :class:`runtime.neural_lm.NeuralLineLM`). With
    ``int8`` the weights are quantised (onnxruntime's dynamic quantisation, as the handwriting
    model's int8 file): a quarter of the size and about half the time, the same rescoring."""
    import onnx
    import torch

    model.eval()
    dummy = torch.full((2, 5), LINE_START, dtype=torch.int64)
    tmp = str(path) + ".float.tmp"
    torch.onnx.export(model, (dummy,), tmp, input_names=["ids"], output_names=["log_probs"],
                      dynamic_axes={"ids": {0: "batch", 1: "time"}, "log_probs": {0: "batch", 1: "time"}},
                      opset_version=17, dynamo=False)
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = str(path) + ".int8.tmp"
        quantize_dynamic(tmp, quantized, weight_type=QuantType.QInt8)
        os.replace(quantized, tmp)
    m = onnx.load(tmp)
    del m.metadata_props[:]
    for k, v in dict(meta, weights="int8" if int8 else "float32").items():
        entry = m.metadata_props.add()
        entry.key, entry.value = k, str(v)
    onnx.save(m, path)
    os.remove(tmp)


def run(args) -> int:
    import torch

    try:
        paths = text_paths(args.text)
    except ValueError as exc:
        print(f"inkstream lm neural: {exc}", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    text = read_text(paths)
    ids = np.asarray(encode_text(text), dtype=np.uint8)
    n_val = int(len(ids) * args.val_fraction)
    train_ids, val_ids = ids[: len(ids) - n_val], ids[len(ids) - n_val:]
    starts = _word_starts(train_ids)
    starts = starts[starts + args.window <= len(train_ids)]
    print(f"text: {len(ids):,} characters ({len(train_ids):,} train, {len(val_ids):,} held out) from "
          f"{', '.join(Path(p).name for p in paths)}", flush=True)

    model = CharLSTM(args.hidden_size, args.embedding_size)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    step, best_bpc, best_step, elapsed0 = 0, float("inf"), 0, 0.0
    if args.resume:
        ckpt = torch.load(run_dir / "last.pt", weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        step, best_bpc, elapsed0 = ckpt["step"], ckpt["best_bpc"], ckpt["elapsed"]
        best_step = ckpt.get("best_step", 0)
        rng = np.random.default_rng([args.seed, step])  # a fresh but reproducible stream
        print(f"resumed at update {step}", flush=True)

    def lr_at(s):  # cosine from lr to lr/20 after 200 warm-up updates
        if s < 200:
            return args.lr * (s + 1) / 200
        frac = min(1.0, (s - 200) / max(1, args.max_steps - 200))
        return args.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))

    meta = {"kind": "inkstream-char-lm", "hidden_size": args.hidden_size, "embedding_size": args.embedding_size,
            "window": args.window, "data": ",".join(Path(p).name for p in paths)}
    t0 = time.time()
    metrics = open(run_dir / "metrics.jsonl", "a")
    while step < args.max_steps:
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        x, y = _batch(train_ids, starts, rng, args.batch_size, args.window)
        loss = torch.nn.functional.nll_loss(model(x).reshape(-1, VOCAB_SIZE), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        elapsed = elapsed0 + time.time() - t0
        out_of_time = args.max_minutes and elapsed > args.max_minutes * 60
        if step % args.eval_every == 0 or step == args.max_steps or out_of_time:
            bpc = _bits_per_char(model, val_ids, args.window)
            print(f"update {step}: train {loss.item() / math.log(2):.3f} bits/char, held out {bpc:.3f}, "
                  f"{elapsed / 60:.1f} min", flush=True)
            metrics.write(json.dumps({"step": step, "train_bpc": loss.item() / math.log(2), "val_bpc": bpc,
                                      "minutes": elapsed / 60}) + "\n")
            metrics.flush()
            if bpc < best_bpc:
                best_bpc, best_step = bpc, step
                torch.save(model.state_dict(), run_dir / "best.pt")
        if step % args.ckpt_every == 0 or step == args.max_steps or out_of_time:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "best_bpc": best_bpc,
                        "best_step": best_step, "elapsed": elapsed}, run_dir / "last.pt.tmp")
            os.replace(run_dir / "last.pt.tmp", run_dir / "last.pt")
        if out_of_time:
            print(f"stopped by --max-minutes at update {step}", flush=True)
            break
    model.load_state_dict(torch.load(run_dir / "best.pt"))
    meta.update(updates=best_step, held_out_bits_per_char=f"{best_bpc:.4f}")  # those of best.pt
    export_onnx(model, args.out, meta, int8=not args.float32)
    print(f"{args.out}: best held-out {best_bpc:.3f} bits/char, {os.path.getsize(args.out) / 1e6:.2f} MB", flush=True)
    return 0
