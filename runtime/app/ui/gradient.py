"""The fourth row of the network view: which ink the current decision rests on, on request.

A page that shows the network view asks for a line's gradient (``{"type": "gradient", "line":
N}``); :class:`GradientService` answers with :func:`runtime.saliency.ink_saliency` for that line's
rows: the character the network is most sure of over the last frames, and for every pen sample
how much that output depends on it (0..1). It runs on a thread of its own, one request at a
time, so neither the event loop nor recognition waits for it (a line of 1,000 samples takes a
few hundred milliseconds; a longer line costs no more, see ``prefix_model``).

The gradient needs the float32 weights: for the shipped int8 model (``model.int8.onnx``) the
float file beside it (``model.onnx``) is read; a model without one gets an answer that says so.
"""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["GradientService", "GradientBusy", "float_model_path"]


def float_model_path(path: str) -> Path:
    """The float32 file that holds the weights of the model at ``path``: ``x.onnx`` for
    ``x.int8.onnx`` when it exists, else ``path`` itself (an int8 file is refused on load)."""
    p = Path(path)
    if p.name.endswith(".int8.onnx"):
        sibling = p.with_name(p.name[: -len(".int8.onnx")] + ".onnx")
        if sibling.exists():
            return sibling
    return p


class GradientBusy(RuntimeError):
    """Too many requests wait already (each page may have one in flight; many pages may not
    queue without end)."""


class GradientService:
    """Computes gradient answers for one model, lazily loaded on the first request; at most
    ``max_waiting`` requests queue at once, more are refused (:class:`GradientBusy`)."""

    def __init__(self, model_path: str, max_waiting: int = 4):
        self.model_path = model_path
        self.max_waiting = max_waiting
        self._waiting = 0  # touched on the event loop only
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inkstream-gradient")
        self._lock = threading.Lock()
        self._models = None  # (InputGradientModel, OnnxModel) once loaded
        self._load_error: Optional[str] = None

    def _load(self):
        with self._lock:
            if self._models is None and self._load_error is None:
                from runtime.model import OnnxModel
                from runtime.saliency import InputGradientModel

                path = float_model_path(self.model_path)
                try:
                    self._models = (InputGradientModel(path), OnnxModel(path))
                except (OSError, ValueError) as exc:
                    self._load_error = f"no gradient for this model: {exc}"
            return self._models

    def answer(self, line: int, rows: np.ndarray) -> dict:
        """The ``gradient`` message for ``rows`` (``x, y, t, pen_up_after``) of line ``line``."""
        from runtime.saliency import ink_saliency

        message = {"type": "gradient", "line": line, "num_samples": len(rows), "values": None}
        models = self._load()
        if models is None:
            message["error"] = self._load_error
            return message
        result = ink_saliency(rows, model=models[0], prefix_model=models[1]) if len(rows) else None
        if result is not None:
            message.update(char=result.character, frame=result.frame_index, sample=result.sample_index,
                           probability=round(result.probability, 3),
                           values=[round(float(v), 3) for v in result.values])
        return message

    def submit(self, line: int, rows: np.ndarray):
        """A coroutine giving the answer, computed on the service's thread (call on the event loop)."""
        if self._waiting >= self.max_waiting:
            raise GradientBusy(f"gradient: {self._waiting} requests are waiting; ask again later")
        self._waiting += 1
        return self._answer_async(line, rows)

    async def _answer_async(self, line: int, rows: np.ndarray) -> dict:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self.answer, line, rows)
        finally:
            self._waiting -= 1

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
