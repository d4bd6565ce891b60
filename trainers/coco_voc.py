"""COCO instance annotations as 21-class VOC semantic masks.

The conversion follows torchvision's segmentation references: only the 20 COCO categories that
are VOC classes are kept and remapped to VOC indices 1..20 (everything else is background 0);
each instance's polygons or RLE become a binary mask; a pixel takes its instance's class, and
a pixel covered by more than one kept instance is set to the ignore index 255. Training splits
drop images whose kept instances cover 1,000 pixels or less (``min_area``), as the references do.

Masks come from pycocotools, the official COCO API, as in torchvision's segmentation
reference: polygons are rasterised and RLE (compressed, or uncompressed with ``counts`` a list of
run lengths) decoded by it, so a mask here is pixel for pixel the one ``COCO.annToMask`` gives.
The class mapping, the overlap rule and the error messages are ours.
"""

from __future__ import annotations

import json
import warnings
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
    """A COCO RLE (compressed or not) as a bool mask [h, w], decoded by pycocotools."""
    from pycocotools import mask as coco_mask

    height, width = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed: pycocotools would not check the total
        if sum(int(c) for c in counts) != height * width:
            raise ValueError(f"RLE runs cover {sum(counts)} pixels but its size is "
                             f"{height}x{width}")
        compressed = coco_mask.frPyObjects(
            {"size": [height, width], "counts": [int(c) for c in counts]}, height, width)
    else:
        text = counts.encode() if isinstance(counts, str) else bytes(counts)
        compressed = {"size": [height, width], "counts": text}
    return _decode(compressed)


def encode_rle(mask: torch.Tensor) -> dict[str, Any]:
    """A bool mask [h, w] as a compressed COCO RLE (``counts`` a str, as JSON files hold it)."""
    import numpy as np
    from pycocotools import mask as coco_mask

    rle = coco_mask.encode(np.asfortranarray(mask.numpy().astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def instance_mask(segmentation: Any, height: int, width: int) -> torch.Tensor:
    """One annotation's ``segmentation`` (polygons, RLE) as a bool mask [height, width].

    As pycocotools' ``COCO.annToMask``: an object's polygons are rasterised and merged into one
    mask; RLE is decoded. A polygon of fewer than three points covers nothing.
    """
    from pycocotools import mask as coco_mask

    if isinstance(segmentation, dict):
        counts = segmentation.get("counts")
        size = segmentation.get("size")
        if counts is None or size is None:
            raise ValueError(f"RLE segmentation needs 'counts' and 'size', got "
                             f"{sorted(segmentation)}")
        if [int(v) for v in size] != [height, width]:
            raise ValueError(f"RLE size {list(size)} differs from the image's {height}x{width}")
        return decode_rle(segmentation)
    # pycocotools reads a 4-number list as a box, so shorter polygons are dropped first.
    polygons = [[float(v) for v in polygon] for polygon in segmentation if len(polygon) >= 6]
    if not polygons:
        return torch.zeros(height, width, dtype=torch.bool)
    merged = coco_mask.merge(coco_mask.frPyObjects(polygons, height, width))
    return _decode(merged)


def _decode(rle: dict[str, Any]) -> torch.Tensor:
    from pycocotools import mask as coco_mask

    with warnings.catch_warnings():
        # pycocotools 2.0.11's RLE object predates NumPy 2's __array__(copy=...) and says so on
        # every decode; the result is right, so that one notice is silenced here.
        warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept",
                                category=DeprecationWarning)
        decoded = coco_mask.decode(rle)
    return torch.from_numpy(decoded.astype(bool)).contiguous()


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
