"""CIFAR-10 ResNet-18 trainer: every optimizer and schedule the search offers, one report per
epoch, early stopping, divergence detection, checkpoints with exact resume.

Baseline: the round-1/round-2 ResNet-18 CIFAR-10 analysis. Round 1 (SGD lr 0.01, gamma 0.1,
wd 1e-4, batch 128, milestones [60, 120, 160], 200 epochs) reached 83.29% test accuracy with
100% training accuracy; round 2 proposed lr 0.05, gamma 0.2, wd 5e-4, batch 96, 250 epochs,
patience 35, min_delta 0.0005. This file's code defaults are round 2's schedule and training
dynamics; optimizer settings left unset (None) take the optimizer-settings document's values
for the chosen optimizer (trainers/optim.py), so ``--optimizer adam`` alone runs at lr 0.001.

Data lives on the device as uint8 (all of CIFAR-10 is 150 MB); each epoch shuffles with a
seeded generator and augments whole batches (4-pixel-padded random crop, horizontal flip) as
tensor operations. Validation is a seeded, stratified split of the training data; a test set,
when given, is evaluated once at the end with the best epoch's weights and is never reported to
the pruner. The train-validation gap uses the running accuracy on augmented training batches.
On CUDA: bf16 autocast, pinned non-blocking copies, optional torch.compile; channels_last
everywhere (faster on CPU too); ``amp="bf16"`` also autocasts on CPUs with bf16 support.

Run standalone: ``python -m trainers.cifar --optimizer adamw --lr 0.001 --epochs 10``.
"""

from __future__ import annotations

import copy
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

from trainers.checkpoint import restore_run, save_run
from trainers.contract import TrainerInfo
from trainers.data import (
    ImageData,
    check_image_folder,
    load_cifar10,
    load_image_folder,
    random_crop_flip,
    stratified_split,
    synthetic_cifar,
)
from trainers.dataset_keys import dataset_key
from trainers.early_stopping import EarlyStopping
from trainers.optim import OPTIMIZERS, build_optimizer
from trainers.reporter import NullReporter, Reporter
from trainers.resnet import resnet18_cifar
from trainers.run_outcome import StopReason, epoch_verdict, summarize
from trainers.runtime import (
    amp_dtype,
    autocast,
    config_parser,
    divergence_check_every,
    memory_format_for,
    parse_args_into,
    pick_device,
)
from trainers.schedules import SCHEDULES, LRSchedule
from trainers.training_config import (
    EPOCH_FIELDS,
    EPOCH_FLOORS,
    OptimizerSettings,
    ScheduleOptions,
    TrainingConfigMixin,
    training_tunable_fields,
)

__all__ = ["OPTIMIZERS", "SCHEDULES", "SEARCH", "CifarConfig", "Config", "StopReason",
           "preflight", "train"]

log = logging.getLogger(__name__)





