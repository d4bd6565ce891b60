from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from trainers.data import load_image_folder, random_crop_flip, stratified_split, synthetic_cifar


def test_synthetic_set_is_seeded_balanced_and_cifar_shaped() -> None:
    a = synthetic_cifar(200, seed=3)
    b = synthetic_cifar(200, seed=3)
    assert a.images.shape == (200, 3, 32, 32) and a.images.dtype == torch.uint8
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert torch.bincount(a.labels).tolist() == [20] * 10
    assert not torch.equal(a.images, synthetic_cifar(200, seed=4).images)


def test_stratified_split_is_disjoint_balanced_and_seeded() -> None:
    labels = torch.arange(1000) % 10
    train, val = stratified_split(labels, val_size=100, seed=0)
    assert len(train) == 900 and len(val) == 100
    assert not set(train.tolist()) & set(val.tolist())
    assert torch.bincount(labels[val]).tolist() == [10] * 10
    _, again_val = stratified_split(labels, val_size=100, seed=0)
    assert torch.equal(val, again_val)
    _, other_val = stratified_split(labels, val_size=100, seed=1)
    assert not torch.equal(val, other_val)


def test_stratified_split_rejects_a_split_that_empties_a_class() -> None:
    with pytest.raises(ValueError, match="val_size"):
        stratified_split(torch.arange(20) % 10, val_size=20, seed=0)


def test_crop_flip_moves_pixels_but_keeps_shape_and_content() -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    gen = torch.Generator().manual_seed(0)
    y = random_crop_flip(x, padding=0, generator=gen)
    for i in range(2):  # with no padding only a flip can happen
        assert torch.equal(y[i], x[i]) or torch.equal(y[i], x[i].flip(2))
    z = random_crop_flip(x, padding=2, generator=gen)
    assert z.shape == x.shape
    # every non-zero value of a shifted crop comes from the original image
    assert set(z[z != 0].tolist()) <= set(x.flatten().tolist())


def _write_folder(root: Path, per_class: int = 3) -> None:
    for c, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        folder = root / f"class_{'abc'[c]}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (32, 32), colour).save(folder / f"{i}.png")


def test_image_folder_decodes_labels_in_sorted_class_order(tmp_path: Path) -> None:
    _write_folder(tmp_path / "data")
    data = load_image_folder(tmp_path / "data", cache_dir=tmp_path / "cache")
    assert data.classes == ("class_a", "class_b", "class_c")
    assert data.images.shape == (9, 3, 32, 32)
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert data.images[0, 0].float().mean() == 255 and data.images[0, 1].float().mean() == 0


def test_tar_archive_is_decoded_once_then_served_from_the_cache(tmp_path: Path) -> None:
    _write_folder(tmp_path / "src")
    archive = tmp_path / "train.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src", arcname="train")
    first = load_image_folder(archive, cache_dir=tmp_path / "cache")
    cached = list((tmp_path / "cache").iterdir())
    assert len(cached) == 1
    # A second load must not decode: make decoding impossible and load again.
    os.utime(cached[0])
    from trainers import data as data_module

    original = data_module._decode
    data_module._decode = None  # type: ignore[assignment]
    try:
        second = load_image_folder(archive, cache_dir=tmp_path / "cache")
    finally:
        data_module._decode = original
    assert torch.equal(first.images, second.images) and first.classes == second.classes
    # A changed archive is a new cache entry.
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "class_a", arcname="train/class_a")
        tar.add(tmp_path / "src" / "class_b", arcname="train/class_b")
    os.utime(archive, ns=(1, 1))
    assert len(load_image_folder(archive, cache_dir=tmp_path / "cache").classes) == 2
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_wrong_image_size_names_the_file(tmp_path: Path) -> None:
    _write_folder(tmp_path / "data")
    buf = io.BytesIO()
    Image.new("RGB", (64, 48)).save(buf, format="PNG")
    (tmp_path / "data" / "class_a" / "big.png").write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match=r"big\.png.*64x48"):
        load_image_folder(tmp_path / "data", cache_dir=tmp_path / "cache")


def test_missing_source_says_what_to_give(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "nope.tar.gz", cache_dir=tmp_path / "cache")


def test_archive_without_class_folders_is_refused(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.new("RGB", (32, 32)).save(flat / "a.png")
    archive = tmp_path / "flat.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(flat / "a.png", arcname="a.png")
    with pytest.raises(ValueError, match=r"0 class folder\(s\)"):
        load_image_folder(archive, cache_dir=tmp_path / "cache")
