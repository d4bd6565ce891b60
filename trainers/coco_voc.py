"""COCO instance annotations as 21-class VOC semantic masks, without pycocotools.

The conversion follows torchvision's segmentation references: only the 20 COCO categories that
are VOC classes are kept and remapped to VOC indices 1..20 (everything else is background 0);
each instance's polygons or RLE become a binary mask; a pixel takes its instance's class, and
a pixel covered by more than one kept instance is set to the ignore index 255. Training splits
drop images whose kept instances cover 1,000 pixels or less (``min_area``), as the references do.

RLE: both forms COCO uses are decoded here: uncompressed (``counts`` a list of run lengths) and
compressed (``counts`` a string in COCO's 6-bit, delta-coded variable-length encoding). Runs are
column-major and start with a run of zeros. Polygons are filled with PIL (torchvision's own
dependency); its rasterisation can differ from pycocotools' by a pixel along edges.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "COCO_TO_VOC",
    "IGNORE_INDEX",
    "VOC_CLASSES",
    "CocoImage",
    "decode_rle",
    "encode_rle",
    "instance_mask",
    "read_coco",
    "semantic_mask",
]

IGNORE_INDEX = 255
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car",
               "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor")
# COCO category id of each VOC class, in VOC order (index 0, background, has none).
_COCO_IDS = (0, 5, 2, 16, 9, 44, 6, 3, 17, 62, 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72)
COCO_TO_VOC: dict[int, int] = {coco: voc for voc, coco in enumerate(_COCO_IDS) if voc > 0}


@dataclass(frozen=True)
class CocoImage:
    file_name: str
    height: int
    width: int
    annotations: tuple[dict[str, Any], ...]  # kept (VOC-class) instances only


def read_coco(json_path: str | Path, *, min_area: float) -> list[CocoImage]:
    """Images of a COCO instances file with their VOC-class instances.

    Images whose kept instances' ``area`` sum to ``min_area`` or less are dropped (pass 0 to
    keep every image, as for validation). A file whose annotations carry no ``segmentation``
    is refused: it is a detection or keypoint file, not instances.
    """
    path = Path(json_path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); give a "
                         "COCO instances_*.json file") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise ValueError(f"{path}: expected a COCO file with 'images' and 'annotations' lists")
    by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in data["annotations"]:
        if "segmentation" not in ann or ann["segmentation"] in (None, [], {}):
            raise ValueError(f"{path}: annotation {ann.get('id', '?')} (image "
                             f"{ann.get('image_id', '?')}) has no 'segmentation'; give a COCO "
                             "instances file with polygons or RLE, not a detection/keypoint one")
        if ann.get("category_id") in COCO_TO_VOC:
            by_image.setdefault(int(ann["image_id"]), []).append(ann)
    images = []
    for img in data["images"]:
        anns = tuple(by_image.get(int(img["id"]), ()))
        if min_area > 0 and sum(float(a.get("area", 0.0)) for a in anns) <= min_area:
            continue
        images.append(CocoImage(str(img["file_name"]), int(img["height"]), int(img["width"]),
                                anns))
    return images


def decode_rle(rle: dict[str, Any]) -> torch.Tensor:
    """A COCO RLE (compressed or not) as a bool mask [h, w]."""
    height, width = (int(v) for v in rle["size"])
    counts = rle["counts"]
    runs = _counts_from_string(counts) if isinstance(counts, str | bytes) else list(counts)
    if sum(runs) != height * width:
        raise ValueError(f"RLE runs cover {sum(runs)} pixels but its size is {height}x{width}")
    values = torch.zeros(len(runs), dtype=torch.bool)
    values[1::2] = True
    flat = torch.repeat_interleave(values, torch.tensor(runs, dtype=torch.int64))
    return flat.view(width, height).t().contiguous()  # column-major


def encode_rle(mask: torch.Tensor) -> dict[str, Any]:
    """A bool mask [h, w] as a compressed COCO RLE (the inverse of ``decode_rle``)."""
    height, width = mask.shape
    flat = mask.t().reshape(-1).to(torch.int8)
    change = torch.nonzero(flat[1:] != flat[:-1]).flatten() + 1
    edges = [0, *change.tolist(), flat.numel()]
    runs = [b - a for a, b in itertools.pairwise(edges)]
    if flat.numel() and bool(flat[0]):
        runs = [0, *runs]  # runs start with zeros
    return {"size": [int(height), int(width)], "counts": _counts_to_string(runs)}


def _counts_from_string(text: str | bytes) -> list[int]:
    chars = text.encode() if isinstance(text, str) else text
    counts: list[int] = []
    pos = 0
    while pos < len(chars):
        value, shift, more = 0, 0, True
        while more:
            c = chars[pos] - 48
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            pos += 1
            shift += 5
            if not more and c & 0x10:
                value |= -1 << shift  # sign-extend
        if len(counts) > 2:
            value += counts[-2]  # runs after the second are stored as deltas
        counts.append(value)
    return counts


def _counts_to_string(runs: Sequence[int]) -> str:
    out = []
    for i, run in enumerate(runs):
        value = run - runs[i - 2] if i > 2 else run
        more = True
        while more:
            c = value & 0x1F
            value >>= 5
            more = not ((c & 0x10 == 0 and value == 0) or (c & 0x10 and value == -1))
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def instance_mask(segmentation: Any, height: int, width: int) -> torch.Tensor:
    """One annotation's ``segmentation`` (polygons, RLE) as a bool mask [height, width]."""
    if isinstance(segmentation, dict):
        counts = segmentation.get("counts")
        size = segmentation.get("size")
        if counts is None or size is None:
            raise ValueError(f"RLE segmentation needs 'counts' and 'size', got "
                             f"{sorted(segmentation)}")
        if [int(v) for v in size] != [height, width]:
            raise ValueError(f"RLE size {list(size)} differs from the image's {height}x{width}")
        return decode_rle(segmentation)
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon in segmentation:
        points = [(float(polygon[i]), float(polygon[i + 1])) for i in range(0, len(polygon) - 1, 2)]
        if len(points) >= 3:
            draw.polygon(points, fill=1, outline=1)
    return torch.frombuffer(bytearray(canvas.tobytes()), dtype=torch.uint8).view(
        height, width).bool()


def semantic_mask(image: CocoImage) -> torch.Tensor:
    """The VOC mask (uint8 [h, w], 0..20 and 255) of one COCO image's kept instances."""
    target = torch.zeros(image.height, image.width, dtype=torch.uint8)
    if not image.annotations:
        return target
    masks = torch.stack([instance_mask(a["segmentation"], image.height, image.width)
                         for a in image.annotations])
    classes = torch.tensor([COCO_TO_VOC[int(a["category_id"])] for a in image.annotations],
                           dtype=torch.uint8)
    target = (masks.to(torch.uint8) * classes.view(-1, 1, 1)).amax(dim=0)
    target[masks.sum(dim=0) > 1] = IGNORE_INDEX
    return target
