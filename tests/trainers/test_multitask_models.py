from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainers.multitask_models import build_multitask_model


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a weight download was attempted")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "resnet18"])
def test_both_heads_shapes_without_any_download(name: str) -> None:
    model = build_multitask_model(name, num_classes=1000, seg_classes=21).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 80))
    assert set(out) == {"cls", "seg"}
    assert out["cls"].shape == (2, 1000)
    assert out["seg"].shape == (2, 21, 64, 80)
    with torch.no_grad():
        assert set(model(torch.randn(2, 3, 32, 32), tasks=("seg",))) == {"seg"}


def test_backbone_sizes_match_the_documents() -> None:
    def count(name: str) -> float:
        model = build_multitask_model(name, num_classes=1000, seg_classes=21)
        return sum(p.numel() for p in model.parameters()) / 1e6

    # torchvision's classifiers alone: MobileNetV3-Large 5.5M, ResNet-18 11.7M parameters.
    assert 5.5 < count("mobilenet_v3_large") < 6.5
    assert 11.7 < count("resnet18") < 13.5


def test_local_weights_load_into_the_backbone(tmp_path: Path) -> None:
    from torchvision.models import resnet18

    source = resnet18(weights=None, num_classes=1000)
    path = tmp_path / "r18.pth"
    torch.save(source.state_dict(), path)
    model = build_multitask_model("resnet18", num_classes=10, seg_classes=21,
                                  weights_path=str(path))
    assert torch.equal(model.stem[0].weight, source.conv1.weight)
    assert torch.equal(model.body[1][0].conv1.weight, source.layer4[0].conv1.weight)
    assert model.cls_head[2].weight.shape == (10, 512)  # the 1000-class fc was skipped


def test_weights_of_another_model_are_refused(tmp_path: Path) -> None:
    from torchvision.models import resnet18

    path = tmp_path / "r18.pth"
    torch.save(resnet18(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match=r"lacks .* backbone tensors"):
        build_multitask_model("mobilenet_v3_large", num_classes=1000, seg_classes=21,
                              weights_path=str(path))
    with pytest.raises(FileNotFoundError, match=r"weights file .* does not exist"):
        build_multitask_model("resnet18", num_classes=1000, seg_classes=21,
                              weights_path=str(tmp_path / "missing.pth"))


def test_unknown_model_is_named() -> None:
    with pytest.raises(ValueError, match="unknown model 'vgg16'"):
        build_multitask_model("vgg16", num_classes=10, seg_classes=21)
