"""Multi-task trainer: 1000-class classification and 21-class (VOC) segmentation on one
backbone (MobileNetV3-Large or ResNet-18), under the same contract as the CIFAR trainer.

Baseline: the two-model and optimizer-settings documents. ImageNet-style classification and
COCO segmentation restricted to the VOC classes, batch size 8, 5 epochs, eight optimizers with
the documents' settings; their learning-rate table is this trainer's code default per model
(MobileNetV3-Large: Adam family 0.001, SGD 0.01, Adagrad 0.01; ResNet-18: Adam family 0.005,
SGD 0.01, Adagrad 0.02; Adadelta 1.0 for both). The documents report MobileNetV3-Large + Adam at
83.4% accuracy after 5 epochs and ResNet-18 + SGD/Nesterov at 46.4%, with mIoU 0.03-0.04 for
every optimizer; those are their figures, not ones measured here.

Each step draws one classification batch and one segmentation batch (different images), runs
both through the shared backbone and computes both losses. Ordinary optimizers step on
``(1 - seg_weight) * cls_loss + seg_weight * seg_loss``; MTAdamV2 runs one backward pass per
loss and balances them itself with task weights ``(1 - seg_weight, seg_weight)``.
An epoch is one pass over the larger training set (the smaller one cycles), or
``steps_per_epoch`` steps. After every epoch it reports top-1 (and top-5) accuracy, mIoU from a
global confusion matrix (ignore index 255 excluded), pixel accuracy, both tasks' losses, and
``score = (1 - score_seg_weight) * val_acc + score_seg_weight * val_miou``: the one number
pruning and early stopping look at.

Run standalone on generated data: ``python -m trainers.multitask --model resnet18
--optimizer mtadamv2 --epochs 2`` (``cls_dataset: synthetic`` and ``seg_dataset:
synthetic-coco`` write tiny data sets in the real formats into ``cache_dir`` first).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainers.checkpoint import restore_run, save_run
from trainers.coco_voc import IGNORE_INDEX, VOC_CLASSES
from trainers.contract import TrainerInfo
from trainers.data import random_crop_flip
from trainers.dataset_keys import multitask_dataset_key
from trainers.early_stopping import EarlyStopping
from trainers.multitask_data import (
    BatchSource,
    ClassificationFiles,
    EvalSet,
    SegmentationFiles,
    check_classification_source,
    classification_splits,
    segmentation_splits,
)
from trainers.multitask_models import MODELS, build_multitask_model
from trainers.optim import build_optimizer
from trainers.reporter import NullReporter, Reporter
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
from trainers.schedules import LRSchedule
from trainers.seg_metrics import ConfusionMatrix
from trainers.training_config import (
    EPOCH_FIELDS,
    EPOCH_FLOORS,
    OptimizerSettings,
    ScheduleOptions,
    TrainingConfigMixin,
    training_tunable_fields,
)

__all__ = ["MODEL_LR", "SEARCH", "Config", "MultitaskConfig", "StopReason", "preflight",
           "train"]

log = logging.getLogger(__name__)

# The two-model document's learning rates. NAdam and AMSGrad, which it does not list, take
# the Adam family's value of their model.
MODEL_LR: dict[str, dict[str, float]] = {
    "mobilenet_v3_large": {"sgd": 0.01, "nesterov": 0.01, "adam": 0.001, "adamw": 0.001,
                           "rmsprop": 0.001, "adagrad": 0.01, "adadelta": 1.0,
                           "mtadamv2": 0.001, "nadam": 0.001, "amsgrad": 0.001},
    "resnet18": {"sgd": 0.01, "nesterov": 0.01, "adam": 0.005, "adamw": 0.005,
                 "rmsprop": 0.005, "adagrad": 0.02, "adadelta": 1.0, "mtadamv2": 0.005,
                 "nadam": 0.005, "amsgrad": 0.005},
}
_SYNTHETIC_CLS = "synthetic"
_SYNTHETIC_SEG = ("synthetic-coco", "synthetic-voc")
_IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
_IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
_RESUME_IGNORES = ("checkpoint_dir", "checkpoint_every", "epochs", "device", "patience",
                   "loader_workers", "preload", "cache_dir")




@dataclass(frozen=True)
class MultitaskConfig(TrainingConfigMixin, ScheduleOptions, OptimizerSettings):
    """One multi-task training run; units in the names where they matter."""

    # model
    model: str = "mobilenet_v3_large"
    weights_path: str | None = None  # a local torchvision state dict; nothing is downloaded
    num_classes: int = 1000
    # BatchNorm running-average momentum; None keeps the backbone's (torchvision's
    # MobileNetV3 uses 0.01, tuned for long ImageNet runs: over a few hundred steps its running
    # statistics barely move and evaluation sees chance accuracy; 0.1 suits short runs)
    bn_momentum: float | None = None
    # data: an image-folder tree/archive (ImageNet layout) or "synthetic"; a COCO or VOC root,
    # or "synthetic-coco"/"synthetic-voc" (generated once into cache_dir, in the real format)
    cls_dataset: str = _SYNTHETIC_CLS
    seg_dataset: str = "synthetic-coco"
    seg_format: str = "auto"  # "auto", "coco" or "voc"
    cls_image_size: int = 224
    seg_image_size: int = 320
    val_fraction: float = 0.1  # when a data set has no validation split of its own
    coco_min_area: float = 1000.0  # training images with less VOC-class area are dropped
    train_limit: int | None = None  # a seeded subset of N training images per task
    val_limit: int | None = None  # a seeded subset of N validation images per task
    cache_dir: str = "~/.cache/hpsearch/data"
    augment: bool = True
    loader_workers: int | None = None  # None: half the CPUs on CUDA, 0 (main process) on CPU
    preload: str = "auto"  # decode a set into memory once: "auto" (below 2 GiB), "yes", "no"
    # optimizer; its settings (OptimizerSettings) left None take the model's LR table and
    # the optimizer document's settings
    optimizer: str = "adam"
    # multiplies lr (explicit or default): one search range that suits every optimizer, whose
    # defaults span 0.001 (Adam) to 1.0 (Adadelta)
    lr_scale: float = 1.0
    seg_weight: float = 0.5  # task weights (1 - seg_weight, seg_weight)
    batch_size: int = 8
    eval_batch_size: int = 32
    clip_grad_norm: float | None = None
    # schedule (trainers/schedules.py; other options in ScheduleOptions); milestones in epochs
    epochs: int = 5
    steps_per_epoch: int | None = None
    schedule: str = "constant"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    # selection: score = (1 - score_seg_weight) * val_acc + score_seg_weight * val_miou
    score_seg_weight: float = 0.5
    patience: int = 10
    min_delta: float = 0.0
    checkpoint_dir: str | None = None
    checkpoint_every: int = 1
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"

    _kind = "multitask"

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; expected one of {list(MODELS)}")
        if self.seg_format not in ("auto", "coco", "voc"):
            raise ValueError(f"unknown seg_format {self.seg_format!r}; expected 'auto', "
                             "'coco' or 'voc'")
        if self.preload not in ("auto", "yes", "no"):
            raise ValueError(f"unknown preload {self.preload!r}; expected 'auto', 'yes', 'no'")
        for name in ("num_classes", "cls_image_size", "seg_image_size", "batch_size",
                     "eval_batch_size"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("steps_per_epoch", "train_limit", "val_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value!r}")
        if self.loader_workers is not None and self.loader_workers < 0:
            raise ValueError(f"loader_workers must be >= 0, got {self.loader_workers}")
        for name in ("seg_weight", "score_seg_weight"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.bn_momentum is not None and not 0 < self.bn_momentum <= 1:
            raise ValueError(f"bn_momentum must be in (0, 1], got {self.bn_momentum}")
        if not self.lr_scale > 0:
            raise ValueError(f"lr_scale must be > 0, got {self.lr_scale}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.optimizer == "mtadamv2":
            if not 0 < self.seg_weight < 1:
                raise ValueError(f"mtadamv2 needs both task weights > 0, got seg_weight "
                                 f"{self.seg_weight}; use a value strictly between 0 and 1")
            if self.clip_grad_norm is not None:
                raise ValueError("clip_grad_norm does not apply to mtadamv2 (it rescales each "
                                 "loss's gradient itself); leave clip_grad_norm unset")
        self.check_training_fields()

    @property
    def task_weights(self) -> tuple[float, float]:
        return (1.0 - self.seg_weight, self.seg_weight)

    def code_optimizer_defaults(self) -> dict[str, float]:
        return {"lr": MODEL_LR[self.model][self.optimizer]}


def _dataset_key(cfg: MultitaskConfig) -> str:
    return multitask_dataset_key(cfg.cls_dataset, cfg.seg_dataset)


def _regime(cfg: MultitaskConfig) -> dict[str, Any]:
    """What a measured result depends on besides its hyperparameters (the data sets are in the
    tuned-defaults key; whether the backbone starts from weights is here)."""
    return {"model": cfg.model, "pretrained": cfg.weights_path is not None,
            "num_classes": cfg.num_classes, "cls_image_size": cfg.cls_image_size,
            "seg_image_size": cfg.seg_image_size, "epochs": cfg.epochs,
            "steps_per_epoch": cfg.steps_per_epoch, "batch_size": cfg.batch_size,
            "train_limit": cfg.train_limit, "val_limit": cfg.val_limit}


_REPORTS = ("score", "val_acc", "val_top5_acc", "val_cls_loss", "val_miou", "val_pixel_acc",
            "val_seg_loss", "train_cls_loss", "train_seg_loss", "grad_norm", "lr",
            "epoch_seconds", "images_per_second")
Config = MultitaskConfig  # the name the trainer contract looks for
SEARCH = TrainerInfo(
    tunable_fields=training_tunable_fields("seg_weight", "batch_size"),
    metrics=("best_score", "best_val_acc", "best_val_miou", "best_val_pixel_acc",
             "best_val_top5_acc", "best_val_cls_loss", "best_val_seg_loss",
             "best_train_cls_loss", "best_train_seg_loss", "best_epoch", "epochs_run",
             "resumed_from_epoch", *(f"last_{m}" for m in _REPORTS)),
    reports=_REPORTS,
    default_metric="best_score",
    default_report="score",
    key_fields=("model", "optimizer", "cls_dataset", "seg_dataset"),
    regime_fields=("model", "weights_path", "num_classes", "cls_dataset", "seg_dataset",
                   "cls_image_size", "seg_image_size", "val_fraction", "coco_min_area",
                   "train_limit", "val_limit", "epochs", "steps_per_epoch", "batch_size"),
    regime=_regime,
    epoch_fields=EPOCH_FIELDS,
    epoch_floors=EPOCH_FLOORS,
    regime_scaled=("epochs", "steps_per_epoch", "batch_size", "train_limit", "val_limit"),
    dataset_key=_dataset_key,
)


def preflight(cfg: MultitaskConfig) -> None:
    """Cheap checks before any trial starts: the data sources exist."""
    if cfg.cls_dataset != _SYNTHETIC_CLS and not Path(cfg.cls_dataset).expanduser().exists():
        raise ValueError(f"cls_dataset {cfg.cls_dataset!r} does not exist; give an image-folder "
                         "tree (ImageNet layout), a .tar/.tar.gz of one, or 'synthetic'")
    if cfg.cls_dataset != _SYNTHETIC_CLS:  # every image header read once
        try:
            check_classification_source(cfg.cls_dataset,
                                        cache_dir=Path(cfg.cache_dir).expanduser())
        except ValueError as exc:
            raise ValueError(f"cls_dataset: {exc}") from None
    if cfg.seg_dataset not in _SYNTHETIC_SEG and not Path(cfg.seg_dataset).expanduser().is_dir():
        raise ValueError(f"seg_dataset {cfg.seg_dataset!r} is not a directory; give a COCO root, "
                         f"a VOC root, or one of {list(_SYNTHETIC_SEG)}")
    if cfg.weights_path is not None and not Path(cfg.weights_path).expanduser().is_file():
        raise ValueError(f"weights_path {cfg.weights_path!r} does not exist; give a local state "
                         "dict file or leave it unset")


def train(cfg: MultitaskConfig, reporter: Reporter | None = None
          ) -> dict[str, float | int | str]:
    """Train one configuration; report every epoch; return final metrics (never raises to stop).

    Returns ``best_score`` (the selection metric) and the best epoch's ``best_val_acc``,
    ``best_val_miou``, ``best_val_pixel_acc``, the last epoch's metrics (``last_*``),
    ``epochs_run``, ``best_epoch`` and ``stop_reason`` (``diverged_epoch`` when it diverged).
    Bad data (labels outside 0..20/255, image and mask sizes that disagree, a COCO file without
    segmentation, a class count other than ``num_classes``) raises ValueError naming the file.
    """
    reporter = reporter or NullReporter()
    cfg = cfg.resolved()
    preflight(cfg)
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    workers = _loader_workers(cfg, device)
    cls_train, cls_val, seg_train, seg_val = _load_data(cfg)
    pin = device.type == "cuda"
    cls_source = BatchSource(cls_train, batch_size=cfg.batch_size, seed=cfg.seed * 2 + 1,
                             workers=workers, preload=cfg.preload, pin_memory=pin,
                             sample_bytes=3 * cfg.cls_image_size**2)
    seg_source = BatchSource(seg_train, batch_size=cfg.batch_size, seed=cfg.seed * 2 + 2,
                             workers=workers, preload=cfg.preload, pin_memory=pin,
                             sample_bytes=4 * cfg.seg_image_size**2)
    cls_eval = EvalSet(cls_val, batch_size=cfg.eval_batch_size, workers=workers,
                       preload=cfg.preload, sample_bytes=3 * cfg.cls_image_size**2)
    seg_eval = EvalSet(seg_val, batch_size=cfg.eval_batch_size, workers=workers,
                       preload=cfg.preload, sample_bytes=4 * cfg.seg_image_size**2)
    steps = cfg.steps_per_epoch or max(cls_source.batches_per_pass, seg_source.batches_per_pass)
    mean = torch.tensor(_IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(_IMAGENET_STD, device=device).view(1, 3, 1, 1)
    amp = amp_dtype(cfg.amp, device)

    model = build_multitask_model(cfg.model, num_classes=cfg.num_classes,
                                  seg_classes=len(VOC_CLASSES), weights_path=cfg.weights_path)
    if cfg.bn_momentum is not None:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = cfg.bn_momentum
    memory_format = memory_format_for(model, device)  # see trainers/runtime.py
    model = model.to(device).to(memory_format=memory_format)
    groups = [{"params": [p for p in model.parameters() if p.dim() > 1], "decay": 1.0},
              {"params": [p for p in model.parameters() if p.dim() <= 1], "decay": 0.0}]
    optimizer = build_optimizer(cfg.optimizer, groups, cfg.optimizer_settings(),
                                task_weights=cfg.task_weights)
    schedule = LRSchedule(optimizer, cfg.schedule_spec(), steps)
    stopper = EarlyStopping(patience=cfg.patience, min_delta=cfg.min_delta)
    gens = {"augment": torch.Generator().manual_seed(cfg.seed + 3)}
    run = _Run(cfg, model, optimizer, schedule, device, amp, mean, std, gens)

    best: dict[str, float] = {}
    last: dict[str, float] = {}
    first_epoch = 1
    resume_key = {k: v for k, v in cfg.to_dict().items() if k not in _RESUME_IGNORES}
    if cfg.checkpoint_dir:
        restored = restore_run(cfg.checkpoint_dir, config=resume_key, model=model,
                               optimizer=optimizer, schedule=schedule, stopper=stopper,
                               gens=gens)
        if restored is not None:
            first_epoch, extra = restored
            best, last = dict(extra["best"]), dict(extra["last"])
            log.info("resumed from %s at epoch %d", cfg.checkpoint_dir, first_epoch - 1)
    stop_reason = StopReason.COMPLETED
    epoch = first_epoch - 1
    for epoch in range(first_epoch, cfg.epochs + 1):
        lr_now = schedule.lr()
        start = time.perf_counter()
        batches = zip(cls_source.batches((epoch - 1) * steps, steps),
                      seg_source.batches((epoch - 1) * steps, steps), strict=True)
        stats = run.train_epoch(batches, steps)
        if stats is None:
            stop_reason = StopReason.DIVERGED
            log.warning("diverged in epoch %d (non-finite loss) at lr %.4g", epoch, lr_now)
            break
        train_seconds = time.perf_counter() - start
        metrics = run.evaluate(cls_eval, seg_eval)
        score = ((1 - cfg.score_seg_weight) * metrics["val_acc"]
                 + cfg.score_seg_weight * metrics["val_miou"])
        schedule.after_epoch(score)
        last = {"score": score, **metrics, **stats, "lr": lr_now,
                "epoch_seconds": time.perf_counter() - start,
                "images_per_second": 2 * steps * cfg.batch_size / train_seconds}
        if not best or score > best["score"]:
            best = dict(last, epoch=float(epoch))
        log.info("epoch %d/%d score %.4f acc %.4f mIoU %.4f cls_loss %.4f seg_loss %.4f lr %.4g "
                 "(%.1fs)", epoch, cfg.epochs, score, metrics["val_acc"], metrics["val_miou"],
                 stats["train_cls_loss"], stats["train_seg_loss"], lr_now, last["epoch_seconds"])
        stop_early = stopper.update(epoch, score)
        if cfg.checkpoint_dir and epoch % cfg.checkpoint_every == 0:
            save_run(cfg.checkpoint_dir, epoch=epoch, config=resume_key, model=model,
                     optimizer=optimizer, schedule=schedule, stopper=stopper, gens=gens,
                     extra={"best": best, "last": last})
        reporter.report(epoch, last)
        verdict = epoch_verdict(reporter, stop_early=stop_early,
                                final=epoch == cfg.epochs)
        if verdict is not None:
            stop_reason = verdict
            break

    return summarize(stop_reason, epoch=epoch, first_epoch=first_epoch, best=best, last=last,
                     selection=("score", "val_acc", "val_miou"),
                     best_keys=("val_pixel_acc", "val_top5_acc", "val_cls_loss", "val_seg_loss",
                                "train_cls_loss", "train_seg_loss"))


class _Run:
    """The model, optimizer and per-batch work of one run."""

    def __init__(self, cfg: MultitaskConfig, model: nn.Module, optimizer: torch.optim.Optimizer,
                 schedule: LRSchedule, device: torch.device, amp: torch.dtype | None,
                 mean: torch.Tensor, std: torch.Tensor, gens: dict[str, torch.Generator]
                 ) -> None:
        self.cfg, self.model, self.optimizer, self.schedule = cfg, model, optimizer, schedule
        self.device, self.amp, self.mean, self.std, self.gens = device, amp, mean, std, gens

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 images (anywhere) -> normalised float on the device, channels_last."""
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        return x.float().sub_(self.mean).div_(self.std)

    def losses(self, xc: torch.Tensor, yc: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        with autocast(self.device, self.amp):
            cls_logits = self.model(xc, tasks=("cls",))["cls"]
            seg_logits = self.model(xs, tasks=("seg",))["seg"]
        return F.cross_entropy(cls_logits.float(), yc), _seg_loss(seg_logits.float(), ys)

    def train_epoch(self, batches: Iterator[tuple[tuple[torch.Tensor, torch.Tensor],
                                                  tuple[torch.Tensor, torch.Tensor]]],
                    steps: int) -> dict[str, float] | None:
        """One epoch of paired steps; None when a loss stopped being finite."""
        cfg, device = self.cfg, self.device
        self.model.train()
        check_every = divergence_check_every(device)
        sums = torch.zeros(4, device=device)  # cls loss, seg loss, cls correct, grad norm
        max_norm = cfg.clip_grad_norm if cfg.clip_grad_norm is not None else math.inf
        mtadam = cfg.optimizer == "mtadamv2"
        w_cls, w_seg = cfg.task_weights
        n = 0
        for (xc, yc), (xs, ys) in batches:
            xc, yc = xc.to(device, non_blocking=True), yc.to(device, non_blocking=True)
            xs, ys = xs.to(device, non_blocking=True), ys.to(device, non_blocking=True)
            if cfg.augment:  # on uint8, as the CIFAR trainer does: black padding, fewer bytes
                xc = random_crop_flip(xc, padding=cfg.cls_image_size // 8,
                                      generator=self.gens["augment"])
                xs, ys = _flip_pair(xs, ys, self.gens["augment"])
            xc, xs = self.normalize(xc), self.normalize(xs)
            cls_loss, seg_loss = self.losses(xc, yc, xs, ys)
            self.optimizer.zero_grad(set_to_none=True)
            if mtadam:
                self.optimizer.backward_and_step([cls_loss, seg_loss])  # type: ignore[attr-defined]
            else:
                (w_cls * cls_loss + w_seg * seg_loss).backward()
                sums[3] += torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)
                self.optimizer.step()
            self.schedule.after_batch()
            with torch.no_grad():
                sums[0] += cls_loss.detach()
                sums[1] += seg_loss.detach()
            n += 1
            if n % check_every == 0 and not torch.isfinite(sums[:2]).all():
                return None
        if n != steps:
            raise AssertionError(f"epoch ran {n} steps, expected {steps}")
        values = (sums / max(1, n)).tolist()
        if not all(math.isfinite(v) for v in values[:2]):
            return None
        out = {"train_cls_loss": values[0], "train_seg_loss": values[1]}
        if not mtadam:
            out["grad_norm"] = values[3]
        return out

    @torch.no_grad()
    def evaluate(self, cls_eval: EvalSet, seg_eval: EvalSet) -> dict[str, float]:
        self.model.eval()
        dev = self.device
        cls_sums = torch.zeros(3, device=dev)  # loss, top-1 correct, top-5 correct
        for x, y in cls_eval.batches():
            y = y.to(dev, non_blocking=True)
            with autocast(dev, self.amp):
                logits = self.model(self.normalize(x), tasks=("cls",))["cls"].float()
            cls_sums[0] += F.cross_entropy(logits, y, reduction="sum")
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices
            cls_sums[1] += (top[:, 0] == y).sum()
            cls_sums[2] += (top == y[:, None]).any(dim=1).sum()
        cm = ConfusionMatrix(len(VOC_CLASSES), ignore_index=IGNORE_INDEX, device=dev)
        seg_loss = torch.zeros((), device=dev)
        for x, m in seg_eval.batches():
            m = m.to(dev, non_blocking=True).long()
            with autocast(dev, self.amp):
                logits = self.model(self.normalize(x), tasks=("seg",))["seg"].float()
            seg_loss += F.cross_entropy(logits, m, ignore_index=IGNORE_INDEX, reduction="sum")
            cm.update(m, logits.argmax(1))
        n_cls = max(1, len(cls_eval))
        pixels = max(1, int(cm.matrix.sum()))
        loss, top1, top5 = cls_sums.tolist()
        return {"val_acc": top1 / n_cls, "val_top5_acc": top5 / n_cls,
                "val_cls_loss": loss / n_cls, "val_miou": cm.mean_iou(),
                "val_pixel_acc": cm.pixel_accuracy(), "val_seg_loss": float(seg_loss) / pixels}


