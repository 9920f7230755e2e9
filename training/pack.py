"""A training data folder small enough to travel with the code to a lent GPU machine (``inkstream pack``).

A rented or lent GPU machine often receives only a copy of the checkout, with a size limit (the
team's device tool takes 64 MiB in all, the checkout itself about 18 MB), and nothing can be
fetched there. The corpora in ``../shared/data`` are about 130 MB, and the ``wordfreq`` package
that synthetic ink draws its words from is a 57 MB wheel. This command writes a data root for
``inkstream train`` (``INKSTREAM_DATA=<out>``) within ``--max-mb``:

* IAM-OnDB ``train`` and ``val``, both ImadocSen files and the running text of ``text/`` that
  allows commercial use, copied whole;
* the three UNIPEN files with a random share of their ``train`` rows, the same share for each,
  as large as the budget allows, and every ``val`` row of UNIPEN text (a validation set of the GPU
  call; UNIPEN words and chars ``val`` are left home, where they are validated on: they would
  take most of the room);
* ``text/vocabulary_en.tsv``: wordfreq's English list as synthetic ink reads it (rank, word,
  frequency), so the synthetic kinds render the same texts without wordfreq installed.

``pack.json`` in the folder records what was kept. IAM-OnDB ``test`` is never packed.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from runtime.ink import load_corpus

COPIED = ("iamondb/train.npz", "iamondb/val.npz", "imadocsen/sentences.npz", "imadocsen/words.npz",
          "text/gutenberg.txt.gz", "text/masc.txt.gz")
SUBSAMPLED = ("unipen/words.npz", "unipen/text.npz", "unipen/chars.npz")
VALIDATED = ("unipen/text.npz",)  # whose val rows the GPU call validates on; the others' stay home
VOCABULARY_FILE = "text/vocabulary_en.tsv"  # read by training.data for the synthetic kinds


def write_vocabulary(path, size: int = 50000) -> int:
    """wordfreq's ``size`` most frequent English words as synthetic ink reads them, one
    ``rank<TAB>word<TAB>frequency`` a line (frequencies written exactly); returns the number of lines."""
    from training.synthetic import ranked_words

    words = ranked_words(size)
    with open(path, "w", encoding="utf-8") as f:
        for rank, (w, freq) in enumerate(words):
            f.write(f"{rank}\t{w}\t{freq!r}\n")
    return len(words)


def read_corpus_arrays(src) -> dict:
    """Every array of corpus file ``src``, its format checked first."""
    load_corpus(src)
    with np.load(src, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def subsample_arrays(arrays: dict, train_share: float, seed: int = 0, keep_val: bool = True,
                     name: str = "corpus") -> tuple[dict, dict]:
    """``(arrays, counts)`` of a corpus with every row whose ``split`` is not ``train`` (none with
    ``keep_val`` False) and a random ``train_share`` of the ``train`` rows that training would read
    (``quality`` not ``BAD``), in their original order."""
    if not 0.0 <= train_share <= 1.0:
        raise ValueError(f"train_share must be in [0, 1], got {train_share}")
    offsets = arrays["offsets"]
    m = len(offsets) - 1
    split = arrays.get("split")
    if split is None:
        raise ValueError(f"{name}: has no 'split' array, so its train rows cannot be told apart")
    usable = split == "train"
    if "quality" in arrays:  # training skips BAD segments (training.data), so they take no room here
        usable &= arrays["quality"] != "BAD"
    train = np.flatnonzero(usable)
    rng = np.random.default_rng(seed)
    kept_train = np.sort(rng.choice(train, size=int(round(train_share * len(train))), replace=False))
    keep_row = (split != "train") if keep_val else np.zeros(m, bool)
    keep_row[kept_train] = True
    keep = np.flatnonzero(keep_row)
    lengths = np.diff(offsets)[keep]
    keep_point = np.repeat(keep_row, np.diff(offsets))
    out = {k: (v[keep] if v.ndim == 1 and len(v) == m else v) for k, v in arrays.items() if k not in ("points", "offsets")}
    out["points"] = np.asfortranarray(arrays["points"][keep_point])  # column-major compresses better (data README)
    out["offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return out, {"rows": int(len(keep)), "train_rows": int(len(kept_train)), "train_rows_before": int(len(train))}


def _save(dst, arrays: dict) -> None:
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(dst, **arrays)


def pack(out, data_root, max_mb: float = 42.0, seed: int = 0, vocabulary_size: int = 50000, log=print) -> dict:
    """Write the pack (see the module docstring) into ``out``; returns what ``pack.json`` holds.
    A pack that fails is removed again, so a half-written one is never mistaken for a whole one."""
    root, out = Path(data_root), Path(out)
    missing = [p for p in COPIED + SUBSAMPLED if not (root / p).is_file()]
    if missing:
        raise FileNotFoundError(f"{root}: missing {', '.join(missing)}")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; name a new folder")
    try:
        return _write_pack(out, root, max_mb, seed, vocabulary_size, log)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise


def _write_pack(out: Path, root: Path, max_mb: float, seed: int, vocabulary_size: int, log) -> dict:
    budget = int(max_mb * 1e6)
    for p in COPIED:
        (out / p).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / p, out / p)
    words = write_vocabulary(out / VOCABULARY_FILE, vocabulary_size)
    fixed = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    room = budget - fixed
    if room <= 0:
        raise ValueError(f"--max-mb {max_mb}: the files copied whole already take {fixed / 1e6:.1f} MB")
    # the validation rows alone first, then the share of train rows that fills the room, from a
    # linear model of the bytes written (compressed size grows with the rows kept); each source is
    # read once, then written at each share tried
    sources = {p: read_corpus_arrays(root / p) for p in SUBSAMPLED}

    def write(share):
        counts = {}
        for p, arrays in sources.items():
            kept, counts[p] = subsample_arrays(arrays, share, seed, keep_val=p in VALIDATED, name=str(root / p))
            _save(out / p, kept)
        return counts, sum((out / p).stat().st_size for p in SUBSAMPLED)

    counts, val_only = write(0.0)
    if val_only > room:
        raise ValueError(f"--max-mb {max_mb}: the UNIPEN text validation rows alone take {val_only / 1e6:.1f} MB "
                         f"beside the {fixed / 1e6:.1f} MB copied whole")
    full = sum((root / p).stat().st_size for p in SUBSAMPLED)
    share = min(1.0, (room - val_only) / max(full - val_only, 1))
    for _ in range(6):
        counts, used = write(share)
        if used <= room:
            break
        share *= 0.98 * (room - val_only) / (used - val_only)
    else:
        raise ValueError(f"--max-mb {max_mb}: could not fit the UNIPEN rows into {room / 1e6:.1f} MB")
    info = {"data_root": str(root), "max_mb": max_mb, "seed": seed, "unipen_train_share": share,
            "copied": list(COPIED), "subsampled": counts, "vocabulary_words": words,
            "bytes": fixed + used}
    (out / "pack.json").write_text(json.dumps(info, indent=1) + "\n")
    log(f"pack: {out} holds {info['bytes'] / 1e6:.1f} MB: {', '.join(COPIED)} whole; UNIPEN "
        f"text val whole and {100 * share:.1f} % of its train rows; {words} vocabulary words")
    return info


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("out", help="new folder to write the data root into")
    p.add_argument("--data-root", default="../shared/data", help="the corpora to pack (default: %(default)s)")
    p.add_argument("--max-mb", type=float, default=42.0, help="size of the pack in MB (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="which UNIPEN train rows are kept (default: %(default)s)")


def run(args) -> int:
    try:
        pack(args.out, args.data_root, args.max_mb, args.seed)
    except (ValueError, OSError) as exc:  # a missing corpus, a full budget, a used folder: one line
        raise SystemExit(f"inkstream pack: {exc}") from exc
    return 0
