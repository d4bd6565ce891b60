"""Tiny synthetic data sets written in the real on-disk formats, for tests and demos.

- ``write_classification``: an ImageNet-layout tree ``root/{train,val}/<class>/*.jpg``; each
  class is a smooth colour pattern under noise, so a network has something to learn.
- ``write_coco``: ``root/annotations/instances_{train,val}2017.json`` with images in
  ``root/{train,val}2017/``; each image holds 1-3 filled shapes of VOC classes (COCO category
  ids), stored as polygons, compressed RLE and uncompressed RLE in turn, plus shapes of a
  non-VOC category (traffic light) that must become background; shapes may overlap.
- ``write_voc``: ``root/JPEGImages``, ``root/SegmentationClass`` (palette PNGs with VOC's colour
  map and a 255 border around each object, as VOC has) and ``root/ImageSets/Segmentation``.

A shape's class sets its colour, so segmentation is learnable too. Everything is seeded.
Run ``python -m trainers.synthetic_formats OUT_DIR`` to write all three under OUT_DIR.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from trainers.coco_voc import COCO_TO_VOC, IGNORE_INDEX, encode_rle

__all__ = ["write_all", "write_classification", "write_coco", "write_voc"]

_NON_VOC_CATEGORY = (10, "traffic light")
_COCO_NAMES = {1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus",
               7: "train", 9: "boat", 16: "bird", 17: "cat", 18: "dog", 19: "horse", 20: "sheep",
               21: "cow", 44: "bottle", 62: "chair", 63: "couch", 64: "potted plant",
               67: "dining table", 72: "tv"}


def write_classification(root: str | Path, *, classes: int = 10, train_per_class: int = 40,
                         val_per_class: int = 10, size: int = 48, seed: int = 0) -> Path:
    root = Path(root)
    protos = _smooth_patterns(classes, size, seed=1234)
    gen = torch.Generator().manual_seed(seed)
    for split, per_class in (("train", train_per_class), ("val", val_per_class)):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                shift = torch.randint(-size // 8, size // 8 + 1, (2,), generator=gen).tolist()
                x = torch.roll(protos[c], shifts=shift, dims=(1, 2))
                x = x * (0.6 + 0.8 * torch.rand(1, generator=gen))
                x = x + 0.6 * torch.randn(x.shape, generator=gen)
                _save_rgb(_to_uint8(x), folder / f"{split}_{c}_{i:05d}.jpg")
    return root


def write_coco(root: str | Path, *, train_images: int = 40, val_images: int = 12,
               size: int = 96, seed: int = 0) -> Path:
    root = Path(root)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    categories = [{"id": cid, "name": _COCO_NAMES[cid], "supercategory": "voc"}
                  for cid in sorted(COCO_TO_VOC)]
    categories.append({"id": _NON_VOC_CATEGORY[0], "name": _NON_VOC_CATEGORY[1],
                       "supercategory": "outdoor"})
    gen = torch.Generator().manual_seed(seed)
    ann_id = 1
    for split, count in (("train2017", train_images), ("val2017", val_images)):
        (root / split).mkdir(exist_ok=True)
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for n in range(count):
            image_id = n + 1
            shapes = _random_shapes(gen, size, non_voc=n % 4 == 3)
            image = _paint(shapes, size, gen)
            name = f"{image_id:012d}.jpg"
            _save_rgb(image, root / split / name)
            images.append({"id": image_id, "file_name": name, "height": size, "width": size})
            for cat, polygon, mask in shapes:
                ys, xs = torch.nonzero(mask, as_tuple=True)
                bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
                        int(ys.max() - ys.min() + 1)]
                kind = ann_id % 3
                if kind == 0:
                    seg: Any = [[round(v, 2) for xy in polygon for v in xy]]
                elif kind == 1:
                    seg = encode_rle(mask)
                else:
                    seg = _uncompressed_rle(mask)
                annotations.append({"id": ann_id, "image_id": image_id, "category_id": cat,
                                    "segmentation": seg, "area": float(mask.sum()),
                                    "bbox": bbox, "iscrowd": 0 if kind == 0 else 1})
                ann_id += 1
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(
            {"images": images, "annotations": annotations, "categories": categories}))
    return root


def write_voc(root: str | Path, *, train_images: int = 40, val_images: int = 12, size: int = 64,
              seed: int = 0) -> Path:
    from PIL import Image

    root = Path(root)
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed + 1)
    palette = _voc_palette()
    ids: dict[str, list[str]] = {"train": [], "val": []}
    for n in range(train_images + val_images):
        split = "train" if n < train_images else "val"
        name = f"2007_{n:06d}"
        shapes = _random_shapes(gen, size, non_voc=False)
        _save_rgb(_paint(shapes, size, gen), root / "JPEGImages" / f"{name}.jpg")
        mask = torch.zeros(size, size, dtype=torch.uint8)
        for cat, _polygon, shape_mask in shapes:
            border = _dilate(shape_mask) & ~shape_mask
            mask[border] = IGNORE_INDEX  # VOC outlines every object with 255
            mask[shape_mask] = COCO_TO_VOC[cat]
        png = Image.frombytes("P", (size, size), bytes(mask.flatten().tolist()))
        png.putpalette(palette)
        png.save(root / "SegmentationClass" / f"{name}.png")
        ids[split].append(name)
    for split, names in ids.items():
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


def write_all(root: str | Path, *, seed: int = 0) -> dict[str, Path]:
    root = Path(root)
    return {"classification": write_classification(root / "imagenet-tiny", seed=seed),
            "coco": write_coco(root / "coco-tiny", seed=seed),
            "voc": write_voc(root / "voc-tiny", seed=seed)}


# ---------------------------------------------------------------- drawing

_Shape = tuple[int, list[tuple[float, float]], torch.Tensor]  # COCO category, polygon, mask


def _random_shapes(gen: torch.Generator, size: int, *, non_voc: bool) -> list[_Shape]:
    from trainers.coco_voc import instance_mask

    cats = sorted(COCO_TO_VOC)
    count = int(torch.randint(1, 4, (1,), generator=gen))
    chosen = [cats[int(torch.randint(0, len(cats), (1,), generator=gen))] for _ in range(count)]
    if non_voc:
        chosen.append(_NON_VOC_CATEGORY[0])
    shapes = []
    for cat in chosen:
        cx, cy = (float(v) * size * 0.6 + size * 0.2 for v in torch.rand(2, generator=gen))
        radius = size * (0.18 + 0.14 * float(torch.rand(1, generator=gen)))
        sides = 10
        polygon = []
        for k in range(sides):
            angle = 2 * math.pi * k / sides
            r = radius * (0.75 + 0.25 * float(torch.rand(1, generator=gen)))
            polygon.append((min(size - 1.0, max(0.0, cx + r * math.cos(angle))),
                            min(size - 1.0, max(0.0, cy + r * math.sin(angle)))))
        mask = instance_mask([[v for xy in polygon for v in xy]], size, size)
        shapes.append((cat, polygon, mask))
    return shapes


def _paint(shapes: Sequence[_Shape], size: int, gen: torch.Generator) -> torch.Tensor:
    colours = _class_colours()
    image = 0.3 * torch.randn(3, size, size, generator=gen)
    for cat, _polygon, mask in shapes:
        colour = colours.get(cat, torch.tensor([0.0, 0.0, 0.0]))
        image = torch.where(mask, colour.view(3, 1, 1), image)
    image = image + 0.25 * torch.randn(image.shape, generator=gen)
    return _to_uint8(image)


def _class_colours() -> dict[int, torch.Tensor]:
    gen = torch.Generator().manual_seed(99)
    return {cat: torch.rand(3, generator=gen) * 3.0 - 1.5 for cat in sorted(COCO_TO_VOC)}


def _smooth_patterns(n: int, size: int, *, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    low = torch.randn(n, 3, 4, 4, generator=gen)
    return F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)


def _dilate(mask: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(mask.float()[None, None], 3, stride=1, padding=1)[0, 0].bool()


def _uncompressed_rle(mask: torch.Tensor) -> dict[str, Any]:
    flat = mask.t().reshape(-1).tolist()
    runs: list[int] = []
    current, length = False, 0
    for v in flat:
        if v == current:
            length += 1
        else:
            runs.append(length)
            current, length = v, 1
    runs.append(length)
    return {"size": list(mask.shape), "counts": runs}


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return (128 + 50 * x).round().clamp(0, 255).to(torch.uint8)


def _save_rgb(image: torch.Tensor, path: Path) -> None:
    from PIL import Image

    hwc = image.permute(1, 2, 0).contiguous()
    Image.frombytes("RGB", (hwc.shape[1], hwc.shape[0]), bytes(hwc.flatten().tolist())).save(
        path, quality=95)


def _voc_palette() -> list[int]:
    palette: list[int] = []
    for label in range(256):
        r = g = b = 0
        c = label
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette.extend((r, g, b))
    return palette


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainers.synthetic_formats",
                                     description="Write tiny synthetic data sets (ImageNet "
                                                 "layout, COCO instances, VOC) under OUT_DIR.")
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for kind, path in write_all(args.out_dir, seed=args.seed).items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
