"""Registry versions as files: written by ``hpsearch registry export``, read by
``hpsearch train --config FILE``. A file loads back into the identical trainer config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from search.errors import SpecError
from search.study.trainers import get_trainer
from storage.registry import RegistryVersion

__all__ = ["FORMATS", "load_config_file", "write_version_file"]

FORMATS = ("yaml", "json")


def write_version_file(version: RegistryVersion, out_dir: str | Path, fmt: str) -> Path:
    if fmt not in FORMATS:
        raise SpecError(f"unknown format {fmt!r}; expected one of {list(FORMATS)}")
    directory = Path(out_dir).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    target = (directory / f"{version.name}-v{version.version}.{fmt}").resolve()
    if target.parent != directory:  # names are validated; this guards the invariant anyway
        raise SpecError(f"refusing to write {target}: outside {directory}")
    data = version.to_dict()
    text = (yaml.safe_dump(data, sort_keys=False) if fmt == "yaml"
            else json.dumps(data, indent=2) + "\n")
    target.write_text(text)
    return target


def load_config_file(path: str | Path) -> tuple[str, Any, dict[str, Any]]:
    """(trainer name, trainer config, the whole document) from an exported file."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(f"config file {str(path)!r} does not exist") from None
    try:
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: not valid {path.suffix.lstrip('.') or 'YAML'}: "
                        f"{str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict) \
            or not isinstance(doc.get("trainer"), str):
        raise SpecError(f"{path}: expected a registry export with 'trainer' and a 'config' "
                        "mapping; write one with 'hpsearch registry export'")
    entry = get_trainer(doc["trainer"])
    try:
        cfg = entry.build_config(doc["config"])
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}; fix the file or export it again") from None
    return entry.name, cfg, doc
