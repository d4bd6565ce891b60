"""Segmentation metrics from one global confusion matrix, as torchvision's references compute
them: pixels are accumulated over the whole validation set (not averaged per image), pixels
labelled with the ignore index are left out, and mIoU is the mean over classes of
``TP / (TP + FP + FN)``. A class that neither occurs nor is predicted has no IoU (0/0) and is
left out of the mean, rather than turning it into NaN or counting as a perfect 1.
"""

from __future__ import annotations

import torch

__all__ = ["ConfusionMatrix"]


class ConfusionMatrix:
    def __init__(self, num_classes: int, *, ignore_index: int = 255,
                 device: torch.device | str = "cpu") -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, target: torch.Tensor, prediction: torch.Tensor) -> None:
        """``target`` and ``prediction``: integer class maps of the same shape."""
        keep = target != self.ignore_index
        t = target[keep].to(torch.int64)
        p = prediction[keep].to(torch.int64)
        n = self.num_classes
        self.matrix += torch.bincount(t * n + p, minlength=n * n).view(n, n)

    def pixel_accuracy(self) -> float:
        total = self.matrix.sum()
        return float(self.matrix.diag().sum() / total) if total > 0 else 0.0

    def iou(self) -> torch.Tensor:
        m = self.matrix.double()
        union = m.sum(0) + m.sum(1) - m.diag()
        return torch.where(union > 0, m.diag() / union.clamp_min(1), torch.zeros_like(union))

    def mean_iou(self) -> float:
        present = (self.matrix.sum(0) + self.matrix.sum(1)) > 0
        return float(self.iou()[present].mean()) if present.any() else 0.0
