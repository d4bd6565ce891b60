"""Training checkpoints: plain state dicts and tensors only, loaded with ``weights_only=True``.

A checkpoint holds the model, optimizer, LR schedule, early-stopping state, the best epoch's
metrics, every random generator the loop draws from, the epoch, and the config it was made with
(a resume under a different config is refused). Writes are atomic (temp file + rename), so a run
killed mid-write leaves the previous checkpoint intact, and carry a checksum
(trainers/checkpoint_file.py): a checkpoint that cannot be read whole (truncated, damaged) is set
aside as ``last.pt.corrupt-<time>`` with a warning, and the run starts from scratch instead of
failing.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainers.checkpoint_file import CorruptCheckpoint, read_verified, set_aside, write_verified
from trainers.early_stopping import EarlyStopping
from trainers.runtime import restore_rng, rng_state
from trainers.schedules import LRSchedule

__all__ = ["CHECKPOINT_NAME", "checkpoint_problem", "load_checkpoint", "restore_run",
           "save_checkpoint", "save_run"]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "last.pt"

# What torch.load raises on a file that is not a whole checkpoint.
_UNREADABLE = (CorruptCheckpoint, RuntimeError, EOFError, pickle.UnpicklingError,
               zipfile.BadZipFile, ValueError, KeyError)


def save_checkpoint(directory: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    path = Path(directory).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    target = path / CHECKPOINT_NAME
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_verified(target, buffer.getvalue())
    return target


def _read(target: Path) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(io.BytesIO(read_verified(target)), map_location="cpu",
                                       weights_only=True)
    if not isinstance(state, dict):
        raise CorruptCheckpoint(f"checkpoint {str(target)!r} holds no state dict")
    return state


def checkpoint_problem(directory: str | os.PathLike[str]) -> str | None:
    """Why the checkpoint in ``directory`` cannot be resumed from, or None (whole, or none)."""
    target = Path(directory).expanduser() / CHECKPOINT_NAME
    if not target.exists():
        return None
    try:
        _read(target)
    except _UNREADABLE as exc:
        return _describe(target, exc)
    return None


def load_checkpoint(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The state saved in ``directory``; None when there is none, or when it cannot be read
    whole: then it is set aside (renamed ``last.pt.corrupt-<time>``) with a warning, and the
    caller starts from scratch."""
    target = Path(directory).expanduser() / CHECKPOINT_NAME
    if not target.exists():
        return None
    try:
        return _read(target)
    except _UNREADABLE as exc:
        moved = set_aside(target)
        log.warning("%s; set aside as %s, starting from scratch", _describe(target, exc), moved)
        return None


def _describe(target: Path, exc: BaseException) -> str:
    if isinstance(exc, CorruptCheckpoint):
        return str(exc)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"checkpoint {str(target)!r} cannot be read ({first[:200]})"


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
