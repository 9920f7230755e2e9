"""``inkstream train``: train the online LSTM-CTC on corpora and synthetic ink.

Runs on one CPU, one GPU (CUDA, mixed precision) or several GPUs with ``torchrun`` (DDP; on CPU
the DDP path uses the gloo backend, which a test exercises with 2 processes).

Writes into ``--out``: ``last.pt`` (every ``ckpt_every`` steps and at each validation, atomically),
``best.pt`` (best validation CER), ``metrics.jsonl`` and ``curves.png``. ``--resume`` continues a
killed run exactly: the epoch plan is a function of (seed, epoch), and the checkpoint holds the
position in it, the optimizer, the learning-rate state and every RNG.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from runtime.alphabet import Alphabet
from runtime.decoders import CtcGreedyDecoder
from runtime.features import JUMP, STROKE_END, FeatureConfig
from runtime.metrics import ErrorCounter
from training.data import FeatureSet, collate, load_features, parse_source, plan_epoch
from training.augment import random_shear_stretch
from training.model import ModelConfig, OnlineLSTMCTC, widen_state_dict

CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; flags of ``inkstream train`` map one to one onto it."""

    out: str = "runs/default"
    data_root: str = os.environ.get("INKSTREAM_DATA", "../shared/data")  # folder with iamondb/, unipen/, imadocsen/
    train: tuple = ("iamondb:train=1.0", "unipen-words:train=0.15", "unipen-text:train=0.3", "unipen-chars:train=0.05")
    val: tuple = ("iamondb:val", "unipen-text:val")
    val_limit: int = 400  # samples per validation source used for the periodic CER
    cache_dir: str = "cache/features"
    init: str = ""  # start from this checkpoint's weights (not its optimizer or position): a curriculum stage
    # features (the rest of FeatureConfig keeps its defaults)
    feature_step: float = 1.0  # resampling step in ink-scale units: smaller means more frames per character
    # model
    hidden_size: int = 192
    num_layers: int = 3
    input_size: int = 64
    dropout: float = 0.15
    # optimisation
    lr: float = 2e-3
    min_lr: float = 5e-5
    weight_decay: float = 1e-2
    warmup_steps: int = 200
    # "plateau": halve the rate after `patience` validations without improvement; "cosine": anneal
    # from lr to min_lr over max_steps (after the warm-up), a fixed schedule that resumes exactly
    schedule: str = "plateau"
    grad_clip: float = 5.0
    input_noise: float = 0.03  # std of Gaussian noise on the continuous features
    # writer-style augmentation (training.augment): per sample a slant x += s*y with s ~ U(-a, a)
    # and a horizontal stretch exp(U(-b, b)); 0 turns each off
    augment_shear: float = 0.0
    augment_stretch: float = 0.0
    max_batch_frames: int = 8000
    max_steps: int = 100000
    max_minutes: float = 0.0  # 0: no time limit
    sortagrad: bool = True  # first epoch short samples first
    # evaluation, early stopping, checkpoints
    eval_every: int = 500
    ckpt_every: int = 100
    keep_every: int = 0  # also keep the weights every N updates as step_NNNNNN.pt (for training.average); 0: no
    patience: int = 2  # validations without improvement before the learning rate is halved
    early_stop: int = 6  # validations without improvement before training stops
    # which validation CER picks best.pt and drives the schedule: "first" (the first --val set) or
    # "mean" (the mean over every --val set: a model for all writers, not the one set's)
    select: str = "first"
    seed: int = 1
    threads: int = 0  # CPU threads for torch (0: all cores)
    amp: bool = True  # mixed precision on CUDA (ignored on CPU)
    workers: int = 2  # processes for feature extraction when building the cache
    progress: bool = True

    def __post_init__(self):
        for name in ("lr", "max_batch_frames", "max_steps", "eval_every", "ckpt_every", "hidden_size", "num_layers"):
            if getattr(self, name) <= 0:
                raise ValueError(f"TrainConfig.{name} must be > 0, got {getattr(self, name)}")
        if not self.train:
            raise ValueError("TrainConfig.train: name at least one data source")
        if self.select not in ("first", "mean"):
            raise ValueError(f"TrainConfig.select must be 'first' or 'mean', got {self.select!r}")
        if self.schedule not in ("plateau", "cosine"):
            raise ValueError(f"TrainConfig.schedule must be 'plateau' or 'cosine', got {self.schedule!r}")
        for s in self.train + self.val:
            parse_source(s)

    def model_config(self, alphabet: Alphabet) -> ModelConfig:
        return ModelConfig(input_size=self.input_size, hidden_size=self.hidden_size, num_layers=self.num_layers,
                           dropout=self.dropout, num_classes=alphabet.size)


