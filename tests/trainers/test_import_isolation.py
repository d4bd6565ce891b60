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


_EACH = """
import importlib, sys
forbidden = ("optuna", "ray", "sqlalchemy", "search", "storage")
for name in {modules!r}:
    importlib.import_module(name)
    pulled = sorted(m for m in forbidden if m in sys.modules)
    assert not pulled, f"importing {{name}} pulled in {{pulled}}"
"""


def _trainer_modules() -> list[str]:
    import pkgutil

    import trainers

    return sorted(f"trainers.{m.name}" for m in pkgutil.iter_modules(trainers.__path__))


def test_every_trainers_module_imports_nothing_of_the_search_side() -> None:
    """Module by module, in the order listed: the first one to pull a package in is named."""
    modules = _trainer_modules()
    assert {"trainers.cifar", "trainers.multitask", "trainers.contract"} <= set(modules)
    proc = subprocess.run([sys.executable, "-c", _EACH.format(modules=modules)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("module", ["trainers.contract", "trainers.dataset_keys"])
def test_the_contract_needs_no_torch(module: str) -> None:
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch was imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