@dataclass(frozen=True)
class CifarConfig(TrainingConfigMixin, ScheduleOptions, OptimizerSettings):
    """Everything one CIFAR training run depends on; units in the names where they matter."""

    # model
    model: str = "resnet18"
    width: float = 1.0
    num_classes: int = 10
    # data: "synthetic", "cifar10" (official python batches), or an image-folder path/archive
    dataset: str = "synthetic"
    test_dataset: str | None = None  # same kinds; evaluated once at the end, never for selection
    download: bool = False  # fetch the official CIFAR-10 batches into data_dir if missing
    data_dir: str = "~/.cache/hpsearch/cifar10"
    synthetic_size: int = 50_000
    synthetic_noise: float = 3.0  # per-pixel noise of the synthetic set (lower is easier)
    val_size: int = 5_000
    train_limit: int | None = None  # use a seeded subset of N training images (quick runs)
    cache_dir: str = "~/.cache/hpsearch/data"
    augment: bool = True
    # optimizer; its settings (lr, weight_decay, ... in OptimizerSettings) left None take
    # the optimizer-settings document's values for `optimizer`
    optimizer: str = "sgd"
    batch_size: int = 96
    eval_batch_size: int = 1024
    label_smoothing: float = 0.0
    clip_grad_norm: float | None = None
    # schedule (trainers/schedules.py; other options in ScheduleOptions); milestones in epochs
    epochs: int = 250
    schedule: str = "multistep"
    milestones: tuple[int, ...] = (60, 120, 160)
    gamma: float = 0.2
    # early stopping on validation accuracy
    patience: int = 35
    min_delta: float = 0.0005
    # checkpoints: every `checkpoint_every` epochs into `checkpoint_dir`; resumed when present
    checkpoint_dir: str | None = None
    checkpoint_every: int = 1
    # run
    seed: int = 0
    device: str = "auto"
    data_on_device: str = "auto"  # "auto": when it fits in half the free GPU memory; "yes"; "no"
    amp: str = "auto"  # "auto": bf16 autocast on CUDA, fp32 on CPU; "bf16"; "off"
    compile: bool = False

    _kind = "CIFAR"

    def __post_init__(self) -> None:
        if self.data_on_device not in ("auto", "yes", "no"):
            raise ValueError(f"unknown data_on_device {self.data_on_device!r}; expected "
                             "'auto', 'yes' or 'no'")
        if self.model != "resnet18":
            raise ValueError(f"unknown model {self.model!r}; expected 'resnet18'")
        _positive(self, "width", "batch_size", "eval_batch_size", "num_classes",
                  "synthetic_size", "val_size")
        if self.synthetic_noise < 0:
            raise ValueError(f"synthetic_noise must be >= 0, got {self.synthetic_noise!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.train_limit is not None and self.train_limit < 2:
            raise ValueError(f"train_limit must be >= 2, got {self.train_limit}")
        self.check_training_fields()


def _dataset_key(cfg: CifarConfig) -> str:
    return dataset_key(cfg.dataset)


def _regime(cfg: CifarConfig) -> dict[str, Any]:
    """What a measured result depends on besides its hyperparameters, as config fields. The data
    set itself is in the tuned-defaults key; its size is here (train_limit None: the whole
    set)."""
    synthetic = cfg.dataset == "synthetic"
    return {"model": cfg.model, "width": cfg.width, "num_classes": cfg.num_classes,
            "augment": cfg.augment, "epochs": cfg.epochs, "batch_size": cfg.batch_size,
            "val_size": cfg.val_size,
            **({"synthetic_size": cfg.synthetic_size, "synthetic_noise": cfg.synthetic_noise}
               if synthetic else {"train_limit": cfg.train_limit})}


_REPORTS = ("train_loss", "train_acc", "val_loss", "val_acc", "train_val_gap", "lr", "grad_norm",
            "epoch_seconds", "images_per_second")
Config = CifarConfig  # the name the trainer contract looks for
SEARCH = TrainerInfo(
    tunable_fields=training_tunable_fields("batch_size", "label_smoothing"),
    metrics=("best_val_acc", "best_train_acc", "best_train_loss", "best_val_loss",
             "best_train_val_gap", "best_epoch", "epochs_run", "resumed_from_epoch",
             "test_acc", "test_loss", *(f"last_{m}" for m in _REPORTS)),
    reports=_REPORTS,
    default_metric="best_val_acc",
    default_report="val_acc",
    key_fields=("model", "optimizer", "dataset"),
    regime_fields=("model", "width", "num_classes", "dataset", "synthetic_size",
                   "synthetic_noise", "val_size", "train_limit", "augment", "epochs",
                   "batch_size"),
    dataset_key=_dataset_key,
    regime=_regime,
    epoch_fields=EPOCH_FIELDS,
    epoch_floors=EPOCH_FLOORS,
    regime_scaled=("epochs", "batch_size", "synthetic_size", "train_limit", "val_size"),
)


def preflight(cfg: CifarConfig) -> None:
    """Cheap checks of what ``train`` will need from this machine, before any trial starts."""
    for name in ("dataset", "test_dataset"):
        source = getattr(cfg, name)
        if source in (None, "synthetic", "cifar10"):
            continue
        if not Path(source).expanduser().exists():
            raise ValueError(f"{name} {source!r} does not exist; give an image-folder "
                             "directory, a .tar/.tar.gz of one, 'cifar10' or 'synthetic'")
        try:  # every image read once (the cache trials load is built on the way)
            check_image_folder(source, cache_dir=Path(cfg.cache_dir).expanduser())
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}") from None


