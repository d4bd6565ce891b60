"""Every module of search/, storage/ and trainers/ imports, and importing does nothing.

An import error inside a module that no test happens to import would otherwise show only when a
user runs the command that needs it. Importing must also stay free of side effects: no threads,
no child processes, no files (a worker, a CLI call or a test decides when those start).
The imports run in a fresh interpreter, so modules already imported by other tests cannot hide
anything, with the working directory and HOME in empty temporary directories.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Modules that are scripts, not libraries: importing them runs them by design.
NOT_IMPORTABLE = {
    "search.__main__": "``python -m search``: importing it runs the CLI",
    "storage.migrations.env": "an Alembic env script: it runs only inside an Alembic command",
}

_PROBE = r"""
import importlib, json, os, pkgutil, sys, threading

skip = set(json.loads(sys.argv[1]))

def native_threads():
    return len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 0

def children():
    path = f"/proc/{os.getpid()}/task/{os.getpid()}/children"
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return f.read().split()

# Third-party libraries may start their own threads when imported (torch starts one); measure
# against an interpreter that has them already, so what is counted is ours.
for library in ("numpy", "torch", "torchvision", "optuna", "sqlalchemy", "matplotlib", "yaml"):
    importlib.import_module(library)

threads_before = {t.name for t in threading.enumerate()}
native_before = native_threads()
names = []
failures = {}
for package_name in ("search", "storage", "trainers"):
    package = importlib.import_module(package_name)
    names.append(package_name)
    for info in pkgutil.walk_packages(package.__path__, prefix=package_name + "."):
        if info.name in skip:
            continue
        try:
            importlib.import_module(info.name)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures[info.name] = f"{type(exc).__name__}: {exc}"
        names.append(info.name)
print(json.dumps({
    "modules": names,
    "failures": failures,
    "new_threads": sorted({t.name for t in threading.enumerate()} - threads_before),
    "native_threads": [native_before, native_threads()],
    "children": children(),
}))
"""


def test_every_module_imports_without_side_effects(tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    home = tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "MPLCONFIGDIR": str(tmp_path / "mpl"),  # matplotlib's own font cache is not ours
    }
    env.pop("HPSEARCH_STORAGE", None)
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(sorted(NOT_IMPORTABLE))],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])

    assert not result["failures"], result["failures"]
    modules = set(result["modules"])
    for expected in ("search.api", "search.cli.main", "search.run.launch", "storage.grpc_proxy",
                     "trainers.cifar", "trainers.multitask"):
        assert expected in modules, f"{expected} was not found by pkgutil.walk_packages"
    assert not result["new_threads"], f"importing started threads: {result['new_threads']}"
    before, after = result["native_threads"]
    assert after <= before, f"importing started {after - before} native threads"
    assert not result["children"], f"importing started processes: {result['children']}"
    assert not list(cwd.iterdir()), f"importing wrote into the working directory: " \
        f"{sorted(p.name for p in cwd.iterdir())}"
    assert not list(home.iterdir()), f"importing wrote into HOME: " \
        f"{sorted(str(p.relative_to(home)) for p in home.rglob('*'))}"