# ---------------------------------------------------------------------------------------------
def learning_rate(cfg: TrainConfig, step: int, lr_scale: float = 1.0) -> float:
    """The learning rate at update ``step``: linear warm-up, then ``cfg.schedule``, never below
    ``min_lr``. ``lr_scale`` is the plateau schedule's running factor (halved on plateaus)."""
    warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    if cfg.schedule == "cosine":
        progress = min(1.0, max(0, step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
        lr = cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return max(cfg.min_lr, lr * warm)
    return max(cfg.min_lr, cfg.lr * lr_scale * warm)


def greedy_decode(log_probs: torch.Tensor, lengths, alphabet: Alphabet) -> list[str]:
    """Best-path CTC decoding of a padded batch ``(B, T, C)``, with the runtime's own decoder,
    so validation during training decodes exactly as the device does."""
    decoder = CtcGreedyDecoder(alphabet)
    out = []
    for row, n in zip(log_probs.detach().cpu().numpy(), lengths):
        state = decoder.new_state()
        decoder.accept(state, row[:int(n)])
        out.append(decoder.result(state)[0])
    return out


def load_val_sets(cfg: TrainConfig, fcfg: FeatureConfig, alphabet: Alphabet, log=print) -> list[FeatureSet]:
    """The validation sets of ``cfg.val``, each cut to a fixed random ``cfg.val_limit`` samples."""
    val_sets = []
    for spec in cfg.val:
        name, _ = parse_source(spec)
        fs = load_features(name, cfg.data_root, fcfg, alphabet, cfg.cache_dir, for_training=False,
                           workers=cfg.workers, log=log)
        if cfg.val_limit and len(fs) > cfg.val_limit:
            keep = np.random.default_rng(0).choice(len(fs), cfg.val_limit, replace=False)
            keep.sort()
            frames = [fs.get(i) for i in keep]
            offsets = np.zeros(len(keep) + 1, np.int64)
            offsets[1:] = np.cumsum([len(f) for f in frames])
            fs = FeatureSet(fs.name, np.concatenate(frames), offsets, [fs.labels[i] for i in keep],
                            [fs.texts[i] for i in keep], [fs.ids[i] for i in keep])
        val_sets.append(fs)
    return val_sets


@torch.no_grad()
def validate_model(model: OnlineLSTMCTC, val_sets: list[FeatureSet], alphabet: Alphabet,
                   device=torch.device("cpu")) -> dict:
    """Greedy CER/WER per validation set (``{name: {cer, wer, samples}}``), in batches of 32."""
    model.eval()
    result = {}
    for fs in val_sets:
        counter = ErrorCounter()
        order = np.argsort(fs.lengths())
        for k in range(0, len(order), 32):
            batch = [(0, int(i)) for i in order[k:k + 32]]
            x, x_lens, _, _, texts = collate([fs], batch)
            log_probs, _, _ = model(torch.from_numpy(x).to(device))
            for ref, hyp in zip(texts, greedy_decode(log_probs, x_lens, alphabet)):
                counter.add(ref, hyp)
        result[fs.name] = {"cer": counter.cer, "wer": counter.wer, "samples": counter.samples}
    return result


def atomic_save(obj, path: Path) -> None:
    """Write via a temporary file and rename, so a kill never leaves a torn checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path) -> dict:
    """A checkpoint dict with ``model_config``, ``model`` and the training state. An exported
    float32 ``.onnx`` file gives its weights (for ``--init``: continue training a shipped model)."""
    if str(path).endswith(".onnx"):
        from training.onnx_import import checkpoint_from_onnx

        return checkpoint_from_onnx(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if ckpt.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: checkpoint version {ckpt.get('version')!r}, expected {CHECKPOINT_VERSION}")
    return ckpt


def model_from_checkpoint(ckpt: dict) -> OnlineLSTMCTC:
    model = OnlineLSTMCTC(ModelConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()


def plot_curves(metrics_path: Path, out_png: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    rows = [json.loads(l) for l in metrics_path.read_text().splitlines() if l.strip()]
    tr = [r for r in rows if r["kind"] == "train"]
    va = [r for r in rows if r["kind"] == "val"]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    if tr:
        ax[0].plot([r["step"] for r in tr], [r["loss"] for r in tr], lw=0.8)
    ax[0].set(xlabel="step", ylabel="CTC loss / char", title="training loss")
    if va:
        ax[1].plot([r["step"] for r in va], [r["cer"] for r in va], "o-", label="CER")
        ax[1].plot([r["step"] for r in va], [r["wer"] for r in va], "s-", label="WER")
        ax[1].legend()
    ax[1].set(xlabel="step", ylabel="error rate", title="validation (greedy)", ylim=(0, 1))
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: bool = False):
        self.cfg = cfg
        self.distributed = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
        if self.distributed:
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend)
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
            local = int(os.environ.get("LOCAL_RANK", 0))
        else:
            self.rank, self.world, local = 0, 1, 0
        if torch.cuda.is_available():
            torch.cuda.set_device(local)
            self.device = torch.device("cuda", local)
        else:
            self.device = torch.device("cpu")
            threads = cfg.threads or max(1, (os.cpu_count() or 1) // self.world)
            torch.set_num_threads(threads)
        self.use_amp = cfg.amp and self.device.type == "cuda"
        self.is_main = self.rank == 0
        self.out = Path(cfg.out)
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.alphabet = Alphabet()
        self.fcfg = FeatureConfig(step=cfg.feature_step)
        self.mcfg = cfg.model_config(self.alphabet)

        self._seed_everything(cfg.seed + self.rank)
        self.model = OnlineLSTMCTC(self.mcfg).to(self.device)
        self.ddp_model = self.model
        if self.distributed:
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[local] if self.device.type == "cuda" else None)
        decay = [p for n, p in self.model.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in self.model.named_parameters() if p.ndim < 2]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                            {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.noise_gen = torch.Generator().manual_seed(cfg.seed * 1000 + self.rank)

        # training state (all of it is in the checkpoint)
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.lr_scale = 1.0
        self.best_cer = math.inf
        self.bad_evals = 0
        self.frames_seen = 0
        if resume and (self.out / "last.pt").exists():
            self._restore(load_checkpoint(self.out / "last.pt"))
        elif cfg.init:
            init = load_checkpoint(cfg.init)
            shape = lambda mc: {k: v for k, v in mc.items() if k != "dropout"}  # dropout may change between stages
            init_cfg = ModelConfig(**init["model_config"])
            if shape(init["model_config"]) == shape(asdict(self.mcfg)):
                self.model.load_state_dict(init["model"])
                self._log(f"[init] weights from {cfg.init} (step {init['step']})")
            elif init_cfg.hidden_size < self.mcfg.hidden_size:
                # a wider model grown from a trained smaller one, computing the same function at first
                self.model.load_state_dict(widen_state_dict(self.model, init["model"], init_cfg))
                self._log(f"[init] widened {init_cfg.hidden_size} -> {self.mcfg.hidden_size} units "
                          f"from {cfg.init} (step {init['step']})")
            else:
                raise ValueError(f"--init {cfg.init}: its model {init['model_config']} differs from "
                                 f"{asdict(self.mcfg)} (only a larger hidden_size can be grown into)")

        self._load_data()

    # ---- data ---------------------------------------------------------------------------
    def _log(self, msg: str) -> None:
        if self.is_main:
            print(msg, flush=True)

    def _load_data(self) -> None:
        cfg = self.cfg
        # rank 0 builds the cache first so the other ranks only read it
        if self.distributed and not self.is_main:
            dist.barrier()
        self.train_sets, self.train_weights = [], []
        for spec in cfg.train:
            name, w = parse_source(spec)
            self.train_sets.append(load_features(name, cfg.data_root, self.fcfg, self.alphabet, cfg.cache_dir,
                                                 for_training=True, workers=cfg.workers, log=self._log))
            self.train_weights.append(w)
        self.val_sets = load_val_sets(cfg, self.fcfg, self.alphabet, log=self._log)
        if self.distributed and self.is_main:
            dist.barrier()

    def _epoch_batches(self, epoch: int):
        batches = plan_epoch(self.train_sets, self.train_weights, epoch, self.cfg.seed,
                             self.cfg.max_batch_frames, sort_by_length=self.cfg.sortagrad and epoch == 0)
        usable = len(batches) - len(batches) % self.world  # every rank takes the same number of steps
        return batches[self.rank:usable:self.world]

    # ---- state --------------------------------------------------------------------------
    def _seed_everything(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _state(self) -> dict:
        return {
            "version": CHECKPOINT_VERSION,
            "model_config": asdict(self.mcfg),
            "feature_config": self.fcfg.to_json(),
            "alphabet": self.alphabet.chars,
            "train_config": asdict(self.cfg),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "lr_scale": self.lr_scale, "best_cer": self.best_cer, "bad_evals": self.bad_evals,
            "frames_seen": self.frames_seen,
            "rng": {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
                    "noise": self.noise_gen.get_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
            "data_summary": self.data_summary(),
        }

    def _restore(self, ckpt: dict) -> None:
        if ckpt["model_config"] != asdict(self.mcfg):
            raise ValueError(f"--resume: the checkpoint's model {ckpt['model_config']} differs from the config "
                             f"{asdict(self.mcfg)}")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        for k in ("step", "epoch", "batch_in_epoch", "lr_scale", "best_cer", "bad_evals", "frames_seen"):
            setattr(self, k, ckpt[k])
        rng = ckpt["rng"]
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])
        self.noise_gen.set_state(rng["noise"])
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self._log(f"[resume] step {self.step}, epoch {self.epoch}, batch {self.batch_in_epoch}, best CER {self.best_cer:.4f}")

    def data_summary(self) -> str:
        parts = [f"{s}" for s in self.cfg.train]
        return "train: " + ", ".join(parts) + "; val: " + ", ".join(self.cfg.val)

    def save(self, name: str) -> None:
        if self.is_main:
            atomic_save(self._state(), self.out / name)

    def save_snapshot(self) -> None:
        """``step_NNNNNN.pt``: the weights and what describes them, without the optimizer and RNG
        state (a third of the size); export and ``training.average`` read it, ``--resume`` does not."""
        if self.is_main:
            state = {k: v for k, v in self._state().items() if k not in ("optimizer", "scaler", "rng")}
            atomic_save(state, self.out / f"step_{self.step:06d}.pt")

    # ---- steps --------------------------------------------------------------------------
    def _lr(self) -> float:
        return learning_rate(self.cfg, self.step, self.lr_scale)

    def train_step(self, batch) -> tuple[float, int]:
        x, x_lens, targets, t_lens, _ = collate(self.train_sets, batch)
        if self.cfg.augment_shear > 0 or self.cfg.augment_stretch > 0:
            uniform = torch.rand((len(x_lens), 2), generator=self.noise_gen, dtype=torch.float64).numpy()
            x = random_shear_stretch(x, x_lens, self.cfg.augment_shear, self.cfg.augment_stretch, uniform)
        x = torch.from_numpy(x)
        if self.cfg.input_noise > 0:
            noise = torch.randn(x.shape, generator=self.noise_gen) * self.cfg.input_noise
            noise[..., JUMP] = 0.0  # the jump and stroke-end flags stay exact
            noise[..., STROKE_END] = 0.0
            x = x + noise * (torch.arange(x.shape[1])[None, :, None] < torch.from_numpy(x_lens)[:, None, None])
        x = x.to(self.device, non_blocking=True)
        for g in self.optimizer.param_groups:
            g["lr"] = self._lr()
        self.ddp_model.train()
        with torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.use_amp):
            log_probs, _, _ = self.ddp_model(x)
        loss = F.ctc_loss(log_probs.float().transpose(0, 1), torch.from_numpy(targets).to(self.device),
                          torch.from_numpy(x_lens), torch.from_numpy(t_lens), blank=self.alphabet.blank,
                          reduction="sum", zero_infinity=True) / float(t_lens.sum())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach()), int(x_lens.sum())

    def validate(self) -> dict:
        return validate_model(self.model, self.val_sets, self.alphabet, self.device)

    def fit(self) -> dict:
        cfg = self.cfg
        metrics_path = self.out / "metrics.jsonl"
        t_start = time.time()
        bar = None
        if self.is_main and cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.max_steps, initial=self.step, dynamic_ncols=True, mininterval=2.0)
        stop_reason = "max_steps"
        window_loss, window_frames, window_t = [], 0, time.time()
        while self.step < cfg.max_steps:
            batches = self._epoch_batches(self.epoch)
            while self.batch_in_epoch < len(batches):
                loss, frames = self.train_step(batches[self.batch_in_epoch])
                self.batch_in_epoch += 1
                self.step += 1
                self.frames_seen += frames * self.world
                window_loss.append(loss)
                window_frames += frames * self.world
                if self.step % 20 == 0 and self.is_main:
                    el = time.time() - window_t
                    row = {"kind": "train", "step": self.step, "epoch": self.epoch, "loss": float(np.mean(window_loss)),
                           "lr": self._lr(), "frames_per_s": window_frames / max(el, 1e-9), "time": time.time() - t_start}
                    with open(metrics_path, "a") as f:
                        f.write(json.dumps(row) + "\n")
                    if bar:
                        bar.set_postfix(loss=f"{row['loss']:.3f}", fps=f"{row['frames_per_s']:.0f}",
                                        ep=self.epoch, best_cer=f"{self.best_cer:.3f}")
                    window_loss, window_frames, window_t = [], 0, time.time()
                if bar:
                    bar.update(1)
                if cfg.keep_every and self.step % cfg.keep_every == 0:
                    self.save_snapshot()
                timed_out = cfg.max_minutes and (time.time() - t_start) > cfg.max_minutes * 60
                if self.step % cfg.eval_every == 0 or timed_out or self.step >= cfg.max_steps:
                    if self._evaluate_and_checkpoint(metrics_path, bar):
                        stop_reason = "early_stop"
                        break
                elif self.step % cfg.ckpt_every == 0:
                    self.save("last.pt")
                if timed_out:
                    stop_reason = "max_minutes"
                    break
                if self.step >= cfg.max_steps:
                    break
            else:
                self.epoch += 1
                self.batch_in_epoch = 0
                continue
            break
        if bar:
            bar.close()
        if self.distributed:
            dist.barrier()
        self._log(f"[done] {stop_reason} at step {self.step}, best validation CER {self.best_cer:.4f}")
        return {"step": self.step, "best_cer": self.best_cer, "stop": stop_reason}

    def _evaluate_and_checkpoint(self, metrics_path: Path, bar) -> bool:
        """Validate, keep the best model, adapt the learning rate; True means stop early."""
        stop = False
        if self.is_main:
            res = self.validate()
            main = next(iter(res.values())) if res else {"cer": math.nan, "wer": math.nan}
            if self.cfg.select == "mean" and res:
                main = {k: float(np.mean([v[k] for v in res.values()])) for k in ("cer", "wer")}
            row = {"kind": "val", "step": self.step, "epoch": self.epoch, "cer": main["cer"], "wer": main["wer"],
                   "sets": res, "lr": self._lr(), "frames_seen": self.frames_seen}
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            msg = " ".join(f"{k} CER {v['cer']:.4f} WER {v['wer']:.4f}" for k, v in res.items())
            (bar.write if bar else print)(f"[val] step {self.step}: {msg}")
            if main["cer"] < self.best_cer:
                self.best_cer, self.bad_evals = main["cer"], 0
                self.save("best.pt")
            else:
                self.bad_evals += 1
                if self.cfg.schedule == "plateau" and self.bad_evals % self.cfg.patience == 0:
                    self.lr_scale *= 0.5
                stop = self.bad_evals >= self.cfg.early_stop
            plot_curves(metrics_path, self.out / "curves.png")
        if self.distributed:
            flag = torch.tensor([float(stop), self.lr_scale, self.bad_evals], dtype=torch.float64)
            dist.broadcast(flag, 0)
            stop, self.lr_scale, self.bad_evals = bool(flag[0]), float(flag[1]), int(flag[2])
        self.save("last.pt")
        return stop


# ---- command line -------------------------------------------------------------------------
def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="JSON file with TrainConfig fields (flags override it)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None)
        elif f.type in ("tuple", tuple):
            parser.add_argument(flag, dest=f.name, nargs="+", default=None,
                                help="data source specs like iamondb:train=1.0 (see training.data)")
        else:
            typ = {"int": int, "float": float, "str": str}.get(f.type, str) if isinstance(f.type, str) else f.type
            parser.add_argument(flag, dest=f.name, type=typ, default=None)


def config_from_args(args) -> TrainConfig:
    values = {}
    if getattr(args, "config", None):
        values.update(json.loads(Path(args.config).read_text()))
    names = {f.name for f in fields(TrainConfig)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"{args.config}: unknown TrainConfig fields {sorted(unknown)}")
    for n in names:
        v = getattr(args, n, None)
        if v is not None:
            values[n] = v
    for n in ("train", "val"):
        if n in values:
            values[n] = tuple(values[n])
    return TrainConfig(**values)


def run(args) -> int:
    try:
        cfg = config_from_args(args)
        trainer = Trainer(cfg, resume=args.resume)
    except (ValueError, OSError) as exc:  # a bad flag, --init or data file: one line, before training starts
        raise SystemExit(f"inkstream train: {exc}") from exc
    if trainer.is_main:
        (Path(cfg.out) / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        print(f"[model] {trainer.model.num_parameters():,} parameters, {trainer.mcfg}; device {trainer.device}"
              f"{', AMP' if trainer.use_amp else ''}{f', DDP x{trainer.world}' if trainer.distributed else ''}", flush=True)
    trainer.fit()
    if trainer.distributed:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    configure(p)
    sys.exit(run(p.parse_args()))
