from __future__ import annotations

import torch

from trainers.resnet import resnet18_cifar


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_full_width_matches_resnet18_cifar_size() -> None:
    # ResNet-18 with the CIFAR stem and 10 classes has about 11.17M parameters.
    assert 11_100_000 < _n_params(resnet18_cifar()) < 11_250_000


def test_width_multiplier_scales_channels_and_keeps_output_shape() -> None:
    narrow = resnet18_cifar(width=0.25, num_classes=7)
    assert _n_params(narrow) < _n_params(resnet18_cifar()) / 10
    out = narrow(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)


def test_cifar_stem_keeps_full_resolution() -> None:
    model = resnet18_cifar(width=0.125)
    stem_out = model.stem(torch.randn(1, 3, 32, 32))
    assert stem_out.shape[-2:] == (32, 32)  # 3x3 stride-1 conv, no max-pool
    conv = model.stem[0]
    assert conv.kernel_size == (3, 3) and conv.stride == (1, 1)
