"""CIFAR-10 ResNet-18 trainer: SGD (+Nesterov), MultiStepLR, early stopping, one report per epoch.

Baseline: the round-1/round-2 ResNet-18 CIFAR-10 analysis (round 2: lr 0.05, gamma 0.2,
milestones [60, 120, 160], weight decay 5e-4, batch 96, 250 epochs, patience 35, min_delta
0.0005; round 1 reached 83.29% test accuracy with lr 0.01, gamma 0.1, wd 1e-4, batch 128).
Those are this file's code defaults (round 2); the search layers tuned defaults and study
suggestions on top.

Data lives on the device as uint8; each epoch shuffles with a seeded generator, augments whole
batches (4-pixel-padded random crop, horizontal flip), and evaluates the validation split. The
train-validation gap uses the running accuracy on augmented training batches, which is the
number the round-2 analysis called train accuracy.

Run standalone: ``python -m trainers.cifar --lr 0.05 --epochs 10 --dataset synthetic``.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainers.data import (
    ImageData,
    load_image_folder,
    random_crop_flip,
    stratified_split,
    synthetic_cifar,
)
from trainers.early_stopping import EarlyStopping
from trainers.reporter import NullReporter, Reporter
from trainers.resnet import resnet18_cifar

__all__ = ["OPTIMIZERS", "CifarConfig", "StopReason", "preflight", "train"]

log = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "nesterov")


class StopReason:
    COMPLETED = "completed"  # ran the whole epoch budget
    EARLY_STOPPED = "early_stopped"  # patience ran out on validation accuracy
    PRUNED = "pruned"  # the reporter asked to stop
    DIVERGED = "diverged"  # non-finite loss


@dataclass(frozen=True)
class CifarConfig:
    """Everything one CIFAR training run depends on; units in the names where they matter."""

    # model
    model: str = "resnet18"
    width: float = 1.0
    num_classes: int = 10
    # data: "synthetic", or a path to an image-folder directory or .tar/.tar.gz of one
    dataset: str = "synthetic"
    synthetic_size: int = 50_000
    synthetic_noise: float = 3.0  # per-pixel noise of the synthetic set (lower is easier)
    val_size: int = 5_000
    train_limit: int | None = None  # use only the first N training images (quick runs)
    cache_dir: str = "~/.cache/hpsearch/data"
    augment: bool = True
    # optimisation
    optimizer: str = "nesterov"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 96
    eval_batch_size: int = 1024
    label_smoothing: float = 0.0
    # schedule: MultiStepLR, milestones in epochs
    epochs: int = 250
    milestones: tuple[int, ...] = (60, 120, 160)
    gamma: float = 0.2
    # early stopping on validation accuracy
    patience: int = 35
    min_delta: float = 0.0005
    # run
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.model != "resnet18":
            raise ValueError(f"unknown model {self.model!r}; expected 'resnet18'")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; expected one of "
                             f"{list(OPTIMIZERS)}")
        _positive(self, "lr", "width", "batch_size", "eval_batch_size", "epochs", "patience",
                  "num_classes", "synthetic_size", "val_size")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if self.synthetic_noise < 0:
            raise ValueError(f"synthetic_noise must be >= 0, got {self.synthetic_noise}")
        if self.weight_decay < 0 or self.min_delta < 0 or self.momentum < 0:
            raise ValueError("weight_decay, min_delta and momentum must be >= 0, got "
                             f"{self.weight_decay}, {self.min_delta}, {self.momentum}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        ms = tuple(int(m) for m in self.milestones)
        if any(b <= a for a, b in itertools.pairwise(ms)) or any(m < 1 for m in ms):
            raise ValueError(f"milestones must be strictly increasing positive epochs, got "
                             f"{list(self.milestones)}")
        object.__setattr__(self, "milestones", ms)

    def replace(self, **changes: object) -> CifarConfig:
        """A copy with ``changes``; an unknown key raises naming it and the valid keys."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown CIFAR config key(s) {unknown}; valid keys: {sorted(names)}")
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        out = dataclasses.asdict(self)
        out["milestones"] = list(self.milestones)
        return out


