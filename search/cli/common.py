"""What the command groups share: the ``--storage`` option, ``--set`` values, the line
printers and the Pareto front."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import yaml

from search.errors import SpecError

__all__ = ["line_printers", "parse_overrides", "print_pareto", "storage_parent"]

_STORAGE_HELP = "database URL (default: $HPSEARCH_STORAGE, else sqlite:///hpsearch.db)"


def storage_parent(*, grpc: bool = False) -> argparse.ArgumentParser:
    """The ``--storage`` option every command that reads or writes a study takes (``grpc``:
    a gRPC storage proxy is accepted too, for workers)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--storage", help=_STORAGE_HELP + (
        "; or grpc://HOST:PORT, a gRPC proxy started by hpsearch proxy" if grpc else ""))
    return parent


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError(f"--set {item!r} is not KEY=VALUE; e.g. --set dataset=train.tar.gz")
        out[key.strip()] = yaml.safe_load(value)
    return out


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
