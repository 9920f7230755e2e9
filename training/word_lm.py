"""``inkstream lm``: build the word n-gram LM (ARPA) of the word decoder from plain English text.

Reproducible: the same text files and flags give the same file, byte for byte. Default data:
``../shared/data/text/gutenberg.txt.gz`` and ``masc.txt.gz`` (both allow commercial use); add
``brown.txt.gz`` only for a non-commercial model (``--text`` lists the files). IAM-OnDB text is
never read.

The model is an interpolated modified Kneser-Ney n-gram (Chen & Goodman 1998; default trigram)
over LM units (:func:`runtime.word_lm.lm_units`: lowercase words and single punctuation marks,
one sentence per input line, ``<s>``/``</s>`` around it). The vocabulary is the
``--vocab`` most frequent English words of ``wordfreq`` plus every word seen ``--min-count``
times in the text, plus the punctuation marks; other words count as ``<unk>``, so the decoder
knows how likely an out-of-vocabulary word is in each context. The unigram level is mixed with
wordfreq's frequencies (``--wordfreq-weight``), which gives the vocabulary words the text lacks
a sound probability. N-grams of the highest order seen fewer than ``--min-top-count`` times are
dropped (their mass goes to the back-off, as in SRILM/KenLM pruning), which sets the file size.

Written as a back-off ARPA file (interpolated probabilities, back-off weight = the interpolation
weight), gzip-compressed when the name ends in ``.gz`` (fixed mtime, so reproducible).

Beside it, the word case table (``--case-out``; :func:`runtime.word_lm.read_word_case`): the LM
knows no case, so the decoder's case model gives every word the same odds of a capital; the table
gives the words that the text capitalises inside sentences (names, "Monday", "English") their own,
counted where a capital says something about the word: not a line's first word, not after a
sentence end or a colon.
"""
from __future__ import annotations

import argparse
import gzip
import io
import os
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from runtime.word_beam import TEXT_CASE_PRIORS
from runtime.word_lm import BOS, EOS, UNK, lm_units

DEFAULT_TEXT_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "text"
DEFAULT_TEXTS = ("gutenberg.txt.gz", "masc.txt.gz")
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "runtime" / "models" / "wordlm.arpa.gz"
CASE_TABLE_NAME = "wordcase.tsv.gz"  # written beside the LM unless --case-out says where
_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*")


def names_iam_ondb(path) -> bool:
    """True for a path that names IAM-OnDB (``iamondb``, ``IAM-OnDB``, ``iam_ondb``...): its text is
    the evaluation data, and no LM is built from it."""
    return re.search(r"iam[-_ ]?on[-_ ]?db", str(path).lower()) is not None


def text_paths(given) -> list:
    """The LM text files: ``given`` (a list of paths) or the default ones. ValueError names a file
    that does not exist or one of IAM-OnDB's."""
    paths = list(given) if given else [str(DEFAULT_TEXT_DIR / n) for n in DEFAULT_TEXTS]
    for p in paths:
        if not os.path.exists(p):
            raise ValueError(f"text file {p} does not exist")
        if names_iam_ondb(p):
            raise ValueError(f"refusing IAM-OnDB text {p} (it is the evaluation data)")
    return paths


def text_lines(paths):
    """Every line of the text files (gzip or plain), in order."""
    for p in paths:
        opener = gzip.open if str(p).endswith(".gz") else open
        with opener(p, "rt", encoding="utf-8") as f:
            yield from f


def unit_sentences(lines) -> list:
    """Unit lists of every non-empty line of the text."""
    return [units for units in map(lm_units, lines) if units]


def wordfreq_vocabulary(n: int, lang: str = "en") -> dict:
    """The ``n`` most frequent words of wordfreq that are single LM units -> frequency."""
    if n <= 0:
        return {}
    import wordfreq  # training dependency

    out = {}
    for w in wordfreq.top_n_list(lang, n):
        if _WORD_RE.fullmatch(w):
            out[w] = wordfreq.word_frequency(w, lang)
    return out


def _discounts(counts: np.ndarray) -> np.ndarray:
    """Modified Kneser-Ney discounts D1, D2, D3+ from the count-of-counts (Chen & Goodman)."""
    n = [int((counts == k).sum()) for k in (1, 2, 3, 4)]
    if min(n) == 0:
        return np.array([0.5, 1.0, 1.5])
    y = n[0] / (n[0] + 2 * n[1])
    d = np.array([1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]])
    return np.clip(d, 0.05, None)


def _pack(cols: list, bits: int) -> np.ndarray:
    key = np.zeros(len(cols[0]), np.int64)
    for c in cols:
        key = (key << bits) | c.astype(np.int64)
    return key


