"""What both trainers need from the machine and the command line: device choice, mixed
precision, RNG state for checkpoints, config validation helpers and a flag parser built from a
config dataclass."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch

__all__ = ["CPU_CHANNELS_LAST_MIN_CHANNELS", "OPTIMIZER_FIELDS", "amp_dtype", "autocast",
           "config_parser", "divergence_check_every", "machine_cores", "memory_format_for",
           "parse_args_into", "parse_bool", "pick_device", "restore_rng", "rng_state",
           "validate_optimizer_fields"]

# The per-optimizer settings a config may leave unset (None: the optimizer's document default).
OPTIMIZER_FIELDS = ("lr", "weight_decay", "momentum", "beta1", "beta2", "eps", "alpha", "rho",
                    "lr_decay")


def divergence_check_every(device: torch.device) -> int:
    """Steps between checks for a non-finite loss: every step on CPU, where the check costs
    nothing; every 50 on CUDA, where reading the loss back stalls the GPU queue."""
    return 1 if device.type == "cpu" else 50


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# On CPUs without AVX-512 (oneDNN's AVX2 kernels), channels_last convolutions with fewer than 8
# channels crash (segfault, "double free or corruption") or spin forever in the 1x1 weight
# gradient (jit_avx2_1x1_convolution_bwd_weights_t); checked with torch 2.14.1 / oneDNN 3.12
# under ONEDNN_MAX_CPU_ISA=AVX2 for ResNet-18 widths 0.0625 (4 channels), 0.1 (6) and 0.11 (7);
# 8 channels and up trained fine, and there channels_last ran 1.16-1.54x contiguous's speed
# (1.22-1.33x with the AVX-512 kernels).
CPU_CHANNELS_LAST_MIN_CHANNELS = 8


def machine_cores() -> int:
    """The CPU cores this process may run on (its affinity, e.g. a container's share), which
    os.cpu_count() does not see."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def memory_format_for(model: torch.nn.Module, device: torch.device) -> torch.memory_format:
    """channels_last where it is safe and pays: always on accelerators; on CPU only when every
    convolution has at least ``CPU_CHANNELS_LAST_MIN_CHANNELS`` output channels."""
    if device.type != "cpu":
        return torch.channels_last
    widths = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    if widths and min(widths) < CPU_CHANNELS_LAST_MIN_CHANNELS:
        return torch.contiguous_format
    return torch.channels_last


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """``auto``: bf16 autocast on CUDA, fp32 elsewhere; ``bf16``: always; ``off``: never."""
    if amp == "bf16" or (amp == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def rng_state(gens: dict[str, torch.Generator]) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(),
                             **{name: g.get_state() for name, g in gens.items()}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], gens: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    for name, g in gens.items():
        g.set_state(state[name])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def validate_optimizer_fields(cfg: Any) -> None:
    """Range checks of the optimizer settings a config carries (None means unset)."""
    for name in ("lr", "eps"):
        value = getattr(cfg, name)
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")
    for name in ("weight_decay", "momentum", "lr_decay"):
        value = getattr(cfg, name)
        if value is not None and value < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
    for name in ("beta1", "beta2", "alpha", "rho"):
        value = getattr(cfg, name)
        if value is not None and not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def config_parser(config_cls: type, *, prog: str, description: str | None
                  ) -> argparse.ArgumentParser:
    """One ``--flag`` per config field, typed from the field's default or annotation."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    optional = {"float | None": float, "int | None": int, "str | None": str}
    for f in dataclasses.fields(config_cls):
        flag = f"--{f.name.replace('_', '-')}"
        default = f.default
        if isinstance(default, tuple):
            kind = type(default[0]) if default else int
            parser.add_argument(flag, type=kind, nargs="*", default=list(default))
        elif isinstance(default, bool):
            parser.add_argument(flag, type=parse_bool, default=default)
        elif str(f.type) in optional:
            parser.add_argument(flag, type=optional[str(f.type)], default=None)
        else:
            parser.add_argument(flag, type=type(default), default=default)
    return parser


def parse_args_into(config_cls: type, parser: argparse.ArgumentParser,
                    argv: Sequence[str] | None) -> Any:
    args: dict[str, Any] = vars(parser.parse_args(argv))
    for f in dataclasses.fields(config_cls):
        if isinstance(f.default, tuple):
            args[f.name] = tuple(args[f.name])
    return config_cls(**args)


def parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
