"""The recognizer API as a device uses it, for the install checks (edge_install_check.sh and
aarch64_check.sh run it in their own environments; pytest does not collect it).

    python tests/api_check.py FIXTURE.npz [MODEL.onnx]

For each decoder: three streams fed 2 samples at a time and decoded in batches give the text of
whole-sample recognition, and every result is final after input_finished. Never imports torch or
onnx. Exits non-zero on any failure.
"""
import sys

import numpy as np

from runtime.ink import load_corpus
from runtime.recognizer import DECODERS, OFFLINE, StreamingRecognizer

corpus = load_corpus(sys.argv[1])
model = sys.argv[2] if len(sys.argv) > 2 and sys.argv[2] else None
pts = np.asarray(corpus.points(0), np.float64)
for decoder in DECODERS:
    rec = StreamingRecognizer(model, decoder=decoder, endpoint=OFFLINE)
    streams = [rec.create_stream() for _ in range(3)]
    for a in range(0, len(pts), 2):
        for s in streams:
            s.accept_samples(pts[a:a + 2])
        rec.decode_streams(streams)
    for s in streams:
        s.input_finished()
    rec.decode_streams(streams)
    texts = {rec.get_result(s).text for s in streams}
    assert texts == {rec.recognize(pts).text}, (decoder, texts)
    assert all(rec.get_result(s).is_final for s in streams)
    print(f"ok {decoder}: {texts.pop()!r}")
for banned in ("torch", "onnx"):
    assert banned not in sys.modules, banned