def _positive(cfg: CifarConfig, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")


def train(cfg: CifarConfig, reporter: Reporter | None = None) -> dict[str, float | int | str]:
    """Train one configuration; report every epoch; return final metrics (never raises to stop).

    The returned dict has ``best_val_acc`` (the selection metric), the metrics of the best
    epoch (``best_*``), the last epoch's (``last_*``), ``epochs_run``, ``best_epoch``,
    ``stop_reason`` (and ``diverged_epoch``), and ``test_acc``/``test_loss`` when a test set is
    configured. Invalid data (missing, mixed sizes, batch larger than the set) raises
    ValueError/FileNotFoundError before the first step.
    """
    reporter = reporter or NullReporter()
    cfg = cfg.resolved()
    preflight(cfg)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    train_set, val_set = _load_splits(cfg)
    test_set = _load_test(cfg)
    if cfg.batch_size > len(train_set):
        raise ValueError(f"batch_size {cfg.batch_size} is larger than the {len(train_set)} "
                         "training images; use a smaller batch_size")
    mean, std = _channel_stats(train_set.images)  # in uint8 units: x_norm = (x - mean) / std
    # The data set lives on the device when it fits (CIFAR-10's 150 MB does); otherwise it
    # stays in pinned host memory and each batch is copied over, non-blocking.
    home = device if _data_fits(cfg, device, train_set, val_set) else torch.device("cpu")
    train_x, train_y = _to_device(train_set.images, home), _to_device(train_set.labels, home)
    val_x, val_y = _to_device(val_set.images, home), _to_device(val_set.labels, home)
    mean, std = mean.to(device), std.to(device)
    amp = amp_dtype(cfg.amp, device)

    model = resnet18_cifar(num_classes=cfg.num_classes, width=cfg.width)
    # channels_last where safe: oneDNN's convolutions run 1.2-1.5x faster in it on CPU, but its
    # AVX2 kernels crash or hang under 8 channels (trainers/runtime.py).
    memory_format = memory_format_for(model, device)
    model = model.to(device).to(memory_format=memory_format)
    # No weight decay on BatchNorm and bias parameters: decaying BN scales fights the
    # normalisation and only costs accuracy.
    groups = [{"params": [p for p in model.parameters() if p.dim() > 1], "decay": 1.0},
              {"params": [p for p in model.parameters() if p.dim() <= 1], "decay": 0.0}]
    optimizer = build_optimizer(cfg.optimizer, groups, cfg.optimizer_settings())
    steps_per_epoch = _steps_per_epoch(len(train_y), cfg.batch_size)
    schedule = LRSchedule(optimizer, cfg.schedule_spec(), steps_per_epoch)
    stopper = EarlyStopping(patience=cfg.patience, min_delta=cfg.min_delta)
    gens = {"shuffle": torch.Generator().manual_seed(cfg.seed + 1),
            "augment": torch.Generator().manual_seed(cfg.seed + 2)}
    step_fn: nn.Module = torch.compile(model) if cfg.compile else model  # type: ignore[assignment]

    best: dict[str, float] = {}
    last: dict[str, float] = {}
    best_weights: dict[str, torch.Tensor] | None = None
    first_epoch = 1
    resumed = _resume(cfg, model, optimizer, schedule, stopper, gens)
    if resumed is not None:
        first_epoch, best, last, best_weights = resumed
    stop_reason = StopReason.COMPLETED
    epoch = first_epoch - 1
    for epoch in range(first_epoch, cfg.epochs + 1):
        lr_now = schedule.lr()
        start = time.perf_counter()
        stats = _train_epoch(step_fn, optimizer, schedule, cfg, train_x, train_y, mean, std,
                             gens=gens, memory_format=memory_format, amp=amp, device=device)
        if stats is None:
            stop_reason = StopReason.DIVERGED
            log.warning("diverged in epoch %d (non-finite loss) at lr %.4g", epoch, lr_now)
            break
        train_loss, train_acc, grad_norm = stats
        train_seconds = time.perf_counter() - start
        val_loss, val_acc = _evaluate(step_fn, val_x, val_y, mean, std, cfg.eval_batch_size,
                                      memory_format, amp, device)
        seconds = time.perf_counter() - start
        schedule.after_epoch(val_acc)
        last = {
            "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
            "val_acc": val_acc, "train_val_gap": train_acc - val_acc, "lr": lr_now,
            "grad_norm": grad_norm, "epoch_seconds": seconds,
            "images_per_second": len(train_y) / train_seconds,
        }
        if not best or val_acc > best["val_acc"]:
            best = dict(last, epoch=float(epoch))
            if test_set is not None:
                best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        log.info("epoch %d/%d train_loss %.4f train_acc %.4f val_loss %.4f val_acc %.4f lr %.4g "
                 "(%.1fs)", epoch, cfg.epochs, train_loss, train_acc, val_loss, val_acc, lr_now,
                 seconds)
        stop_early = stopper.update(epoch, val_acc)
        if cfg.checkpoint_dir and epoch % cfg.checkpoint_every == 0:
            _checkpoint(cfg, epoch, model, optimizer, schedule, stopper, gens, best, last,
                        best_weights)
        reporter.report(epoch, last)
        verdict = epoch_verdict(reporter, stop_early=stop_early,
                                final=epoch == cfg.epochs)
        if verdict is not None:
            stop_reason = verdict
            break

    result = summarize(stop_reason, epoch=epoch, first_epoch=first_epoch, best=best, last=last,
                       selection=("val_acc",),
                       best_keys=("train_acc", "train_loss", "val_loss", "train_val_gap"))
    if test_set is not None and best_weights is not None:
        model.load_state_dict(best_weights)
        test_loss, test_acc = _evaluate(model, _to_device(test_set.images, home),
                                        _to_device(test_set.labels, home), mean, std,
                                        cfg.eval_batch_size, memory_format, amp, device)
        result.update(test_loss=test_loss, test_acc=test_acc)
    return result


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    if torch.cuda.is_available():
        return t.pin_memory()  # kept on the host for a GPU run: pinned for async copies
    return t


def _data_fits(cfg: CifarConfig, device: torch.device, *sets: ImageData) -> bool:
    if device.type == "cpu" or cfg.data_on_device == "yes":
        return True
    if cfg.data_on_device == "no":
        return False
    needed = sum(s.images.nbytes + s.labels.nbytes for s in sets)
    free, _total = torch.cuda.mem_get_info(device)
    return needed < free // 2


def _steps_per_epoch(n: int, batch_size: int) -> int:
    full, rest = divmod(n, batch_size)
    return full + (1 if rest >= 2 else 0)  # a last batch of one is skipped (BatchNorm)


def _load_source(cfg: CifarConfig, source: str, *, train: bool, seed: int) -> ImageData:
    if source == "synthetic":
        n = cfg.synthetic_size + cfg.val_size if train else cfg.val_size
        return synthetic_cifar(n, seed=seed, num_classes=cfg.num_classes,
                               noise=cfg.synthetic_noise)
    if source == "cifar10":
        return load_cifar10(cfg.data_dir, train=train, download=cfg.download)
    return load_image_folder(source, cache_dir=Path(cfg.cache_dir).expanduser())


def _load_splits(cfg: CifarConfig) -> tuple[ImageData, ImageData]:
    data = _load_source(cfg, cfg.dataset, train=True, seed=cfg.seed)
    _check_classes(cfg, data, cfg.dataset)
    # The split seed is fixed, not cfg.seed: every trial of a study validates on the same images.
    train_idx, val_idx = stratified_split(data.labels, val_size=cfg.val_size, seed=0)
    if cfg.train_limit is not None:
        train_idx = train_idx[torch.randperm(len(train_idx),
                                             generator=torch.Generator().manual_seed(0))]
        train_idx = train_idx[: cfg.train_limit].sort().values
    return data.subset(train_idx), data.subset(val_idx)


def _load_test(cfg: CifarConfig) -> ImageData | None:
    if cfg.test_dataset is None:
        return None
    # A synthetic test set is a fresh draw (another seed) of the same task.
    data = _load_source(cfg, cfg.test_dataset, train=False, seed=cfg.seed + 10_000)
    _check_classes(cfg, data, cfg.test_dataset)
    return data


def _check_classes(cfg: CifarConfig, data: ImageData, source: str) -> None:
    if len(data.classes) != cfg.num_classes:
        raise ValueError(f"{source!r} has {len(data.classes)} classes but num_classes is "
                         f"{cfg.num_classes}; set num_classes to {len(data.classes)}")


def _channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = images.float()
    mean = x.mean(dim=(0, 2, 3)).view(1, 3, 1, 1)
    std = x.std(dim=(0, 2, 3)).clamp_min(0.25).view(1, 3, 1, 1)
    return mean, std


def _train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, schedule: LRSchedule,
                 cfg: CifarConfig, x: torch.Tensor, y: torch.Tensor, mean: torch.Tensor,
                 std: torch.Tensor, *, gens: dict[str, torch.Generator],
                 memory_format: torch.memory_format, amp: torch.dtype | None,
                 device: torch.device) -> tuple[float, float, float] | None:
    """One pass over the training set; None when the loss stopped being finite.

    ``x``/``y`` live on ``device`` or in host memory; batches are indexed where they live and
    moved (a no-op when already there)."""
    model.train()
    check_every = divergence_check_every(device)
    order = torch.randperm(len(y), generator=gens["shuffle"]).to(x.device)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    grad_norm_sum = torch.zeros((), device=device)
    max_norm = cfg.clip_grad_norm if cfg.clip_grad_norm is not None else math.inf
    n_steps = 0
    n_seen = 0
    for start in range(0, len(y), cfg.batch_size):
        idx = order[start : start + cfg.batch_size]
        if len(idx) < 2:  # BatchNorm cannot train on a batch of one
            continue
        xb = x[idx].to(device, non_blocking=True)
        yb = y[idx].to(device, non_blocking=True)
        if cfg.augment:  # on uint8: a quarter of the bytes, and black padding as in torchvision
            xb = random_crop_flip(xb, padding=4, generator=gens["augment"])
        xb = xb.contiguous(memory_format=memory_format).float().sub_(mean).div_(std)
        with autocast(device, amp):
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm_sum += torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        optimizer.step()
        schedule.after_batch()
        loss_sum += loss.detach().float() * len(idx)
        correct += (logits.argmax(1) == yb).sum()
        n_steps += 1
        n_seen += len(idx)
        if n_steps % check_every == 0 and not torch.isfinite(loss_sum):
            return None
    train_loss = float(loss_sum) / max(1, n_seen)
    if not math.isfinite(train_loss):
        return None
    return train_loss, float(correct) / max(1, n_seen), float(grad_norm_sum) / max(1, n_steps)


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mean: torch.Tensor,
              std: torch.Tensor, batch_size: int, memory_format: torch.memory_format,
              amp: torch.dtype | None, device: torch.device) -> tuple[float, float]:
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    for start in range(0, len(y), batch_size):
        xb = x[start : start + batch_size].to(device, non_blocking=True)
        xb = xb.contiguous(memory_format=memory_format).float().sub_(mean).div_(std)
        with autocast(device, amp):
            logits = model(xb).float()
        yb = y[start : start + batch_size].to(device, non_blocking=True)
        loss_sum += F.cross_entropy(logits, yb, reduction="sum")
        correct += (logits.argmax(1) == yb).sum()
    return float(loss_sum) / len(y), float(correct) / len(y)


