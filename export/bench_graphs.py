"""Which ONNX graph should carry the LSTM? Timings of the alternatives, as ratios, in one run.

    inkstream bench --graphs [--model MODEL.onnx]      (default: the shipped model)

For 1, 4 and 64 frames per call (one stream, one thread, no spinning: the runtime's session)
it times:

* ``lstm-op``: the exported graph, onnxruntime's ``LSTM`` kernel per layer (the baseline);
* ``scan-matmul``: the same weights as one ``Scan`` over time whose body runs every layer's
  cell as a single MatMul over ``[input, h]`` with the gates fused, built here from the
  exported graph's own weights (read by :func:`training.onnx_import.checkpoint_from_onnx`, so
  needs torch) and checked against it;
* ``lstm-int8``: the int8 copy beside the model (``DynamicQuantizeLSTM``), when present.

It prints microseconds per call and per frame and each graph's ratio to the baseline. This is
the measurement behind the README's Speed section: a one-frame call is bound by reading the
weights (3.1 MB in float32 at 3x192, more than a core's L2 here), so a graph that reads the same
float weights differently does not help, while int8 weights (a quarter of the bytes) do; and
int8 quantizes activations per call, so its output depends on how frames are chunked.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np



def scan_matmul_graph(model_path: str):
    """The exported model rebuilt as a ``Scan`` of fused-gate MatMul cells (same inputs/outputs)."""
    from onnx import TensorProto as TP
    from onnx import helper as oh
    from onnx import numpy_helper as nh

    from training.onnx_import import checkpoint_from_onnx

    ckpt = checkpoint_from_onnx(model_path)
    weights = {name: t.numpy() for name, t in ckpt["model"].items()}  # torch layout: Linear (out, in), gates i, f, g, o
    num_layers, hidden, proj = (ckpt["model_config"][k] for k in ("num_layers", "hidden_size", "input_size"))
    if not proj:
        raise ValueError(f"{model_path}: a model without an input projection is not rebuilt here")
    w_in, b_in = weights["input_proj.0.weight"].T.copy(), weights["input_proj.0.bias"]
    w_out, b_out = weights["output.weight"].T.copy(), weights["output.bias"]
    body_nodes, body_inits, hs, cs = [], [nh.from_array(np.array([0], np.int64), "axis0")], [], []
    x = "x_t"
    for k in range(num_layers):
        # [input; h] -> gates i, f, g, o in one MatMul
        fused = np.concatenate([weights[f"lstm.weight_ih_l{k}"].T, weights[f"lstm.weight_hh_l{k}"].T], 0)
        bias = weights[f"lstm.bias_ih_l{k}"] + weights[f"lstm.bias_hh_l{k}"]
        body_inits += [nh.from_array(fused.astype(np.float32), f"W{k}"), nh.from_array(bias.astype(np.float32), f"B{k}"),
                       nh.from_array(np.array([k], np.int64), f"layer{k}")]
        n = lambda op, ins, outs, **kw: body_nodes.append(oh.make_node(op, ins, outs, **kw))
        n("Gather", ["h_in", f"layer{k}"], [f"h3_{k}"], axis=0)
        n("Gather", ["c_in", f"layer{k}"], [f"c3_{k}"], axis=0)
        n("Squeeze", [f"h3_{k}", "axis0"], [f"h_{k}"])
        n("Squeeze", [f"c3_{k}", "axis0"], [f"c_{k}"])
        n("Concat", [x, f"h_{k}"], [f"xh_{k}"], axis=1)
        n("MatMul", [f"xh_{k}", f"W{k}"], [f"gm_{k}"])
        n("Add", [f"gm_{k}", f"B{k}"], [f"g_{k}"])
        n("Split", [f"g_{k}"], [f"i_{k}", f"f_{k}", f"u_{k}", f"o_{k}"], axis=1, num_outputs=4)
        for gate in "iof":
            n("Sigmoid", [f"{gate}_{k}"], [f"s{gate}_{k}"])
        n("Tanh", [f"u_{k}"], [f"tu_{k}"])
        n("Mul", [f"sf_{k}", f"c_{k}"], [f"fc_{k}"])
        n("Mul", [f"si_{k}", f"tu_{k}"], [f"iu_{k}"])
        n("Add", [f"fc_{k}", f"iu_{k}"], [f"cn_{k}"])
        n("Tanh", [f"cn_{k}"], [f"tc_{k}"])
        n("Mul", [f"so_{k}", f"tc_{k}"], [f"hn_{k}"])
        n("Unsqueeze", [f"hn_{k}", "axis0"], [f"hu_{k}"])
        n("Unsqueeze", [f"cn_{k}", "axis0"], [f"cu_{k}"])
        hs.append(f"hu_{k}")
        cs.append(f"cu_{k}")
        x = f"hn_{k}"
    body_nodes += [oh.make_node("Concat", hs, ["h_next"], axis=0), oh.make_node("Concat", cs, ["c_next"], axis=0),
                   oh.make_node("Identity", [x], ["y_t"])]
    state = lambda name: oh.make_tensor_value_info(name, TP.FLOAT, [num_layers, None, hidden])
    body = oh.make_graph(body_nodes, "cell", [state("h_in"), state("c_in"), oh.make_tensor_value_info("x_t", TP.FLOAT, [None, proj])],
                         [state("h_next"), state("c_next"), oh.make_tensor_value_info("y_t", TP.FLOAT, [None, hidden])],
                         body_inits)
    nodes = [oh.make_node("MatMul", ["x", "w_in"], ["xp"]), oh.make_node("Add", ["xp", "b_in"], ["xb"]),
             oh.make_node("Tanh", ["xb"], ["xi"]),
             oh.make_node("Scan", ["h", "c", "xi"], ["h_out", "c_out", "y"], num_scan_inputs=1, body=body,
                          scan_input_axes=[1], scan_output_axes=[1]),
             oh.make_node("MatMul", ["y", "w_out"], ["lo"]), oh.make_node("Add", ["lo", "b_out"], ["logits"]),
             oh.make_node("LogSoftmax", ["logits"], ["log_probs"], axis=-1)]
    io = lambda name, shape: oh.make_tensor_value_info(name, TP.FLOAT, shape)
    graph = oh.make_graph(
        nodes, "scan_matmul_lstm",
        [io("x", ["batch", "time", w_in.shape[0]]), io("h", [num_layers, "batch", hidden]), io("c", [num_layers, "batch", hidden])],
        [io("log_probs", ["batch", "time", w_out.shape[1]]), io("h_out", [num_layers, "batch", hidden]),
         io("c_out", [num_layers, "batch", hidden])],
        [nh.from_array(w_in, "w_in"), nh.from_array(b_in, "b_in"), nh.from_array(w_out, "w_out"), nh.from_array(b_out, "b_out")])
    # IR 9 / opset 18: what onnxruntime releases from 1.16 on load
    return oh.make_model(graph, opset_imports=[oh.make_opsetid("", 18)], ir_version=9), num_layers, hidden


def _time_call(sess, feed, calls: int, repeats: int = 7) -> float:
    """Seconds per call: the fastest of ``repeats`` loops of ``calls`` calls (the least disturbed one)."""
    for _ in range(20):
        sess.run(None, feed)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            sess.run(None, feed)
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def run_bench(model_path: Optional[str] = None, log=print) -> dict:
    import onnxruntime as ort

    from runtime.model import default_model_path, session_options

    model_path = str(model_path or default_model_path(int8=False))
    scan_model, num_layers, hidden = scan_matmul_graph(model_path)
    graphs = {"lstm-op": model_path, "scan-matmul": scan_model.SerializeToString()}
    int8 = Path(model_path).with_name(Path(model_path).stem + ".int8.onnx")
    if int8.exists():
        graphs["lstm-int8"] = str(int8)
    sessions = {k: ort.InferenceSession(v, session_options(), providers=["CPUExecutionProvider"]) for k, v in graphs.items()}
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 16, 7)).astype(np.float32)
    h = (0.5 * rng.standard_normal((num_layers, 1, hidden))).astype(np.float32)
    ref = sessions["lstm-op"].run(None, {"x": x, "h": h, "c": h})
    got = sessions["scan-matmul"].run(None, {"x": x, "h": h, "c": h})
    parity = max(float(np.abs(a - b).max()) for a, b in zip(ref, got))
    log(f"model {model_path} ({num_layers}x{hidden}); scan-matmul vs lstm-op max |diff| {parity:.1e}")
    res: dict = {"model": model_path, "scan_parity": parity}
    for frames in (1, 4, 64):
        feed = {"x": rng.standard_normal((1, frames, 7)).astype(np.float32), "h": h, "c": h}
        us = {k: _time_call(s, feed, max(10, 400 // frames)) * 1e6 for k, s in sessions.items()}
        base = us["lstm-op"]
        log(f"{frames:>2} frames/call: " + ", ".join(
            f"{k} {v:7.1f} us ({v / frames:6.1f}/frame, {base / v:4.2f}x)" for k, v in us.items()))
        res[frames] = us
    return res
