"""channels_last only where oneDNN's CPU kernels are safe with it: under 8 channels its AVX2
kernels (CPUs without AVX-512) segfault or spin forever in the weight gradient."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainers.multitask_models import build_multitask_model
from trainers.resnet import resnet18_cifar
from trainers.runtime import memory_format_for

ROOT = Path(__file__).resolve().parents[2]
CPU = torch.device("cpu")


@pytest.mark.parametrize(("width", "expected"), [
    (0.0625, torch.contiguous_format),  # 4 channels in the first stage
    (0.11, torch.contiguous_format),    # 7
    (0.125, torch.channels_last),       # 8
    (1.0, torch.channels_last),
])
def test_cpu_memory_format_follows_the_narrowest_convolution(
        width: float, expected: torch.memory_format) -> None:
    assert memory_format_for(resnet18_cifar(width=width), CPU) == expected


def test_accelerators_always_get_channels_last() -> None:
    assert memory_format_for(resnet18_cifar(width=0.0625), torch.device("meta")) \
        == torch.channels_last


def test_multitask_backbones_are_wide_enough_for_channels_last() -> None:
    model = build_multitask_model("mobilenet_v3_large", num_classes=10, seg_classes=21)
    assert memory_format_for(model, CPU) == torch.channels_last


@pytest.mark.parametrize("threads", [1, 2])
def test_the_narrowest_width_trains_on_the_avx2_kernels(threads: int) -> None:
    """The crash and the hang this guards against, run for real: oneDNN's AVX2 kernels forced
    (what an AVX2-only CPU gets), width 0.0625, one and two threads. Before the fix this died
    with SIGSEGV / "double free or corruption" (1 thread) or never finished (2 threads)."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "trainers.cifar", "--width", "0.0625", "--epochs", "2",
           "--milestones", "1", "--synthetic-size", "256", "--val-size", "64",
           "--batch-size", "32"]
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:  # run() has killed the child
        pytest.fail(f"training hung on the AVX2 kernels with {threads} thread(s)")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "stop_reason: completed" in done.stdout
