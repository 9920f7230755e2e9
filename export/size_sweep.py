"""What a model of another size would cost to stream, measured before training one.

    inkstream bench --sizes 3x256,3x192,2x192,3x128,2x128 [--quick] [--json]

For each ``LAYERSxHIDDEN`` it builds an untrained model of that shape with the shipped model's
features and alphabet, exports it as ``inkstream export`` does (float32 and the int8 copy, into a
temporary folder) and runs ``inkstream bench`` on the int8 file with the greedy decoder. Untrained
weights read nonsense but cost the same to run as trained ones, and so does the greedy decoder;
the beam search's cost depends on the text (on an untrained model's near-uniform output every
frame tries the most characters), so it is not measured here. One line per size: the
one-frame call, the per-frame floor and their ratio, streaming one sample per call, the re-run
and 1-vs-256-streams ratios and the real-time factor at 200 Hz (bench's JSON keys).
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import torch

from export.onnx_export import export_checkpoint
from runtime.app.bench import run_bench
from runtime.app.config import AppConfig, DecoderConfig
from runtime.model import OnnxModel
from runtime.recognizer import OFFLINE
from training.model import ModelConfig, OnlineLSTMCTC
from training.train import CHECKPOINT_VERSION

DEFAULT_SIZES = "3x256,3x192,2x192,3x128,2x128"


def parse_sizes(text: str) -> list:
    """``"3x256,2x128"`` -> ``[(3, 256), (2, 128)]``; ValueError naming a malformed entry."""
    sizes = []
    for item in text.split(","):
        layers, _, hidden = item.strip().partition("x")
        if not (layers.isdigit() and hidden.isdigit() and int(layers) > 0 and int(hidden) > 0):
            raise ValueError(f"size {item!r} is not LAYERSxHIDDEN, e.g. 3x256")
        sizes.append((int(layers), int(hidden)))
    return sizes


def untrained_checkpoint(layers: int, hidden: int, path: Path, seed: int = 0) -> Path:
    """A checkpoint of an untrained model of that shape, with the shipped model's features and
    alphabet (what ``export_checkpoint`` reads)."""
    shipped = OnnxModel().info
    torch.manual_seed(seed)
    config = ModelConfig(hidden_size=hidden, num_layers=layers, dropout=0.0,
                         input_size=int(shipped.metadata.get("input_size", 64)), num_classes=shipped.num_classes)
    model = OnlineLSTMCTC(config)
    torch.save({"version": CHECKPOINT_VERSION, "model_config": dataclasses.asdict(config), "model": model.state_dict(),
                "feature_config": shipped.feature_config.to_json(), "alphabet": shipped.alphabet.chars,
                "step": 0}, path)
    return path


def sweep(sizes: list, quick: bool = False, log=print) -> list:
    """Bench every size (greedy decoder); returns one dict of figures per size."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for layers, hidden in sizes:
            folder = Path(tmp) / f"{layers}x{hidden}"
            folder.mkdir()
            exported = export_checkpoint(untrained_checkpoint(layers, hidden, folder / "untrained.pt"), folder)
            config = AppConfig(model=exported["int8"], decoder=DecoderConfig("greedy"), endpoint=OFFLINE)
            report = run_bench(config, quick=quick, log=lambda *_: None)
            row = {"layers": layers, "hidden": hidden, "step_over_floor": report.step_us_1frame / report.floor_us_per_frame,
                   "step_us_1frame": report.step_us_1frame, "floor_us_per_frame": report.floor_us_per_frame,
                   "per_sample_us_chunk1": report.chunks[1].per_sample_us, "ratio_vs_rerun": report.ratio_vs_rerun,
                   "streams_1_over_256": report.streams_1_over_256, "rtf_200hz": report.rtf_200hz}
            rows.append(row)
            log(f"{layers}x{hidden}: 1-frame call {row['step_us_1frame']:.0f} us, floor {row['floor_us_per_frame']:.1f} "
                f"us/frame ({row['step_over_floor']:.1f}x), 1 sample per call {row['per_sample_us_chunk1']:.1f} us, "
                f"re-run {row['ratio_vs_rerun']:.0f}x, 1 vs 256 streams {row['streams_1_over_256']:.1f}x, "
                f"RTF {row['rtf_200hz']:.4f}")
    return rows
