"""Fixtures for the multi-task trainer: tiny data sets in the real formats, written once."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainers.synthetic_formats import write_all


@pytest.fixture(scope="session")
def formats(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``classification`` (ImageNet layout, 10 classes), ``coco`` and ``voc`` roots."""
    return write_all(tmp_path_factory.mktemp("formats"))