def build_kneser_ney(sentences: list, vocab: list, order: int = 3, min_top_count: int = 2,
                     unigram_prior: dict | None = None, prior_weight: float = 0.3,
                     min_bigram_count: int = 1) -> tuple:
    """Interpolated modified Kneser-Ney. Returns ``(words, grams)``: ``words`` the unigram strings
    (id order) and ``grams[n-1] = (id arrays (k, n), log10 prob, log10 back-off)`` per order.

    ``min_top_count`` / ``min_bigram_count`` drop rarer n-grams of the top order / of order 2
    (a trigram model; bigrams that a kept trigram starts or ends with stay). ``vocab`` lists the
    real words (``<unk>``, ``<s>``, ``</s>`` are added); ``unigram_prior``
    maps words to a prior distribution mixed into the unigram level with ``prior_weight``.
    """
    if order < 1 or order > 3:
        raise ValueError(f"order must be 1, 2 or 3, got {order}")
    words = [UNK, BOS, EOS] + sorted(set(vocab) - {UNK, BOS, EOS})
    ids = {w: i for i, w in enumerate(words)}
    V = len(words)
    bits = max(1, int(V - 1).bit_length())
    unk = ids[UNK]
    # the token stream with sentence marks; n-grams never cross a sentence
    toks = []
    for s in sentences:
        toks.append(ids[BOS])
        toks.extend(ids.get(u, unk) for u in s)
        toks.append(ids[EOS])
    t = np.array(toks, np.int64)
    bos = ids[BOS]
    # n-gram (ids, counts) per order: raw counts for the top order, continuation counts below
    raw = {}
    for n in range(1, order + 1):
        cols = [t[i:len(t) - n + 1 + i] for i in range(n)]
        ok = np.ones(len(cols[0]), bool)
        for i in range(1, n):  # no n-gram with a <s> after its first word (crossing sentences)
            ok &= cols[i] != bos
        for i in range(n - 1):  # nor one with </s> before its last
            ok &= cols[i] != ids[EOS]
        if n == 1:
            ok &= cols[0] != bos  # <s> is never predicted
        keys = _pack([c[ok] for c in cols], bits)
        uk, cnt = np.unique(keys, return_counts=True)
        raw[n] = (uk, cnt)

    def unpack(keys, n):
        return [((keys >> (bits * (n - 1 - i))) & ((1 << bits) - 1)) for i in range(n)]

    # counts used at each order: raw at the top; N1+(. w_2..w_n) below (an n-gram starting with
    # <s> has no left context, so its raw count is used, as in KenLM)
    used = {order: raw[order]}
    for n in range(order - 1, 0, -1):
        hk, _ = raw[n + 1]
        suffix = hk & ((1 << (bits * n)) - 1)
        sk, scnt = np.unique(suffix, return_counts=True)
        uk, cnt = raw[n]
        first = unpack(uk, n)[0]
        cont = np.zeros(len(uk), np.int64)
        pos = np.searchsorted(sk, uk)
        pos_ok = (pos < len(sk)) & (sk[np.minimum(pos, len(sk) - 1)] == uk)
        cont[pos_ok] = scnt[pos[pos_ok]]
        cc = np.where(first == bos, cnt, cont)
        keep = cc > 0
        used[n] = (uk[keep], cc[keep])

    probs = {}
    full = {}
    bows = {}
    # unigrams: discounted continuation counts, interpolated with uniform (and the prior)
    uk, cc = used[1]
    d = _discounts(cc)
    disc = d[np.minimum(cc, 3) - 1]
    total = cc.sum()
    p1 = np.zeros(V)
    p1[uk] = (cc - disc) / total
    gamma = disc.sum() / total
    p1 += gamma / (V - 1)  # uniform over every word but <s>
    p1[bos] = 0.0
    if unigram_prior:
        prior = np.zeros(V)
        for w, f in unigram_prior.items():
            if w in ids:
                prior[ids[w]] = f
        if prior.sum() > 0:
            prior /= prior.sum()
            p1 = (1 - prior_weight) * p1 + prior_weight * prior
    p1 /= p1.sum()
    probs[1] = (np.arange(V, dtype=np.int64), p1)

    prev_keys, prev_p = np.arange(V, dtype=np.int64), p1
    for n in range(2, order + 1):
        uk, cc = used[n]
        d = _discounts(cc)  # from the full counts, before pruning
        disc = d[np.minimum(cc, 3) - 1]
        ctx = uk >> bits
        # per context: total count and the discounted mass
        cu, inv = np.unique(ctx, return_inverse=True)
        ctot = np.bincount(inv, weights=cc)
        cmass = np.bincount(inv, weights=disc)
        gamma_ctx = cmass / ctot
        # lower-order probability of each n-gram's suffix
        suffix = uk & ((1 << (bits * (n - 1))) - 1)
        pos = np.searchsorted(prev_keys, suffix)
        p_low = prev_p[pos]
        p = (cc - disc) / ctot[inv] + gamma_ctx[inv] * p_low
        keep = np.ones(len(uk), bool)
        if n == order and min_top_count > 1:
            keep = cc >= min_top_count
        elif n == 2 and order == 3 and min_bigram_count > 1:
            keep = cc >= min_bigram_count  # bigrams that a kept trigram needs are added back below
        probs[n] = (uk[keep], p[keep])
        full[n] = (uk, p)
        bows[n - 1] = (cu, gamma_ctx)
        prev_keys, prev_p = uk, p  # full (unpruned) table for the next order's suffixes
    if order == 3 and min_bigram_count > 1:
        # the ARPA rule: the prefix and the suffix of every kept trigram are kept bigrams
        tk = probs[3][0]
        mask = (1 << (2 * bits)) - 1
        need = np.union1d(tk >> bits, tk & mask)
        keys = np.union1d(probs[2][0], need)
        fk, fp = full[2]
        probs[2] = (keys, fp[np.searchsorted(fk, keys)])
    grams = []
    for n in range(1, order + 1):
        keys, p = probs[n]
        logp = np.log10(np.maximum(p, 1e-99))
        if n == 1:
            logp[bos] = -99.0
        bo = np.zeros(len(keys))
        if n in bows and n < order:
            ck, g = bows[n]
            pos = np.searchsorted(ck, keys)
            hit = (pos < len(ck)) & (ck[np.minimum(pos, len(ck) - 1)] == keys)
            bo[hit] = np.log10(g[pos[hit]])
        grams.append((np.stack(unpack(keys, n), axis=1) if n > 1 else keys[:, None], logp, bo))
    return words, grams