def preflight(cfg: CifarConfig) -> None:
    """Cheap checks of what ``train`` will need from this machine, before any trial starts."""
    if cfg.dataset != "synthetic" and not Path(cfg.dataset).expanduser().exists():
        raise ValueError(f"dataset {cfg.dataset!r} does not exist; give an image-folder "
                         "directory, a .tar/.tar.gz of one, or 'synthetic'")


def _positive(cfg: CifarConfig, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")


def train(cfg: CifarConfig, reporter: Reporter | None = None) -> dict[str, float | int | str]:
    """Train one configuration; report every epoch; return final metrics (never raises to stop).

    The returned dict has ``best_val_acc`` (the selection metric), the metrics of the best
    epoch, the last epoch's metrics, ``epochs_run``, ``best_epoch`` and ``stop_reason``.
    """
    reporter = reporter or NullReporter()
    device = _device(cfg.device)
    torch.manual_seed(cfg.seed)
    train_set, val_set = _load_splits(cfg)
    mean, std = _channel_stats(train_set.images)
    train_x, train_y = train_set.images.to(device), train_set.labels.to(device)
    val_x, val_y = val_set.images.to(device), val_set.labels.to(device)
    mean, std = mean.to(device), std.to(device)

    model = resnet18_cifar(num_classes=cfg.num_classes, width=cfg.width).to(device)
    optimizer = _optimizer(cfg, model)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(cfg.milestones), cfg.gamma)
    stopper = EarlyStopping(patience=cfg.patience, min_delta=cfg.min_delta)
    shuffle_gen = torch.Generator().manual_seed(cfg.seed + 1)
    augment_gen = torch.Generator().manual_seed(cfg.seed + 2)

    best: dict[str, float] = {}
    last: dict[str, float] = {}
    stop_reason = StopReason.COMPLETED
    epoch = 0
    for epoch in range(1, cfg.epochs + 1):
        lr_now = optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        stats = _train_epoch(model, optimizer, cfg, train_x, train_y, mean, std,
                             shuffle_gen=shuffle_gen, augment_gen=augment_gen)
        if stats is None:
            stop_reason = StopReason.DIVERGED
            log.warning("diverged in epoch %d (non-finite loss) at lr %.4g", epoch, lr_now)
            break
        train_loss, train_acc, grad_norm = stats
        val_loss, val_acc = _evaluate(model, val_x, val_y, mean, std, cfg.eval_batch_size)
        seconds = time.perf_counter() - start
        scheduler.step()
        last = {
            "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
            "val_acc": val_acc, "train_val_gap": train_acc - val_acc, "lr": lr_now,
            "grad_norm": grad_norm, "epoch_seconds": seconds,
            "images_per_second": len(train_y) / seconds,
        }
        if not best or val_acc > best["val_acc"]:
            best = dict(last, epoch=float(epoch))
        log.info("epoch %d/%d train_loss %.4f train_acc %.4f val_loss %.4f val_acc %.4f lr %.4g "
                 "(%.1fs)", epoch, cfg.epochs, train_loss, train_acc, val_loss, val_acc, lr_now,
                 seconds)
        reporter.report(epoch, last)
        if reporter.should_stop():
            stop_reason = StopReason.PRUNED
            break
        if stopper.update(epoch, val_acc):
            stop_reason = StopReason.EARLY_STOPPED
            break

    result: dict[str, float | int | str] = {
        "stop_reason": stop_reason,
        "epochs_run": epoch if stop_reason != StopReason.DIVERGED else epoch - 1,
        "best_epoch": int(best.get("epoch", 0)),
        "best_val_acc": best.get("val_acc", 0.0),
    }
    if stop_reason == StopReason.DIVERGED:
        result["diverged_epoch"] = epoch
    for key in ("train_acc", "train_loss", "val_loss", "train_val_gap"):
        if key in best:
            result[f"best_{key}"] = best[key]
    result.update({f"last_{k}": v for k, v in last.items()})
    return result


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _load_splits(cfg: CifarConfig) -> tuple[ImageData, ImageData]:
    if cfg.dataset == "synthetic":
        data = synthetic_cifar(cfg.synthetic_size + cfg.val_size, seed=cfg.seed,
                               num_classes=cfg.num_classes, noise=cfg.synthetic_noise)
    else:
        data = load_image_folder(cfg.dataset, cache_dir=Path(cfg.cache_dir).expanduser())
        if len(data.classes) != cfg.num_classes:
            raise ValueError(f"{cfg.dataset!r} has {len(data.classes)} classes but num_classes is "
                             f"{cfg.num_classes}; set num_classes to {len(data.classes)}")
    # The split seed is fixed, not cfg.seed: every trial of a study validates on the same images.
    train_idx, val_idx = stratified_split(data.labels, val_size=cfg.val_size, seed=0)
    if cfg.train_limit is not None:
        train_idx = train_idx[torch.randperm(len(train_idx),
                                             generator=torch.Generator().manual_seed(0))]
        train_idx = train_idx[: cfg.train_limit].sort().values
    return data.subset(train_idx), data.subset(val_idx)


