"""Training data: sources, the feature cache, and length-bucketed batches.

A *source spec* names where samples come from, optionally with a weight (``spec=weight``):

=======================  ==================================================================
``iamondb:train``        ``<data_root>/iamondb/train.npz`` (also ``val``, ``test``)
``unipen-words:train``   ``<data_root>/unipen/words.npz`` rows with ``split == "train"``
``unipen-text:train``    likewise ``text.npz``; ``unipen-chars:train`` for ``chars.npz``
``imadocsen-words:train`` ``<data_root>/imadocsen/words.npz`` without ``IMADOCSEN_VAL_WRITERS``
                         (``:val`` those writers only; no suffix: every writer, refused for training)
``imadocsen-sentences``  likewise ``sentences.npz`` (``:train``, ``:val``)
``synthetic:N``          N lines from :mod:`training.synthetic` (seeded, rendered once): words
                         at real frequencies, numbers, punctuation, symbols
``synthetic-text:N``     N lines of real running text (``<data_root>/text/``, the commercially
                         usable Gutenberg and MASC parts) in synthetic hands
``synthetic-short:N``    N short items as written on a tablet: single characters, capitals
                         and letter pairs ("U V W", "NC Tx"), short words, abbreviations, numbers
``npz:PATH``             any corpus file in the shared npz format
``iamondb-root:PATH``    a user's IAM-OnDB folder (``lineStrokes/``, ``ascii/``)
``inkml:PATH``           a folder of ``.inkml`` files with truth annotations
=======================  ==================================================================

The weight says how many of the source's samples go into each epoch, as a fraction of its size
(``iamondb:train=1`` uses every line once per epoch, ``unipen-words:train=0.2`` a fresh fifth).

Every sample goes through :class:`runtime.features.FeatureExtractor`, the same object the device
runs, and the frames are cached on disk keyed by the source file and the feature config.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from runtime.alphabet import Alphabet
from runtime.features import NUM_FEATURES, FeatureConfig, extract
from runtime.ink import load_corpus

HELD_OUT = {("iamondb", "val"), ("iamondb", "test"), ("unipen-words", "val"), ("unipen-text", "val"),
            ("unipen-chars", "val"), ("imadocsen-words", "val"), ("imadocsen-sentences", "val")}

# The shared ImadocSen files hold only the task1.txt training writers; these four (every sixth by
# writer number) are kept out of ImadocSen training as its validation writers, so its CER can be
# measured on writers the model never saw: inkstream eval .../imadocsen/sentences.npz --writers ...
IMADOCSEN_VAL_WRITERS = ("writer3", "writer16", "writer25", "writer38")

# largest UNIPEN "text" samples are whole paragraphs with truncated labels; they teach nothing
MAX_POINTS = 6000


@dataclass
class FeatureSet:
    """Frames of many samples, concatenated: sample i is ``frames[offsets[i]:offsets[i+1]]``."""

    name: str
    frames: np.ndarray  # (total, NUM_FEATURES) float32
    offsets: np.ndarray  # (n+1,) int64
    labels: list  # list of np.int64 arrays (alphabet ids)
    texts: list
    ids: list

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def get(self, i: int) -> np.ndarray:
        return self.frames[self.offsets[i]:self.offsets[i + 1]]


def parse_source(spec: str) -> tuple[str, float]:
    """``"name[:arg]=weight"`` -> ``("name[:arg]", weight)``."""
    if "=" in spec:
        name, w = spec.rsplit("=", 1)
        try:
            weight = float(w)
        except ValueError:
            raise ValueError(f"data source {spec!r}: weight {w!r} is not a number") from None
        if weight <= 0:
            raise ValueError(f"data source {spec!r}: weight must be > 0")
        return name, weight
    return spec, 1.0


# each synthetic kind draws its own writers, so mixing them never repeats a hand with a text
SYNTHETIC_SEEDS = {"synthetic": 1234, "synthetic-text": 2345, "synthetic-short": 3456}
# the running text the synthetic lines copy: the parts of data/text/ that allow commercial use
SYNTHETIC_TEXT_FILES = ("gutenberg.txt.gz", "masc.txt.gz")


def _synth_config(kind: str, data_root: str):
    from training.pack import VOCABULARY_FILE
    from training.synthetic import SynthConfig

    # a data root made by `inkstream pack` carries wordfreq's word list (same words and weights)
    vocab = Path(data_root) / VOCABULARY_FILE
    common = {"vocabulary_file": str(vocab)} if vocab.is_file() else {}
    if kind == "synthetic-text":
        files = tuple(str(Path(data_root) / "text" / f) for f in SYNTHETIC_TEXT_FILES)
        return SynthConfig(kind="corpus", words_per_line=(3, 10), corpus_files=files, **common)
    if kind == "synthetic-short":
        return SynthConfig(kind="short", **common)
    return SynthConfig(**common)


def _source_samples(name: str, data_root: str, for_training: bool):
    """Yield ``(points, text, id)`` of a source; checks that training never sees held-out data."""
    kind, _, arg = name.partition(":")
    if for_training and (kind, arg) in HELD_OUT:
        raise ValueError(f"data source {name!r} is a validation/test set and may not be trained on")
    root = Path(data_root)
    if kind == "iamondb":
        if arg not in ("train", "val", "test"):
            raise ValueError(f"data source {name!r}: use iamondb:train, iamondb:val or iamondb:test")
        c = load_corpus(root / "iamondb" / f"{arg}.npz")
        idx = np.arange(len(c))
    elif kind in ("unipen-words", "unipen-text", "unipen-chars"):
        if arg not in ("train", "val"):
            raise ValueError(f"data source {name!r}: the UNIPEN split is 'train' or 'val'")
        c = load_corpus(root / "unipen" / (kind.split("-")[1] + ".npz"))
        split, quality = c.field("split"), c.field("quality")
        idx = np.flatnonzero((split == arg) & (quality != "BAD"))
    elif kind in ("imadocsen-words", "imadocsen-sentences"):
        if arg not in ("", "train", "val"):
            raise ValueError(f"data source {name!r}: the ImadocSen split is 'train' or 'val' (by writer)")
        if for_training and not arg:
            raise ValueError(f"data source {name!r} reads every writer, the validation writers too: "
                             f"train on {kind}:train (or name the file as npz:PATH to take all of it)")
        c = load_corpus(root / "imadocsen" / (kind.split("-")[1] + ".npz"))
        held = np.isin(c.writers, IMADOCSEN_VAL_WRITERS)
        idx = np.flatnonzero(held if arg == "val" else ~held if arg == "train" else np.ones(len(c), bool))
    elif kind == "npz":
        c = load_corpus(arg)
        idx = np.arange(len(c))
    elif kind in ("iamondb-root", "inkml"):
        from runtime.formats import ink_io  # written for user folders; imported lazily

        if kind == "iamondb-root":
            inks = ink_io.read_iamondb(arg)
        else:
            inks = [ink for p in sorted(Path(arg).rglob("*.inkml")) for ink in ink_io.read_inkml(p)]
        for ink in inks:
            if ink.text:
                yield ink.to_points(), ink.text, ink.id
        return
    elif kind in SYNTHETIC_SEEDS:
        from training.synthetic import SynthConfig, SyntheticInk

        n = int(arg or 10000)
        gen = SyntheticInk(_synth_config(kind, data_root), seed=SYNTHETIC_SEEDS[kind])
        for i in range(n):
            pts, text = gen.sample(i)
            yield pts, text, f"synthetic/{i}"
        return
    else:
        raise ValueError(f"unknown data source {name!r} (see training.data for the list)")
    for i in idx:
        yield c.points(int(i)), str(c.texts[i]), str(c.ids[i])


def _featurize(args):
    items, fcfg_json = args
    fcfg = FeatureConfig.from_json(fcfg_json)
    return [(extract(p, fcfg), t, i) for p, t, i in items]


def _cache_key(name: str, data_root: str, fcfg: FeatureConfig, alphabet: Alphabet) -> str:
    h = hashlib.sha256()
    h.update(name.encode())
    h.update(fcfg.to_json().encode())
    h.update(alphabet.chars.encode())
    h.update(str(MAX_POINTS).encode())
    kind, _, arg = name.partition(":")
    if kind == "npz":
        files = [Path(arg)]
    elif kind in ("iamondb-root", "inkml"):
        files = sorted(p for p in Path(arg).rglob("*") if p.is_file())
    elif kind in SYNTHETIC_SEEDS:  # the generator's code, fonts and texts decide what it renders
        from training import synthetic

        here = Path(synthetic.__file__).parent
        files = [Path(synthetic.__file__), here / "fonts.py"] + sorted((here / "fonts").glob("*"))
        synth = _synth_config(kind, data_root)
        files += [Path(f) for f in synth.corpus_files + ((synth.vocabulary_file,) if synth.vocabulary_file else ())]
    else:
        files = sorted(Path(data_root).rglob("*.npz"))
        if kind.startswith("imadocsen"):  # which writers a split holds is decided here, not in the file
            h.update(repr(IMADOCSEN_VAL_WRITERS).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:16]


def load_features(name: str, data_root: str, fcfg: FeatureConfig, alphabet: Alphabet,
                  cache_dir: Optional[str], for_training: bool, workers: int = 2,
                  log=print) -> FeatureSet:
    """Frames and labels of a source, from the cache when possible.

    Samples whose text the alphabet cannot write, that are too long, or that have fewer frames
    than CTC needs for their label are dropped (counted in the log line).
    """
    cache_file = None
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
        safe = name.replace("/", "_").replace(":", "-")[:60]
        cache_file = Path(cache_dir) / f"{safe}-{_cache_key(name, data_root, fcfg, alphabet)}.npz"
        if cache_file.exists():
            d = np.load(cache_file, allow_pickle=False)
            texts = [str(t) for t in d["texts"]]
            log(f"[data] {name}: {len(texts)} samples, {len(d['frames'])} frames (from the cache)")
            return FeatureSet(name, d["frames"], d["offsets"], [np.array(alphabet.encode(t), np.int64) for t in texts],
                              texts, [str(i) for i in d["ids"]])
    items, dropped_chars, dropped_long = [], 0, 0
    for pts, text, sid in _source_samples(name, data_root, for_training):
        if not alphabet.covers(text):
            dropped_chars += 1
            continue
        if len(pts) > MAX_POINTS:
            dropped_long += 1
            continue
        items.append((np.asarray(pts, np.float64), text, sid))
    chunks = [items[i:i + 500] for i in range(0, len(items), 500)]
    jobs = [(ch, fcfg.to_json()) for ch in chunks]
    if workers > 1 and len(chunks) > 1:
        with get_context("spawn").Pool(workers) as pool:
            results = pool.map(_featurize, jobs)
    else:
        results = [_featurize(j) for j in jobs]
    frames, texts, ids, lengths, dropped_short = [], [], [], [], 0
    for res in results:
        for fr, text, sid in res:
            need = len(text) + sum(a == b for a, b in zip(text, text[1:]))  # CTC needs a blank between repeats
            if len(fr) < need:
                dropped_short += 1
                continue
            frames.append(fr)
            texts.append(text)
            ids.append(sid)
            lengths.append(len(fr))
    offsets = np.zeros(len(frames) + 1, np.int64)
    offsets[1:] = np.cumsum(lengths)
    allf = np.concatenate(frames) if frames else np.zeros((0, NUM_FEATURES), np.float32)
    log(f"[data] {name}: {len(texts)} samples, {len(allf)} frames "
        f"(dropped: {dropped_chars} outside alphabet, {dropped_long} over {MAX_POINTS} points, "
        f"{dropped_short} too few frames for the label)")
    if cache_file is not None:
        tmp = cache_file.with_suffix(".tmp.npz")
        np.savez(tmp, frames=allf, offsets=offsets, texts=np.array(texts), ids=np.array(ids))
        os.replace(tmp, cache_file)
    return FeatureSet(name, allf, offsets, [np.array(alphabet.encode(t), np.int64) for t in texts], texts, ids)


def plan_epoch(sets: list[FeatureSet], weights: list[float], epoch: int, seed: int,
               max_batch_frames: int, sort_by_length: bool) -> list[list[tuple[int, int]]]:
    """Batches of ``(set index, sample index)`` for one epoch, deterministic in ``(seed, epoch)``.

    Samples are bucketed by length so a batch wastes little padding (``batch size x longest``
    stays under ``max_batch_frames``). With ``sort_by_length`` the epoch runs short samples first
    (SortaGrad): short sequences leave the CTC "all blank" plateau much sooner.
    """
    rng = np.random.default_rng([seed, epoch])
    pool = []
    for si, (fs, w) in enumerate(zip(sets, weights)):
        n = len(fs)
        take = int(round(w * n))
        if take >= n:
            reps, rest = divmod(take, n)
            idx = np.concatenate([np.arange(n)] * reps + [rng.choice(n, rest, replace=False)])
        else:
            idx = rng.choice(n, take, replace=False)
        lens = fs.lengths()[idx]
        pool.extend(zip([si] * len(idx), idx.tolist(), lens.tolist()))
    order = rng.permutation(len(pool))
    pool = [pool[i] for i in order]
    if sort_by_length:
        pool.sort(key=lambda r: r[2])
        groups = [pool]
    else:
        group = 4000  # sort within large random groups: little padding, still random batches
        groups = [sorted(pool[i:i + group], key=lambda r: r[2]) for i in range(0, len(pool), group)]
    batches = []
    for g in groups:
        cur, longest = [], 0
        for si, i, n in g:
            longest2 = max(longest, n)
            if cur and longest2 * (len(cur) + 1) > max_batch_frames:
                batches.append(cur)
                cur, longest2 = [], n
            cur.append((si, i))
            longest = longest2
        if cur:
            batches.append(cur)
    if not sort_by_length:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def collate(sets: list[FeatureSet], batch: Iterable[tuple[int, int]]):
    """numpy arrays ``x (B, T, F)``, ``x_lens``, ``targets`` (concatenated), ``target_lens``, texts."""
    items = [(sets[si].get(i), sets[si].labels[i], sets[si].texts[i]) for si, i in batch]
    t_max = max(len(f) for f, _, _ in items)
    x = np.zeros((len(items), t_max, NUM_FEATURES), np.float32)
    for k, (f, _, _) in enumerate(items):
        x[k, :len(f)] = f
    x_lens = np.array([len(f) for f, _, _ in items], np.int64)
    targets = np.concatenate([lab for _, lab, _ in items])
    t_lens = np.array([len(lab) for _, lab, _ in items], np.int64)
    return x, x_lens, targets, t_lens, [t for _, _, t in items]