_SENTENCE_END_RE = re.compile(r"[.!?:][\"')\]]*$")  # a token that ends a sentence (quotes and brackets after it)
_LEADING_WORD_RE = re.compile(r"[^\W\d_]+")  # letters, any alphabet


def count_word_case(lines) -> tuple:
    """``(capitalised, seen)`` Counters: per lowercase word (a token's leading letters), how often
    it starts with a capital and how often it is seen where case tells about the word (not a
    line's first token, not after a sentence end or a colon)."""
    capitalised, seen = Counter(), Counter()
    for line in lines:
        tokens = line.split()
        for prev, token in zip(tokens, tokens[1:]):
            lead = _LEADING_WORD_RE.match(token)
            if lead is None or _SENTENCE_END_RE.search(prev):
                continue
            word = lead.group(0).lower()
            seen[word] += 1
            capitalised[word] += token[0].isupper()
    return capitalised, seen


def word_case_table(capitalised: Counter, seen: Counter, prior: float, min_count: int = 2,
                    min_prob: float = 0.3, prior_weight: float = 1.0) -> list:
    """``[(word, P(capital)), ...]`` sorted: each word of two letters or more seen ``min_count``
    times whose capital probability, smoothed towards ``prior`` (the case model's word-start
    prior) with ``prior_weight`` pseudo-counts, is at least ``min_prob``. The words below it are
    left to the prior: they would only make a small letter a little likelier than it already is.
    A letter alone is left to the ink: in text it is mostly an initial or a label ("J. Smith",
    "part B", so "b" would lean to a capital), written alone it is any character (UNIPEN chars
    `val` read 2,335 characters wrong with the letters in the table, 2,290 without)."""
    rows = []
    for word, n in seen.items():
        p = (capitalised[word] + prior_weight * prior) / (n + prior_weight)
        if len(word) > 1 and n >= min_count and p >= min_prob:
            rows.append((word, p))
    return sorted(rows)


def _write_text(path, text: str) -> None:
    """Write ``text`` (gzip when ``path`` ends in ``.gz``, with a fixed mtime: reproducible)."""
    data = text.encode("utf-8")
    path = str(path)
    if path.endswith(".gz"):
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)


def write_word_case(path, rows: list) -> None:
    """Write the word case table: ``word<TAB>probability`` a line (3 decimals)."""
    _write_text(path, "".join(f"{w}\t{p:.3f}\n" for w, p in rows))


