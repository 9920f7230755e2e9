"""Average the weights of several checkpoints of one run (``inkstream average``).

The checkpoints a run keeps near the end of a cosine schedule (``--keep-every``) sit around the
same minimum; their mean is usually a little better than any one of them (as in speech toolkits'
``average_checkpoints``). The averaged checkpoint is validated like a training run validates,
on the run's own validation sets, and its CER is stored as ``best_cer``, so ``inkstream export``
writes a measured ``val_cer`` into the ONNX metadata.

    inkstream average runs/x/averaged.pt runs/x/step_010000.pt runs/x/step_010500.pt ...
"""
from __future__ import annotations

import argparse
import math
from dataclasses import fields
from pathlib import Path

import torch

from runtime.alphabet import Alphabet
from runtime.features import FeatureConfig
from training.train import (TrainConfig, atomic_save, load_checkpoint, load_val_sets, model_from_checkpoint,
                            validate_model)

# what must agree for weights to be averaged meaningfully
_SAME = ("model_config", "feature_config", "alphabet")


def average_checkpoints(paths: list) -> dict:
    """A checkpoint whose ``model`` is the element-wise mean of the given ones' weights; the
    rest (config, data summary, step: the newest) comes from the newest of them."""
    if not paths:
        raise ValueError("average: name at least one checkpoint")
    ckpts = [load_checkpoint(p) for p in paths]
    for p, c in zip(paths[1:], ckpts[1:]):
        for key in _SAME:
            if c[key] != ckpts[0][key]:
                raise ValueError(f"average: {p} has another {key} than {paths[0]}")
    newest = max(range(len(ckpts)), key=lambda i: ckpts[i]["step"])
    out = {k: v for k, v in ckpts[newest].items() if k not in ("optimizer", "scaler", "rng")}
    mean = {}
    for name, first in ckpts[0]["model"].items():
        if first.is_floating_point():
            mean[name] = sum(c["model"][name].double() for c in ckpts).div(len(ckpts)).to(first.dtype)
        else:
            mean[name] = first.clone()
    out["model"] = mean
    out["averaged_from"] = [int(c["step"]) for c in ckpts]
    out["best_cer"] = math.nan  # not measured yet
    return out


def validate_checkpoint(ckpt: dict, data_root=None, log=print) -> dict:
    """Validate ``ckpt`` on its run's validation sets (``train_config.val``, ``val_limit``)."""
    names = {f.name for f in fields(TrainConfig)}
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in ckpt["train_config"].items() if k in names}
    if data_root:
        values["data_root"] = str(data_root)
    cfg = TrainConfig(**values)
    alphabet = Alphabet(ckpt["alphabet"])
    val_sets = load_val_sets(cfg, FeatureConfig.from_json(ckpt["feature_config"]), alphabet, log=log)
    return validate_model(model_from_checkpoint(ckpt), val_sets, alphabet)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="the averaged checkpoint to write")
    parser.add_argument("checkpoints", nargs="+", help="checkpoints of one run (step_*.pt, best.pt, last.pt)")
    parser.add_argument("--data-root", default=None, help="where the validation corpora are (default: the run's)")
    parser.add_argument("--no-validate", dest="validate", action="store_false",
                        help="skip validation (the ONNX metadata then has no val_cer)")


def run(args) -> int:
    ckpt = average_checkpoints(args.checkpoints)
    print(f"[average] {len(args.checkpoints)} checkpoints, updates {ckpt['averaged_from']}")
    if args.validate:
        res = validate_checkpoint(ckpt, args.data_root)
        for name, r in res.items():
            print(f"[val] {name}: CER {r['cer']:.4f} WER {r['wer']:.4f} ({r['samples']} samples)")
        ckpt["best_cer"] = next(iter(res.values()))["cer"] if res else math.nan
    atomic_save(ckpt, Path(args.out))
    print(f"[average] wrote {args.out}")
    return 0
