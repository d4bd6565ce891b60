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

__all__ = ["CHECKPOINT_NAME", "load_checkpoint", "save_checkpoint"]

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
