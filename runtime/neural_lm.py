"""A character LSTM language model over whole lines, to rescore a line's final readings.

The decoders' n-gram LMs look a few characters (:mod:`runtime.lm`) or two words
(:mod:`runtime.word_lm`) back, and that is what they can afford at every frame. When a line
ends, the word decoder's final beam holds many complete readings, and a better one is often among
them (docs/model_card.md, "N-best oracle"). This model reads each of the best few from the line
start, and the reading's decoder score gains ``weight`` times that log-probability plus a bonus
per character, since the LM has no end of line and every character costs it (second-pass
rescoring, as speech recognizers do with a neural LM). It runs through onnxruntime, numpy only.

The model is trained by ``inkstream lm neural`` (:mod:`training.neural_lm`). Its symbols are the
printable ASCII characters (ids 1-95, as in :class:`runtime.alphabet.Alphabet`) and a line-start
symbol (id 0).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import numpy as np

from runtime.alphabet import Alphabet
from runtime.model import session_options

DEFAULT_NEURAL_LM = Path(__file__).resolve().parent / "models" / "linelm.onnx"
# the characters have the handwriting model's ids; the id of its CTC blank is the line start
_ALPHABET = Alphabet()
_KNOWN = frozenset(_ALPHABET.chars)
LINE_START = _ALPHABET.blank
VOCAB_SIZE = _ALPHABET.size

# IAM-OnDB sets some punctuation apart ("support , a", "Mr . Foot ' s") and the other corpora do
# not; nothing in the ink tells which, so the LM scores both spellings as the running-text one
_SPACE_BEFORE = re.compile(r" +([,.;:!?)\]])")
_SPACE_AFTER = re.compile(r"([(\[]) +")
_APOSTROPHE = re.compile(r"(?<=\w) ?' ?(?=(?:s|t|re|ll|ve|d|m)\b)")
_SPACES = re.compile(r"\s+")


def lm_text(text: str) -> str:
    """``text`` as the LM reads it: single spaces, punctuation against its word, characters
    outside the alphabet dropped."""
    text = _SPACES.sub(" ", text).strip()
    text = _SPACE_BEFORE.sub(r"\1", text)
    text = _SPACE_AFTER.sub(r"\1", text)
    text = _APOSTROPHE.sub("'", text)
    return "".join(c for c in text if c in _KNOWN)


def encode_text(text: str) -> list:
    """Ids of the characters of ``text`` (ValueError naming one outside the alphabet)."""
    return _ALPHABET.encode(text)


class NeuralLineLM:
    """The line LM file (ONNX, from ``inkstream lm neural``) behind a numpy interface.

    ``log_prob(texts)`` gives each text's natural-log probability as a line: every character
    predicted from the line start, after :func:`lm_text`. A file that is not such a model is
    refused with a ValueError that names it.
    """

    def __init__(self, path: Optional[str | Path] = None, threads: int = 1):
        import onnxruntime as ort

        self.path = Path(path) if path is not None else DEFAULT_NEURAL_LM
        if not self.path.is_file():
            raise FileNotFoundError(f"line LM {self.path} does not exist (build it with `inkstream lm neural`)")
        try:
            self.session = ort.InferenceSession(str(self.path), session_options(threads),
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a bad file
            raise ValueError(f"line LM {self.path} is not a readable ONNX file: {exc}") from None
        self.meta = dict(self.session.get_modelmeta().custom_metadata_map)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if (self.meta.get("kind") != "inkstream-char-lm" or [i.name for i in inputs] != ["ids"]
                or [o.name for o in outputs] != ["log_probs"] or outputs[0].shape[-1] != VOCAB_SIZE):
            raise ValueError(f"{self.path} is not an inkstream line LM (metadata kind 'inkstream-char-lm', "
                             f"input 'ids', output 'log_probs' over {VOCAB_SIZE} symbols)")

    def log_prob(self, texts, char_bonus: float = 0.0) -> np.ndarray:
        """Natural-log probability of each text as a line (0.0 for an empty one), in one batched
        call, plus ``char_bonus`` per character the LM reads (after :func:`lm_text`)."""
        norm = [lm_text(t) for t in texts]
        unique = sorted(set(n for n in norm if n))
        scores = {"": 0.0}
        if unique:
            width = max(len(u) for u in unique)
            ids = np.zeros((len(unique), width + 1), dtype=np.int64)  # column 0: the line start
            for k, u in enumerate(unique):
                ids[k, 1:len(u) + 1] = encode_text(u)
            lp = self.session.run(None, {"ids": ids[:, :-1]})[0]
            target = ids[:, 1:]
            picked = np.take_along_axis(lp, target[..., None], axis=2)[..., 0]
            mask = np.arange(width)[None, :] < np.array([len(u) for u in unique])[:, None]
            for u, s in zip(unique, (picked * mask).sum(axis=1)):
                scores[u] = float(s)
        return np.array([scores[n] + char_bonus * len(n) for n in norm])