_RESUME_IGNORES = ("checkpoint_dir", "checkpoint_every", "epochs", "device", "compile",
                   "patience")


def _checkpoint(cfg: CifarConfig, epoch: int, model: nn.Module,
                optimizer: torch.optim.Optimizer, schedule: LRSchedule, stopper: EarlyStopping,
                gens: dict[str, torch.Generator], best: dict[str, float],
                last: dict[str, float], best_weights: dict[str, torch.Tensor] | None) -> None:
    assert cfg.checkpoint_dir is not None
    extra: dict[str, Any] = {"best": best, "last": last}
    if best_weights is not None:
        extra["best_weights"] = best_weights
    save_run(cfg.checkpoint_dir, epoch=epoch, config=_resume_key(cfg), model=model,
             optimizer=optimizer, schedule=schedule, stopper=stopper, gens=gens, extra=extra)


def _resume_key(cfg: CifarConfig) -> dict[str, Any]:
    return {k: v for k, v in cfg.to_dict().items() if k not in _RESUME_IGNORES}


def _resume(cfg: CifarConfig, model: nn.Module, optimizer: torch.optim.Optimizer,
            schedule: LRSchedule, stopper: EarlyStopping, gens: dict[str, torch.Generator]
            ) -> tuple[int, dict[str, float], dict[str, float],
                       dict[str, torch.Tensor] | None] | None:
    if not cfg.checkpoint_dir:
        return None
    restored = restore_run(cfg.checkpoint_dir, config=_resume_key(cfg), model=model,
                           optimizer=optimizer, schedule=schedule, stopper=stopper, gens=gens)
    if restored is None:
        return None
    first_epoch, extra = restored
    log.info("resumed from %s at epoch %d", cfg.checkpoint_dir, first_epoch - 1)
    weights = extra.get("best_weights")
    return (first_epoch, dict(extra["best"]), dict(extra["last"]),
            copy.copy(weights) if weights is not None else None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = config_parser(CifarConfig, prog="python -m trainers.cifar", description=__doc__)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = parse_args_into(CifarConfig, parser, argv)
        result = train(cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}")
        return 2
    for key, value in result.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
