"""Training checkpoints: plain state dicts and tensors only, loaded with ``weights_only=True``.

A checkpoint holds the model, optimizer, LR schedule, early-stopping state, the best epoch's
metrics, every random generator the loop draws from, the epoch, and the config it was made with
(a resume under a different config is refused). Writes are atomic (temp file + rename), so a run
killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainers.early_stopping import EarlyStopping
from trainers.runtime import restore_rng, rng_state
from trainers.schedules import LRSchedule

__all__ = ["CHECKPOINT_NAME", "load_checkpoint", "restore_run", "save_checkpoint", "save_run"]

CHECKPOINT_NAME = "last.pt"


def save_checkpoint(directory: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    path = Path(directory).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    target = path / CHECKPOINT_NAME
    tmp = path / f".{CHECKPOINT_NAME}.{os.getpid()}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, target)
    return target


def load_checkpoint(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    target = Path(directory).expanduser() / CHECKPOINT_NAME
    if not target.exists():
        return None
    state: dict[str, Any] = torch.load(target, map_location="cpu", weights_only=True)
    return state


def save_run(directory: str, *, epoch: int, config: dict[str, Any], model: nn.Module,
             optimizer: torch.optim.Optimizer, schedule: LRSchedule, stopper: EarlyStopping,
             gens: dict[str, torch.Generator], extra: dict[str, Any]) -> Path:
    """Everything a training loop needs to continue after ``epoch`` exactly as it would have."""
    return save_checkpoint(directory, {
        "epoch": epoch, "config": config, "model": model.state_dict(),
        "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
        "stopper": stopper.state_dict(), "rng": rng_state(gens), "extra": extra})


def restore_run(directory: str, *, config: dict[str, Any], model: nn.Module,
                optimizer: torch.optim.Optimizer, schedule: LRSchedule, stopper: EarlyStopping,
                gens: dict[str, torch.Generator]) -> tuple[int, dict[str, Any]] | None:
    """Load the run saved in ``directory`` into the given objects; returns (next epoch, extra),
    or None when there is no checkpoint. A checkpoint made with other settings is refused."""
    state = load_checkpoint(directory)
    if state is None:
        return None
    theirs = state["config"]
    changed = sorted(k for k in set(config) | set(theirs) if config.get(k) != theirs.get(k))
    if changed:
        raise ValueError(f"checkpoint in {directory!r} was made with different settings "
                         f"{changed}; use another checkpoint_dir or the same settings")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    stopper.load_state_dict(state["stopper"])
    restore_rng(state["rng"], gens)
    return int(state["epoch"]) + 1, dict(state["extra"])
