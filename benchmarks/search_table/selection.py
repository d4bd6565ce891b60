"""The recording's data: a class-stratified pool and a disjoint holdout drawn from a source split.

The source is an image folder (``<root>/<class>/<image>``, at any depth) or a .tar/.tar.gz of
one, such as ../shared/data/cifar10-jpeg/train.tar.gz. Per class (sorted names), a seeded shuffle
puts the first ``pool_size / classes`` images in the pool and the next ``holdout_size / classes``
in the holdout; their bytes are copied unchanged into two image folders under the work directory,
built once (atomically, so two shard processes may start together) and reused while the source,
seed and sizes stay the same. The trainer splits its validation set off the pool; the holdout is
only ever evaluated once per run, at the end.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = ["DataSelection", "select_data"]

log = logging.getLogger(__name__)

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")
_INFO = "selection.json"


@dataclass(frozen=True)
class DataSelection:
    root: Path
    info: Mapping[str, Any]  # source, hashes, seed, sizes, classes, the selected file names

    @property
    def pool_dir(self) -> Path:
        return self.root / "pool"

    @property
    def holdout_dir(self) -> Path:
        return self.root / "holdout"

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.info["classes"])

    @property
    def selection_id(self) -> str:
        return str(self.info["selection_id"])


def select_data(source: Path, *, pool_size: int, holdout_size: int, seed: int,
                work_dir: Path) -> DataSelection:
    """The pool and holdout folders for ``source``, building them on first use."""
    source = source.expanduser().resolve()
    if not source.exists():
        raise FileNotFoundError(f"data source {str(source)!r} does not exist; give --source an "
                                "image folder or a .tar/.tar.gz of one")
    digests = _source_digests(source)
    selection_id = hashlib.sha256(
        f"{digests['sha256']}|{pool_size}|{holdout_size}|{seed}".encode()).hexdigest()[:16]
    root = work_dir.expanduser().resolve() / f"selection-{selection_id}"
    if not (root / _INFO).exists():
        _build(source, root, digests=digests, pool_size=pool_size, holdout_size=holdout_size,
               seed=seed, selection_id=selection_id)
    info = json.loads((root / _INFO).read_text())
    return DataSelection(root=root, info=MappingProxyType(info))


def _build(source: Path, root: Path, *, digests: Mapping[str, str], pool_size: int,
           holdout_size: int, seed: int, selection_id: str) -> None:
    by_class: dict[str, dict[str, bytes]] = {}
    for name, payload in _members(source):
        parts = Path(name).parts
        if len(parts) >= 2:
            by_class.setdefault(parts[-2], {})[name] = payload
    classes = sorted(by_class)
    if len(classes) < 2:
        raise ValueError(f"{str(source)!r} holds images in {len(classes)} class folder(s); "
                         "it needs <root>/<class>/<image> with at least two classes")
    rng = random.Random(seed)
    pool: dict[str, list[str]] = {}
    holdout: dict[str, list[str]] = {}
    pool_quota = _quotas(pool_size, len(classes))
    holdout_quota = _quotas(holdout_size, len(classes))
    for c, pq, hq in zip(classes, pool_quota, holdout_quota, strict=True):
        names = sorted(by_class[c])
        if pq + hq > len(names):
            raise ValueError(f"class {c!r} of {str(source)!r} has {len(names)} images, fewer "
                             f"than the {pq} pool + {hq} holdout images it must give; use a "
                             "smaller --pool-size or --holdout-size")
        rng.shuffle(names)
        pool[c], holdout[c] = sorted(names[:pq]), sorted(names[pq : pq + hq])
    tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for part, chosen in (("pool", pool), ("holdout", holdout)):
        for c, names in chosen.items():
            folder = tmp / part / c
            folder.mkdir(parents=True, exist_ok=True)
            if len({Path(n).name for n in names}) != len(names):
                raise ValueError(f"class {c!r} of {str(source)!r} repeats an image file name "
                                 "in different folders; give a source with unique names")
            for name in names:
                (folder / Path(name).name).write_bytes(by_class[c][name])
    pool_files = [n for c in classes for n in pool[c]]
    holdout_files = [n for c in classes for n in holdout[c]]
    info = {
        "selection_id": selection_id, "source": str(source), "source_sha256": digests["sha256"],
        "source_md5": digests["md5"], "seed": seed, "classes": classes,
        "pool_size": len(pool_files), "holdout_size": len(holdout_files),
        "pool_files_sha256": _names_digest(pool_files),
        "holdout_files_sha256": _names_digest(holdout_files),
        "pool_files": pool_files, "holdout_files": holdout_files,
    }
    (tmp / _INFO).write_text(json.dumps(info, indent=1) + "\n")
    try:
        os.rename(tmp, root)  # atomic; a second process building the same selection loses
    except OSError:
        if not (root / _INFO).exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("selected %d pool and %d holdout images from %s into %s", len(pool_files),
             len(holdout_files), source, root)


def _quotas(total: int, n_classes: int) -> list[int]:
    base, extra = divmod(total, n_classes)
    return [base + (1 if i < extra else 0) for i in range(n_classes)]


def _names_digest(names: list[str]) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def _source_digests(source: Path) -> dict[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    if source.is_file():
        with source.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                sha.update(chunk)
                md5.update(chunk)
    else:
        for name, payload in _members(source):
            for h in (sha, md5):
                h.update(name.encode() + b"\0" + payload)
    return {"sha256": sha.hexdigest(), "md5": md5.hexdigest()}


def _members(source: Path) -> Iterator[tuple[str, bytes]]:
    if source.is_dir():
        for file in sorted(source.rglob("*")):
            if file.is_file() and file.suffix.lower() in _IMAGE_SUFFIXES:
                yield file.relative_to(source).as_posix(), file.read_bytes()
        return
    with tarfile.open(source) as tar:
        for member in tar:
            if member.isfile() and Path(member.name).suffix.lower() in _IMAGE_SUFFIXES:
                handle = tar.extractfile(member)
                if handle is not None:
                    yield member.name, handle.read()
