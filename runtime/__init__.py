"""inkstream's runtime: streaming recognition of online handwriting (numpy + onnxruntime, no torch).

The public API, importable from here::

    from runtime import StreamingRecognizer
    rec = StreamingRecognizer()          # the shipped model and the default decoder
    s = rec.create_stream(); s.accept_samples(points); rec.decode_stream(s); rec.get_result(s).text

Names are loaded on first use, so ``import runtime.features`` (what training imports) stays light.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "StreamingRecognizer": "runtime.recognizer", "InkStream": "runtime.recognizer",
    "EndpointConfig": "runtime.recognizer", "OFFLINE": "runtime.recognizer",
    "RecognitionResult": "runtime.recognizer", "CharAlignment": "runtime.recognizer",
    "FeatureExtractor": "runtime.features", "FeatureConfig": "runtime.features",
    "OnnxModel": "runtime.model", "ModelFileError": "runtime.model",
    "Ink": "runtime.ink", "InkFormatError": "runtime.ink", "load_corpus": "runtime.ink",
    "read_ink_file": "runtime.formats.ink_io", "evaluate": "runtime.evaluate",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__():
    return sorted(list(globals()) + __all__)
