"""The package arrows go one way: trainers import none of optuna, ray, sqlalchemy; storage
does not import trainers; importing any package starts nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

_CHECK = """
import sys, threading
import {package}
forbidden = sorted(m for m in {forbidden!r} if m in sys.modules)
assert not forbidden, f"importing {package} pulled in {{forbidden}}"
assert threading.active_count() == 1, "importing {package} started a thread"
"""


@pytest.mark.parametrize(("package", "forbidden"), [
    ("trainers", ["optuna", "ray", "sqlalchemy", "search", "storage"]),
    ("storage", ["trainers", "ray", "torch"]),
    ("search", ["ray", "torch", "trainers"]),
])
def test_import_pulls_in_nothing_forbidden(package: str, forbidden: list[str]) -> None:
    code = _CHECK.format(package=package, forbidden=forbidden)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