def _channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = images.float().div_(255)
    mean = x.mean(dim=(0, 2, 3)).view(1, 3, 1, 1)
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3).view(1, 3, 1, 1)
    return mean, std


def _optimizer(cfg: CifarConfig, model: nn.Module) -> torch.optim.Optimizer:
    # No weight decay on BatchNorm and bias parameters: decaying BN scales fights the
    # normalisation and only costs accuracy.
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                           nesterov=cfg.optimizer == "nesterov")


def _train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, cfg: CifarConfig,
                 x: torch.Tensor, y: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, *,
                 shuffle_gen: torch.Generator, augment_gen: torch.Generator
                 ) -> tuple[float, float, float] | None:
    """One pass over the training set; None when the loss stopped being finite."""
    model.train()
    order = torch.randperm(len(y), generator=shuffle_gen).to(x.device)
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    grad_norm_sum = torch.zeros((), device=x.device)
    n_steps = 0
    for start in range(0, len(y), cfg.batch_size):
        idx = order[start : start + cfg.batch_size]
        if len(idx) < 2:  # BatchNorm cannot train on a batch of one
            continue
        xb = (x[idx].float().div_(255) - mean) / std
        if cfg.augment:
            xb = random_crop_flip(xb, padding=4, generator=augment_gen)
        logits = model(xb)
        loss = F.cross_entropy(logits, y[idx], label_smoothing=cfg.label_smoothing)
        if not torch.isfinite(loss):
            return None
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm_sum += torch.nn.utils.clip_grad_norm_(model.parameters(), float("inf"))
        optimizer.step()
        loss_sum += loss.detach() * len(idx)
        correct += (logits.argmax(1) == y[idx]).sum()
        n_steps += 1
    n = len(y)
    train_loss = float(loss_sum) / n
    if not math.isfinite(train_loss):
        return None
    return train_loss, float(correct) / n, float(grad_norm_sum) / max(1, n_steps)


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mean: torch.Tensor,
              std: torch.Tensor, batch_size: int) -> tuple[float, float]:
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    for start in range(0, len(y), batch_size):
        xb = (x[start : start + batch_size].float().div_(255) - mean) / std
        logits = model(xb)
        yb = y[start : start + batch_size]
        loss_sum += F.cross_entropy(logits, yb, reduction="sum")
        correct += (logits.argmax(1) == yb).sum()
    return float(loss_sum) / len(y), float(correct) / len(y)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainers.cifar", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = CifarConfig()
    for f in dataclasses.fields(CifarConfig):
        default = getattr(defaults, f.name)
        if f.name == "milestones":
            parser.add_argument("--milestones", type=int, nargs="*", default=list(default))
        elif isinstance(default, bool):
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=_parse_bool, default=default)
        elif default is None:
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=int, default=None)
        else:
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(default),
                                default=default)
    args: dict[str, Any] = vars(parser.parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        args["milestones"] = tuple(args["milestones"])
        cfg = CifarConfig(**args)
        result = train(cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}")
        return 2
    for key, value in result.items():
        print(f"{key}: {value}")
    return 0


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


if __name__ == "__main__":
    raise SystemExit(main())
