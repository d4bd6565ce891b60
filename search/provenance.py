"""Where a result came from: code version and library versions."""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path

__all__ = ["code_version", "library_versions"]

_LIBRARIES = ("hpsearch", "torch", "torchvision", "optuna", "sqlalchemy", "numpy")


@functools.cache
def code_version() -> str:
    """hpsearch's version, plus the git commit (and "-dirty") when run from a checkout."""
    version = _version("hpsearch") or "unknown"
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"],
                                capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+g{commit.stdout.strip()}"


@functools.cache
def library_versions() -> dict[str, str]:
    return {name: v for name in _LIBRARIES if (v := _version(name))}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