def _seg_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over labelled pixels; 0, not NaN, for a batch with none."""
    target = target.long()
    total = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / (target != IGNORE_INDEX).sum().clamp_min(1)


def _flip_pair(x: torch.Tensor, m: torch.Tensor, gen: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor]:
    flip = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    m = torch.where(flip.view(-1, 1, 1), m.flip(2), m)
    return x, m


def _loader_workers(cfg: MultitaskConfig, device: torch.device) -> int:
    if cfg.loader_workers is not None:
        return cfg.loader_workers
    # On CPU the decoding workers would compete with the training math for the same cores.
    return min(8, (os.cpu_count() or 2) // 2) if device.type == "cuda" else 0


def _load_data(cfg: MultitaskConfig) -> tuple[ClassificationFiles, ClassificationFiles,
                                              SegmentationFiles, SegmentationFiles]:
    cache = Path(cfg.cache_dir).expanduser()
    cls_source, seg_source = _materialize_synthetic(cfg, cache)
    cls_train, cls_val = classification_splits(cls_source, size=cfg.cls_image_size,
                                               cache_dir=cache, val_fraction=cfg.val_fraction,
                                               seed=0)
    if len(cls_train.classes) != cfg.num_classes:
        raise ValueError(f"{cfg.cls_dataset!r} has {len(cls_train.classes)} classes but "
                         f"num_classes is {cfg.num_classes}; set num_classes to "
                         f"{len(cls_train.classes)}")
    seg_train, seg_val = segmentation_splits(seg_source, size=cfg.seg_image_size,
                                             val_fraction=cfg.val_fraction, seed=0,
                                             min_area=cfg.coco_min_area,
                                             seg_format=cfg.seg_format)
    sets = [cls_train, cls_val, seg_train, seg_val]
    limits = [cfg.train_limit, cfg.val_limit] * 2
    return tuple(_limited(s, n) for s, n in zip(sets, limits, strict=True))


def _limited(data: Any, n: int | None) -> Any:
    if n is None or n >= len(data):
        return data
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0))
    return data.subset(sorted(order[:n].tolist()))


def _materialize_synthetic(cfg: MultitaskConfig, cache: Path) -> tuple[str, str]:
    """Generated data sets are written once into the cache, then read like real ones."""
    from trainers.synthetic_formats import write_classification, write_coco, write_voc

    cls_source, seg_source = cfg.cls_dataset, cfg.seg_dataset
    if cls_source == _SYNTHETIC_CLS:
        cls_source = _generated(cache / f"synthetic-imagenet-{cfg.num_classes}", lambda p:
                                write_classification(p, classes=cfg.num_classes))
    if seg_source == "synthetic-coco":
        seg_source = _generated(cache / "synthetic-coco", write_coco)
    elif seg_source == "synthetic-voc":
        seg_source = _generated(cache / "synthetic-voc", write_voc)
    return cls_source, seg_source


def _generated(target: Path, write: Any) -> str:
    if not target.is_dir():
        tmp = target.with_name(f".{target.name}.{os.getpid()}")
        write(tmp)
        try:
            os.replace(tmp, target)  # atomic: parallel workers never read half a data set
        except OSError:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)  # another worker wrote it first
    return str(target)


def main(argv: Sequence[str] | None = None) -> int:
    parser = config_parser(MultitaskConfig, prog="python -m trainers.multitask",
                           description=__doc__)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = parse_args_into(MultitaskConfig, parser, argv)
        result = train(cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}")
        return 2
    for key, value in result.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
