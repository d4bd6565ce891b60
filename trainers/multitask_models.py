"""One backbone, two heads: image classification and 21-class semantic segmentation.

Backbones are torchvision's MobileNetV3-Large and ResNet-18, built with ``weights=None`` (no
download, ever); a local weights file may be given. The classification head is the backbone's
own torchvision head with ``num_classes`` outputs. Segmentation heads:

- MobileNetV3-Large: LR-ASPP (Howard et al., "Searching for MobileNetV3"): the stride-32
  features (960 channels) go through a 1x1 conv gated by a global-pooling sigmoid branch,
  upsampled to the stride-8 features (40 channels); each branch has a 1x1 classifier and the
  two logits add up.
- ResNet-18: a light ASPP on layer4 (1x1, two dilated 3x3 and image pooling, 128 channels each,
  fused by a 1x1 conv), upsampled to layer2 (stride 8) where a 1x1 classifier of the skip
  features is added, FCN style.

Segmentation logits are upsampled to the input size. ``model(x)`` returns
``{"cls": [N, num_classes], "seg": [N, seg_classes, H, W]}``; ``model(x, tasks=("seg",))`` only
computes what is asked, which is how the trainer runs a classification batch and a
segmentation batch (different images) through the shared backbone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MODELS", "MultiTaskNet", "build_multitask_model"]

log = logging.getLogger(__name__)

MODELS = ("mobilenet_v3_large", "resnet18")
_HEAD_CHANNELS = 128


class _LRASPPHead(nn.Module):
    def __init__(self, low_channels: int, high_channels: int, num_classes: int) -> None:
        super().__init__()
        self.cbr = nn.Sequential(nn.Conv2d(high_channels, _HEAD_CHANNELS, 1, bias=False),
                                 nn.BatchNorm2d(_HEAD_CHANNELS), nn.ReLU(inplace=True))
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1),
                                  nn.Conv2d(high_channels, _HEAD_CHANNELS, 1), nn.Sigmoid())
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)
        self.high_classifier = nn.Conv2d(_HEAD_CHANNELS, num_classes, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        x = self.cbr(high) * self.gate(high)
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.low_classifier(low) + self.high_classifier(x)


class _LightASPPHead(nn.Module):
    def __init__(self, low_channels: int, high_channels: int, num_classes: int,
                 rates: Sequence[int] = (6, 12)) -> None:
        super().__init__()

        def cbr(cin: int, cout: int, k: int, dilation: int = 1) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, k, padding=dilation * (k // 2),
                                           dilation=dilation, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        c = _HEAD_CHANNELS
        self.branches = nn.ModuleList([cbr(high_channels, c, 1),
                                       *(cbr(high_channels, c, 3, r) for r in rates)])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(high_channels, c, 1),
                                  nn.ReLU(inplace=True))
        self.fuse = cbr(c * (len(rates) + 2), c, 1)
        self.high_classifier = nn.Conv2d(c, num_classes, 1)
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(high).expand(-1, -1, *high.shape[-2:])
        x = self.fuse(torch.cat([b(high) for b in self.branches] + [pooled], dim=1))
        x = F.interpolate(self.high_classifier(x), size=low.shape[-2:], mode="bilinear",
                          align_corners=False)
        return x + self.low_classifier(low)


class MultiTaskNet(nn.Module):
    def __init__(self, stem: nn.Module, body: nn.Module, cls_head: nn.Module,
                 seg_head: nn.Module) -> None:
        super().__init__()
        self.stem = stem  # input -> stride-8 features ("low")
        self.body = body  # stride 8 -> stride-32 features ("high")
        self.cls_head = cls_head
        self.seg_head = seg_head

    def forward(self, x: torch.Tensor, tasks: Sequence[str] = ("cls", "seg")
                ) -> dict[str, torch.Tensor]:
        low = self.stem(x)
        high = self.body(low)
        out: dict[str, torch.Tensor] = {}
        if "cls" in tasks:
            out["cls"] = self.cls_head(high)
        if "seg" in tasks:
            seg = self.seg_head(low, high)
            out["seg"] = F.interpolate(seg, size=x.shape[-2:], mode="bilinear",
                                       align_corners=False)
        return out


def build_multitask_model(name: str, *, num_classes: int, seg_classes: int,
                          weights_path: str | None = None) -> MultiTaskNet:
    """The named backbone with both heads; ``weights_path`` loads a local state dict."""
    from torchvision import models

    if name == "mobilenet_v3_large":
        mnv3 = models.mobilenet_v3_large(weights=None, num_classes=num_classes)
        _load_weights(mnv3, weights_path)
        features: Any = mnv3.features
        # Stride changes at features 2, 4, 7, 13; features[4] ends at stride 8 (40 channels).
        split = 5
        stem: nn.Module = nn.Sequential(*features[:split])
        body: nn.Module = nn.Sequential(*features[split:])
        cls_head: nn.Module = nn.Sequential(mnv3.avgpool, nn.Flatten(1), mnv3.classifier)
        seg_head: nn.Module = _LRASPPHead(features[split - 1].out_channels,
                                          features[-1].out_channels, seg_classes)
    elif name == "resnet18":
        r18 = models.resnet18(weights=None, num_classes=num_classes)
        _load_weights(r18, weights_path)
        stem = nn.Sequential(r18.conv1, r18.bn1, r18.relu, r18.maxpool, r18.layer1, r18.layer2)
        body = nn.Sequential(r18.layer3, r18.layer4)
        cls_head = nn.Sequential(r18.avgpool, nn.Flatten(1), r18.fc)
        seg_head = _LightASPPHead(128, 512, seg_classes)
    else:
        raise ValueError(f"unknown model {name!r}; expected one of {list(MODELS)}")
    return MultiTaskNet(stem, body, cls_head, seg_head)


def _load_weights(model: nn.Module, weights_path: str | None) -> None:
    """Load a torchvision-format state dict; head tensors whose shape differs (another class
    count) are skipped with a log line, and every backbone tensor must be present."""
    if weights_path is None:
        return
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist; give a local "
                                "torchvision state dict (.pth) or leave weights_path unset")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"cannot read weights file {str(path)!r}: {exc}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(k for k in state if k in own and own[k].shape != state[k].shape)
    missing = sorted(k for k in own if k not in usable and not _is_head(k))
    if missing:
        raise ValueError(f"weights file {str(path)!r} lacks {len(missing)} backbone tensors "
                         f"(first: {missing[:3]}); is it a state dict of this model?")
    if skipped:
        log.info("weights %s: skipped %s (shape differs: another class count)", path, skipped)
    model.load_state_dict(usable, strict=False)


def _is_head(key: str) -> bool:
    return key.startswith(("classifier.", "fc."))
