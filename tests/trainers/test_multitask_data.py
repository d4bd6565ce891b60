from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from trainers.multitask_data import (
    BatchSource,
    classification_splits,
    segmentation_splits,
)


def test_generated_coco_uses_polygons_and_both_rle_forms(formats: dict[str, Path]) -> None:
    data = json.loads((formats["coco"] / "annotations" / "instances_train2017.json").read_text())
    kinds = {("polygon" if isinstance(a["segmentation"], list) else
              "rle-string" if isinstance(a["segmentation"]["counts"], str) else "rle-list")
             for a in data["annotations"]}
    assert kinds == {"polygon", "rle-string", "rle-list"}
    assert any(a["category_id"] == 10 for a in data["annotations"])  # a non-VOC category
    assert (formats["coco"] / "train2017" / data["images"][0]["file_name"]).is_file()


def test_generated_voc_masks_are_palette_pngs(formats: dict[str, Path]) -> None:
    masks = sorted((formats["voc"] / "SegmentationClass").glob("*.png"))
    with Image.open(masks[0]) as img:
        assert img.mode == "P"
    ids = (formats["voc"] / "ImageSets" / "Segmentation" / "val.txt").read_text().split()
    assert len(ids) == 12


@pytest.mark.parametrize("kind", ["coco", "voc"])
def test_segmentation_sets_read_masks_with_voc_labels(formats: dict[str, Path], kind: str
                                                      ) -> None:
    train, val = segmentation_splits(str(formats[kind]), size=32, val_fraction=0.1, seed=0,
                                     min_area=1000)
    assert len(val) == 12 and len(train) > 10
    image, mask = train[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8
    assert mask.shape == (32, 32)
    labels = torch.unique(torch.stack([train[i][1] for i in range(len(train))]))
    assert labels.max() == 255 and set(labels.tolist()) - {255} <= set(range(21))
    assert len(set(labels.tolist()) - {0, 255}) >= 5  # several VOC classes occur


def test_coco_min_area_drops_small_training_images(formats: dict[str, Path]) -> None:
    everything, _ = segmentation_splits(str(formats["coco"]), size=32, val_fraction=0.1,
                                        seed=0, min_area=0)
    filtered, _ = segmentation_splits(str(formats["coco"]), size=32, val_fraction=0.1, seed=0,
                                      min_area=2000)
    assert len(filtered) < len(everything) == 40


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    shutil.copytree(src, dst)
    return dst


def test_mask_label_outside_voc_names_the_file(formats: dict[str, Path], tmp_path: Path
                                               ) -> None:
    root = _copy(formats["voc"], tmp_path)
    bad = sorted((root / "SegmentationClass").glob("*.png"))[0]
    with Image.open(bad) as img:
        pixels = bytearray(img.tobytes())
        size, palette = img.size, img.getpalette()
    pixels[0] = 30
    out = Image.frombytes("P", size, bytes(pixels))
    out.putpalette(palette)
    out.save(bad)
    train, _ = segmentation_splits(str(root), size=32, val_fraction=0.1, seed=0, min_area=0)
    index = next(i for i, item in enumerate(train.items) if item.mask == bad)
    with pytest.raises(ValueError, match=rf"mask {bad} holds labels \[30\]; VOC masks may only"):
        train[index]


def test_mask_size_mismatch_names_both_files(formats: dict[str, Path], tmp_path: Path) -> None:
    root = _copy(formats["voc"], tmp_path)
    mask_path = sorted((root / "SegmentationClass").glob("*.png"))[0]
    with Image.open(mask_path) as img:
        img.resize((50, 64)).save(mask_path)
    train, _ = segmentation_splits(str(root), size=32, val_fraction=0.1, seed=0, min_area=0)
    index = next(i for i, item in enumerate(train.items) if item.mask == mask_path)
    with pytest.raises(ValueError, match=rf"mask {mask_path} is 50x64 but image .*"
                                         rf"{mask_path.stem}.jpg is 64x64"):
        train[index]


def test_coco_image_size_disagreeing_with_json_names_both(formats: dict[str, Path],
                                                          tmp_path: Path) -> None:
    root = _copy(formats["coco"], tmp_path)
    train, _ = segmentation_splits(str(root), size=32, val_fraction=0.1, seed=0, min_area=0)
    image_path = train.items[0].image
    with Image.open(image_path) as img:
        img.resize((40, 40)).save(image_path)
    with pytest.raises(ValueError, match=rf"image {image_path} is 40x40 but .*"
                                         r"instances_train2017.json says 96x96"):
        train[0]


def test_classification_archive_matches_the_folder(formats: dict[str, Path],
                                                   tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    folder_train, folder_val = classification_splits(str(formats["classification"]), size=24,
                                                     cache_dir=cache, val_fraction=0.1, seed=0)
    flat = tmp_path / "set.tar.gz"
    with tarfile.open(flat, "w:gz") as tar:
        for split in ("train", "val"):
            tar.add(formats["classification"] / split, arcname=split)
    arch_train, arch_val = classification_splits(str(flat), size=24, cache_dir=cache,
                                                 val_fraction=0.1, seed=0)
    assert (len(arch_train), len(arch_val)) == (len(folder_train), len(folder_val)) == (400, 100)
    assert arch_train.classes == folder_train.classes
    assert torch.equal(arch_train[5][0], folder_train[5][0])
    assert arch_train[5][1] == folder_train[5][1]


def test_class_folders_without_val_split_get_a_stratified_one(formats: dict[str, Path]
                                                               ) -> None:
    train, val = classification_splits(str(formats["classification"] / "train"), size=24,
                                       cache_dir=Path("/nonexistent"), val_fraction=0.25,
                                       seed=0)
    assert len(val) == 100 and len(train) == 300
    assert sorted(set(val.labels)) == list(range(10))
    assert not set(train.files) & set(val.files)


def test_batches_depend_only_on_seed_and_step(formats: dict[str, Path]) -> None:
    train, _ = classification_splits(str(formats["classification"]), size=16,
                                     cache_dir=Path("/nonexistent"), val_fraction=0.1, seed=0)
    small = train.subset(range(40))
    preloaded = BatchSource(small, batch_size=8, seed=3, workers=0, preload="yes",
                            sample_bytes=768, pin_memory=False)
    streamed = BatchSource(small, batch_size=8, seed=3, workers=0, preload="no",
                           sample_bytes=768, pin_memory=False)
    assert preloaded.batches_per_pass == 5
    all_at_once = list(preloaded.batches(0, 12))
    later = list(streamed.batches(7, 5))  # a resumed run starting at step 7
    for (xa, ya), (xb, yb) in zip(all_at_once[7:], later, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    first_pass = torch.cat([y for _, y in all_at_once[:5]])
    assert sorted(first_pass.tolist()) == sorted(small.labels)  # each image once per pass
    with pytest.raises(ValueError, match="batch_size 64 is larger than the 40 training images"):
        BatchSource(small, batch_size=64, seed=0, workers=0, preload="yes", sample_bytes=768,
                    pin_memory=False)