def write_arpa(path, words: list, grams: list) -> None:
    """Write an ARPA file (gzip when ``path`` ends in ``.gz``, with a fixed mtime)."""
    buf = io.StringIO()
    buf.write("\\data\\\n")
    for n, (ids, _, _) in enumerate(grams, start=1):
        buf.write(f"ngram {n}={len(ids)}\n")
    order = len(grams)
    for n, (ids, logp, bo) in enumerate(grams, start=1):
        buf.write(f"\n\\{n}-grams:\n")
        has_bo = n < order
        for row, lp, b in zip(ids.tolist(), logp.tolist(), bo.tolist()):
            text = " ".join(words[i] for i in row)
            if has_bo:
                buf.write(f"{lp:.6g}\t{text}\t{b:.6g}\n")
            else:
                buf.write(f"{lp:.6g}\t{text}\n")
    buf.write("\n\\end\\\n")
    _write_text(path, buf.getvalue())


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--text", nargs="+", default=None, metavar="FILE",
                        help=f"text files, one sentence a line (default: {', '.join(DEFAULT_TEXTS)} in "
                             f"{DEFAULT_TEXT_DIR}; add brown.txt.gz only for a non-commercial model)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="ARPA file to write (.gz: gzip)")
    parser.add_argument("--order", type=int, default=3, help="n-gram order (1-3)")
    parser.add_argument("--vocab", type=int, default=50_000, help="most frequent wordfreq words in the vocabulary")
    parser.add_argument("--min-count", type=int, default=2, help="text words seen this often join the vocabulary")
    parser.add_argument("--min-top-count", type=int, default=3,
                        help="drop highest-order n-grams seen fewer times (sets the size)")
    parser.add_argument("--min-bigram-count", type=int, default=2,
                        help="for a trigram: drop bigrams seen fewer times (continuation counts; smaller file)")
    parser.add_argument("--wordfreq-weight", type=float, default=0.3,
                        help="weight of wordfreq's frequencies mixed into the unigram level")
    parser.add_argument("--lang", default="en", help="wordfreq language")
    parser.add_argument("--case-out", default=None,
                        help=f"word case table to write (.gz: gzip; default: {CASE_TABLE_NAME} beside --out)")
    parser.add_argument("--case-min-count", type=int, default=2, help="words seen fewer times inside sentences "
                        "are left out of the case table")
    parser.add_argument("--case-min-prob", type=float, default=0.3,
                        help="words capitalised less often than this (smoothed) are left out of the case table")


def run(args) -> int:
    try:
        paths = text_paths(args.text)
    except ValueError as exc:
        print(f"inkstream lm: {exc}", file=sys.stderr)
        return 2
    if args.case_min_count < 1 or not 0 < args.case_min_prob < 1:
        print("inkstream lm: --case-min-count must be >= 1 and --case-min-prob in (0, 1)", file=sys.stderr)
        return 2
    if args.min_top_count < 1 or args.min_bigram_count < 1:
        print("inkstream lm: --min-top-count and --min-bigram-count must be >= 1", file=sys.stderr)
        return 2
    if not 0 <= args.wordfreq_weight < 1:
        print(f"inkstream lm: --wordfreq-weight must be in [0, 1), got {args.wordfreq_weight}", file=sys.stderr)
        return 2
    lines = list(text_lines(paths))  # read once: the LM and the case table both count them
    sentences = unit_sentences(lines)
    counts = Counter(u for s in sentences for u in s)
    prior = wordfreq_vocabulary(args.vocab, args.lang)
    vocab = set(prior)
    vocab.update(u for u, c in counts.items() if c >= args.min_count)
    vocab.update(u for u in counts if not _WORD_RE.fullmatch(u))  # punctuation marks
    try:
        words, grams = build_kneser_ney(sentences, sorted(vocab), args.order, args.min_top_count, prior,
                                        args.wordfreq_weight, args.min_bigram_count)
    except ValueError as exc:
        print(f"inkstream lm: {exc}", file=sys.stderr)
        return 2
    case_rows = word_case_table(*count_word_case(lines), TEXT_CASE_PRIORS.word_start,
                                args.case_min_count, args.case_min_prob)
    case_out = args.case_out or str(Path(args.out).with_name(CASE_TABLE_NAME))
    try:
        write_arpa(args.out, words, grams)
        write_word_case(case_out, case_rows)
    except OSError as exc:  # a folder that does not exist, a read-only place
        print(f"inkstream lm: cannot write: {exc}", file=sys.stderr)
        return 2
    tokens = sum(len(s) for s in sentences)
    oov = sum(c for u, c in counts.items() if u not in vocab)
    sizes = ", ".join(f"{n}-grams {len(g[0])}" for n, g in enumerate(grams, start=1))
    print(f"{args.out}: {len(sentences)} sentences, {tokens} units ({100 * oov / max(tokens, 1):.2f} % <unk>), "
          f"vocabulary {len(words)}, {sizes}; {os.path.getsize(args.out) / 1e6:.2f} MB")
    print(f"{case_out}: {len(case_rows)} words capitalised inside sentences; "
          f"{os.path.getsize(case_out) / 1e3:.0f} kB")
    return 0
