"""``hpsearch db upgrade`` and ``hpsearch db current``: hpsearch's own tables."""

from __future__ import annotations

import argparse
from typing import Any

from search.cli.common import storage_parent

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    storage = storage_parent()
    db = sub.add_parser("db", help="hpsearch's own tables").add_subparsers(dest="db_command",
                                                                          required=True)
    p = db.add_parser("upgrade", parents=[storage],
                      help="create or migrate hpsearch's tables (never Optuna's)")
    p.set_defaults(func=_cmd_db_upgrade)
    p = db.add_parser("current", parents=[storage],
                      help="print the schema revision of hpsearch's tables")
    p.set_defaults(func=_cmd_db_current)


def _cmd_db_upgrade(args: argparse.Namespace) -> int:
    from storage import open_storage, upgrade

    storage = open_storage(args.storage)
    before, after = upgrade(storage)
    if before == after:
        print(f"{storage.redacted}: hpsearch tables already at revision {after}")
    else:
        print(f"{storage.redacted}: hpsearch tables upgraded from {before or 'empty'} to {after}")
    return 0


def _cmd_db_current(args: argparse.Namespace) -> int:
    from storage import current_revision, head_revision, open_storage

    storage = open_storage(args.storage)
    rev = current_revision(storage)
    print(f"{storage.redacted}: revision {rev or 'none'} (head {head_revision()})")
    return 0
