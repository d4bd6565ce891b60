"""What the command groups share: the ``--storage`` option, ``--set`` values, the line
printers and the Pareto front."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from search.errors import SpecError
from trainers.runtime import machine_cores

__all__ = ["check_output_dir", "check_port", "line_printers", "machine_cores", "parse_overrides",
           "print_pareto", "storage_parent"]

_STORAGE_HELP = "database URL (default: $HPSEARCH_STORAGE, else sqlite:///hpsearch.db)"


def storage_parent(*, grpc: bool = False) -> argparse.ArgumentParser:
    """The ``--storage`` option every command that reads or writes a study takes (``grpc``:
    a gRPC storage proxy is accepted too, for workers)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--storage", help=_STORAGE_HELP + (
        "; or grpc://HOST:PORT, a gRPC proxy started by hpsearch proxy" if grpc else ""))
    return parent


def parse_overrides(items: Sequence[str], config_cls: type | None = None) -> dict[str, Any]:
    """``--set KEY=VALUE`` items as a dict. With the trainer's ``config_cls`` each value takes
    the type of the field it names (``amp=off`` stays 'off', ``weight_decay=5e-4`` is a float,
    ``milestones=[3,6]`` a tuple of ints); a value that is not of that type is refused naming
    the field and the type. A key that is no field is left for the spec's check to name."""
    from search.study.field_types import field_types

    types = field_types(config_cls) if config_cls is not None else {}
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SpecError(f"--set {item!r} is not KEY=VALUE; e.g. --set dataset=train.tar.gz")
        field = types.get(key)
        if field is None:
            try:
                out[key] = yaml.safe_load(value)
            except yaml.YAMLError:
                out[key] = value
            continue
        try:
            out[key] = field.from_text(value)
        except ValueError:
            raise SpecError(f"--set {item}: {key} takes {field.describe()}; e.g. --set "
                            f"{key}={field.example()}") from None
    return out


def check_output_dir(flag: str, value: str) -> Path:
    """``value`` as a directory a command may write into (created when missing): refused, in
    one line, when it or a folder above it is a file, or when it cannot be written."""
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise SpecError(f"{flag} {value}: that is a file, not a directory; name a directory "
                        "(created when missing)")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SpecError(f"{flag} {value}: {existing} is a file, so no directory can be made "
                        "there; name a directory elsewhere")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SpecError(f"{flag} {value}: {existing} is not writable by this user; name a "
                        "directory you can write")
    return path


def check_port(flag: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise SpecError(f"{flag} {port} is not a TCP port; give one from 1 to 65535, e.g. "
                        f"{flag} 8080")


def print_pareto(study: Any, metrics: Sequence[str]) -> None:
    front = sorted(study.best_trials, key=lambda t: t.number)
    if not front:
        print("no completed trial yet: no Pareto front")
        return
    print(f"Pareto front ({len(front)} trials; none is better on every metric):")
    for t in front:
        values = " ".join(f"{m}={v:.4f}" for m, v in zip(metrics, t.values, strict=True))
        print(f"  trial {t.number}: {values}  " + " ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items()))


def line_printers() -> tuple[Any, Any]:
    """On a terminal the progress line is redrawn in place under the lasting lines; anywhere
    else (a log file, CI) every line is plain text."""
    if not sys.stdout.isatty():
        def plain(line: str) -> None:
            if line:
                print(line, flush=True)
        return plain, plain

    def lasting(line: str) -> None:
        sys.stdout.write("\r\x1b[K" + (line + "\n" if line else ""))
        sys.stdout.flush()

    def status(line: str) -> None:
        sys.stdout.write("\r\x1b[K" + line[: _terminal_width() - 1])
        sys.stdout.flush()

    return lasting, status


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size((100, 20)).columns
