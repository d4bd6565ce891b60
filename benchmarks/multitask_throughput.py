"""Multi-task training throughput: images per second per task, the time share of each backward
pass, and what the shared backbone and MTAdamV2 cost, measured side by side in one run.

For each backbone, on random uint8-range tensors already on the device (model compute only; the
data pipeline is the trainer's own ``images_per_second``):

- reference: torchvision's plain classifier (``models.<backbone>(weights=None)``) trained alone
  with Adam on classification batches: what a single-task loop costs;
- ours, classification only and segmentation only: a step through the multi-task model with
  one head; the first ratio says what carrying the second head costs the classification path;
- ours, joint step with Adam: one classification and one segmentation batch, one backward of the
  weighted sum (how the trainer runs the seven ordinary optimizers);
- ours, joint step with MTAdamV2: one backward pass per loss, then the balanced update. The
  breakdown times forward, each backward and the update separately (synchronised on CUDA).

    python -m benchmarks.multitask_throughput [--model resnet18] [--batch-size 8]
        [--cls-size 224] [--seg-size 320] [--steps 20]

bf16 autocast and channels_last on CUDA; fp32 on CPU (where the default sizes shrink to 64/96).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainers.mtadam import MTAdamV2
from trainers.multitask_models import MODELS, build_multitask_model
from trainers.runtime import amp_dtype, autocast, pick_device


def _timer(device: torch.device) -> Callable[[], float]:
    def now() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter()
    return now


def _batches(n: int, size: int, classes: int, device: torch.device, *, seg: bool
             ) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    if seg:
        return x, torch.randint(0, classes, (n, size, size), device=device)
    return x, torch.randint(0, classes, (n,), device=device)


def _median_step(step: Callable[[], None], now: Callable[[], float], steps: int, warmup: int
                 ) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = now()
        step()
        times.append(now() - start)
    return statistics.median(times)


def bench_model(name: str, *, batch_size: int, cls_size: int, seg_size: int, steps: int,
                warmup: int, device: torch.device) -> dict[str, float]:
    from torchvision import models

    amp = amp_dtype("auto", device)
    now = _timer(device)
    xc, yc = _batches(batch_size, cls_size, 1000, device, seg=False)
    xs, ys = _batches(batch_size, seg_size, 21, device, seg=True)

    reference: nn.Module = getattr(models, name)(weights=None, num_classes=1000)
    reference = reference.to(device).to(memory_format=torch.channels_last).train()
    ref_opt = torch.optim.Adam(reference.parameters(), lr=1e-4)

    def ref_step() -> None:
        with autocast(device, amp):
            loss = F.cross_entropy(reference(xc).float(), yc)
        ref_opt.zero_grad(set_to_none=True)
        loss.backward()
        ref_opt.step()

    model = build_multitask_model(name, num_classes=1000, seg_classes=21)
    model = model.to(device).to(memory_format=torch.channels_last).train()
    adam = torch.optim.Adam(model.parameters(), lr=1e-4)
    mtadam = MTAdamV2(model.parameters(), lr=1e-4, task_weights=(0.5, 0.5))

    def losses() -> tuple[torch.Tensor, torch.Tensor]:
        with autocast(device, amp):
            cls = model(xc, tasks=("cls",))["cls"]
            seg = model(xs, tasks=("seg",))["seg"]
        return F.cross_entropy(cls.float(), yc), F.cross_entropy(seg.float(), ys)

    def single(task: str) -> Callable[[], None]:
        x, y = (xc, yc) if task == "cls" else (xs, ys)

        def step() -> None:
            with autocast(device, amp):
                loss = F.cross_entropy(model(x, tasks=(task,))[task].float(), y)
            adam.zero_grad(set_to_none=True)
            loss.backward()
            adam.step()
        return step

    def joint_adam() -> None:
        cls_loss, seg_loss = losses()
        adam.zero_grad(set_to_none=True)
        (0.5 * cls_loss + 0.5 * seg_loss).backward()
        adam.step()

    def joint_mtadam() -> None:
        mtadam.zero_grad(set_to_none=True)
        mtadam.backward_and_step(list(losses()))

    out = {
        "reference_cls": _median_step(ref_step, now, steps, warmup),
        "cls_only": _median_step(single("cls"), now, steps, warmup),
        "seg_only": _median_step(single("seg"), now, steps, warmup),
        "joint_adam": _median_step(joint_adam, now, steps, warmup),
        "joint_mtadam": _median_step(joint_mtadam, now, steps, warmup),
    }
    # Phase breakdown of the MTAdamV2 step: forward, backward of each loss, the update.
    phases: dict[str, list[float]] = {"forward": [], "backward_cls": [], "backward_seg": [],
                                      "update": []}
    params: list[torch.Tensor] = list(model.parameters())
    for i in range(warmup + steps):
        t0 = now()
        cls_loss, seg_loss = losses()
        t1 = now()
        mtadam.zero_grad(set_to_none=True)
        cls_loss.backward(retain_graph=True)
        g_cls = [None if p.grad is None else p.grad.clone() for p in params]
        t2 = now()
        mtadam.zero_grad(set_to_none=True)
        seg_loss.backward()
        g_seg = [None if p.grad is None else p.grad.clone() for p in params]
        t3 = now()
        mtadam._update(params, [g_cls, g_seg])
        t4 = now()
        if i >= warmup:
            for key, value in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                phases[key].append(value)
    out.update({f"phase_{k}": statistics.median(v) for k, v in phases.items()})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.multitask_throughput",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=[*MODELS, "both"], default="both")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--cls-size", type=int)
    parser.add_argument("--seg-size", type=int)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    cls_size = args.cls_size or (224 if device.type == "cuda" else 64)
    seg_size = args.seg_size or (320 if device.type == "cuda" else 96)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        print(f"device: {torch.cuda.get_device_name(device)}, bf16 autocast")
    else:
        print(f"device: cpu ({torch.get_num_threads()} threads), fp32")
    print(f"batch {args.batch_size}, classification {cls_size}px, segmentation {seg_size}px, "
          f"median of {args.steps} steps after {args.warmup} warm-up steps")
    b = args.batch_size
    for name in (MODELS if args.model == "both" else (args.model,)):
        r = bench_model(name, batch_size=b, cls_size=cls_size, seg_size=seg_size,
                        steps=args.steps, warmup=args.warmup, device=device)
        print(f"\n{name}")
        print(f"  reference (torchvision classifier alone): {b / r['reference_cls']:8.1f} img/s")
        print(f"  classification only, multi-task model:    {b / r['cls_only']:8.1f} img/s  "
              f"ratio to reference {r['reference_cls'] / r['cls_only']:.2f}x")
        print(f"  segmentation only:                        {b / r['seg_only']:8.1f} img/s")
        print(f"  joint step, Adam (one backward):          {b / r['joint_adam']:8.1f} img/s "
              f"per task  ratio to cls+seg steps run apart "
              f"{(r['cls_only'] + r['seg_only']) / r['joint_adam']:.2f}x")
        print(f"  joint step, MTAdamV2 (two backwards):     {b / r['joint_mtadam']:8.1f} img/s "
              f"per task  cost vs Adam {r['joint_mtadam'] / r['joint_adam']:.2f}x")
        total = sum(r[f"phase_{k}"] for k in ("forward", "backward_cls", "backward_seg",
                                              "update"))
        shares = ", ".join(f"{k.removeprefix('phase_')} {100 * r[k] / total:.0f}%"
                           for k in ("phase_forward", "phase_backward_cls",
                                     "phase_backward_seg", "phase_update"))
        print(f"  MTAdamV2 step time shares: {shares} (of {1000 * total:.1f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
