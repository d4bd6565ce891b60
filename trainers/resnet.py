"""ResNet-18 with the CIFAR stem and a width multiplier.

The CIFAR stem replaces ImageNet's 7x7/2 convolution and max-pool with one 3x3/1 convolution,
so 32x32 inputs keep their resolution through the first stage (He et al., 2016, section 4.2).
torchvision's ResNet fixes BasicBlock widths at 64, so the width multiplier needs this
small re-implementation; the block layout ([2, 2, 2, 2], widths 64-128-256-512 at width 1.0)
is the same.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["resnet18_cifar"]


class _BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class _ResNetCifar(nn.Module):
    def __init__(self, widths: list[int], blocks_per_stage: list[int], num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        in_channels = widths[0]
        for stage, (width, n_blocks) in enumerate(zip(widths, blocks_per_stage, strict=True)):
            for block in range(n_blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                stages.append(_BasicBlock(in_channels, width, stride))
                in_channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        # Zero-init the last BN of each residual branch: every block starts as the identity,
        # which makes the high learning rates of the round-2 space trainable from step one.
        for module in self.modules():
            if isinstance(module, _BasicBlock):
                nn.init.zeros_(module.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def resnet18_cifar(*, num_classes: int = 10, width: float = 1.0) -> nn.Module:
    """ResNet-18 for 32x32 inputs; ``width`` scales every stage's channel count."""
    if width <= 0:
        raise ValueError(f"width must be > 0, got {width}")
    widths = [max(1, round(base * width)) for base in (64, 128, 256, 512)]
    return _ResNetCifar(widths, [2, 2, 2, 2], num_classes)
