"""The names data sets are known by in the tuned-defaults table (standard library only).

A path names its data set by its last component (without an archive suffix); anything that
looks like CIFAR-10 is ``cifar10``. Trainers use these in their ``SEARCH.dataset_key``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["dataset_key", "multitask_dataset_key"]


def dataset_key(dataset: str) -> str:
    """The name a data source is known by in the tuned-defaults table."""
    if dataset in ("synthetic", "cifar10"):
        return dataset
    path = Path(dataset)
    if "cifar10" in str(path).lower().replace("-", "").replace("_", ""):
        return "cifar10"
    name = path.name
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def multitask_dataset_key(cls_dataset: str, seg_dataset: str) -> str:
    """``<classification>+<segmentation>``; an ImageNet-named tree is ``imagenet1k`` and a
    COCO-named root ``coco-voc21`` (the VOC classes of COCO), matching the documented rows."""
    cls_key = dataset_key(cls_dataset)
    if "imagenet" in cls_key.lower() and cls_key != "synthetic":
        cls_key = "imagenet1k"
    seg_key = seg_dataset if seg_dataset.startswith("synthetic") else dataset_key(seg_dataset)
    if "coco" in seg_key.lower() and not seg_key.startswith("synthetic"):
        seg_key = "coco-voc21"
    return f"{cls_key}+{seg_key}"
