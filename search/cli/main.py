"""The ``hpsearch`` command. Known errors become one line on stderr and exit code 2;
``--debug`` shows the traceback instead.

Each command group has its module: study_commands.py (launch, worker, proxy, status, studies),
report_commands.py (report, dashboard), db_commands.py (db), tuning_commands.py (train,
defaults, export, registry); common.py holds what they share (the ``--storage`` option).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

__all__ = ["main"]

_EXIT_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    import optuna

    from search.errors import HpsearchError
    from storage import StorageError

    optuna.logging.set_verbosity(optuna.logging.DEBUG if args.debug else optuna.logging.WARNING)
    try:
        return int(args.func(args))
    except (HpsearchError, StorageError) as exc:
        if args.debug:
            raise
        print(f"hpsearch: error: {exc}", file=sys.stderr)
        return _EXIT_ERROR
    except KeyboardInterrupt:
        print("hpsearch: interrupted; running trials were marked FAIL", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `hpsearch status X | head`: the reader left, not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _parser() -> argparse.ArgumentParser:
    from search.cli import db_commands, report_commands, study_commands, tuning_commands

    parser = argparse.ArgumentParser(prog="hpsearch", description="Hyperparameter search for "
                                     "PyTorch vision training on Optuna.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True)
    study_commands.add_commands(sub)
    report_commands.add_commands(sub)
    db_commands.add_commands(sub)
    tuning_commands.add_commands(sub)
    return parser
