"""The trivial ONNX graph ``y = Identity(x)`` that ``inkstream bench`` runs to measure the fixed
cost of one onnxruntime call.

    python -m export.identity_graph        (re-writes runtime/samples/identity.onnx)

The bench reads the committed file (the edge install has no ``onnx`` package); this module says
what is in it, and a test checks that :func:`identity_model` still serializes to its bytes.
"""
from __future__ import annotations

from pathlib import Path

__all__ = ["IDENTITY_PATH", "identity_model", "main"]

IDENTITY_PATH = Path(__file__).resolve().parent.parent / "runtime" / "samples" / "identity.onnx"


def identity_model():
    """``y = Identity(x)``, x and y float32 of shape (1,); IR version 7 and opset 13 are pinned
    (not the installed onnx's newest) so the bytes do not change with the onnx release and every
    onnxruntime the runtime supports loads them."""
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "trivial",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    return helper.make_model(graph, producer_name="inkstream-bench", ir_version=7,
                             opset_imports=[helper.make_opsetid("", 13)])


def main() -> int:
    IDENTITY_PATH.write_bytes(identity_model().SerializeToString())
    print(f"wrote {IDENTITY_PATH} ({IDENTITY_PATH.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
