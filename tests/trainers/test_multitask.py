from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from trainers.multitask import MODEL_LR, MultitaskConfig, StopReason, train
from trainers.reporter import RecordingReporter
from trainers.seg_metrics import ConfusionMatrix


def _tiny(formats: dict[str, Path], tmp_path: Path, **changes: object) -> MultitaskConfig:
    cfg = MultitaskConfig(model="resnet18", num_classes=10,
                          cls_dataset=str(formats["classification"]),
                          seg_dataset=str(formats["coco"]), cls_image_size=32,
                          seg_image_size=32, batch_size=8, epochs=2, steps_per_epoch=3,
                          val_limit=16, eval_batch_size=16, cache_dir=str(tmp_path / "cache"),
                          device="cpu", coco_min_area=500)
    return cfg.replace(**changes)


def test_reports_both_tasks_and_a_weighted_score(formats: dict[str, Path],
                                                 tmp_path: Path) -> None:
    reporter = RecordingReporter()
    result = train(_tiny(formats, tmp_path, score_seg_weight=0.25), reporter)
    assert [e for e, _ in reporter.history] == [1, 2]
    m = reporter.history[-1][1]
    for key in ("score", "val_acc", "val_top5_acc", "val_miou", "val_pixel_acc",
                "val_cls_loss", "val_seg_loss", "train_cls_loss", "train_seg_loss", "lr",
                "grad_norm", "epoch_seconds", "images_per_second"):
        assert key in m, key
    assert m["score"] == pytest.approx(0.75 * m["val_acc"] + 0.25 * m["val_miou"])
    assert result["stop_reason"] == StopReason.COMPLETED and result["epochs_run"] == 2
    assert result["best_score"] == max(m["score"] for _, m in reporter.history)
    assert m["lr"] == MODEL_LR["resnet18"]["adam"]


def test_learns_both_tasks(formats: dict[str, Path], tmp_path: Path) -> None:
    from trainers.multitask_data import segmentation_splits

    # Segmentation weighted 0.7: with equal weights this tiny run's mIoU sat within 1.3x of the
    # all-background model on some CPUs (numerics differ by machine); 0.7 clears it from
    # epoch 2 on (0.080, 0.065, 0.094 against 0.042, measured).
    cfg = _tiny(formats, tmp_path, epochs=4, steps_per_epoch=None, val_limit=None,
                seg_dataset=str(formats["voc"]), train_limit=120, seg_weight=0.7)
    result = train(cfg)
    assert result["best_val_acc"] > 0.3  # chance is 0.1
    # Segmentation against the model that calls every pixel background (mIoU ~0.04 here).
    _, val = segmentation_splits(cfg.seg_dataset, size=32, val_fraction=0.1, seed=0,
                                 min_area=0)
    background = ConfusionMatrix(21)
    for i in range(len(val)):
        background.update(val[i][1], torch.zeros_like(val[i][1]))
    assert result["best_val_miou"] > 1.3 * background.mean_iou()


def test_mtadamv2_takes_one_backward_per_task(formats: dict[str, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from trainers.mtadam import MTAdamV2

    calls: list[int] = []
    original = MTAdamV2.backward_and_step

    def spy(self: MTAdamV2, losses: list[torch.Tensor]) -> None:
        calls.append(len(losses))
        original(self, losses)

    monkeypatch.setattr(MTAdamV2, "backward_and_step", spy)
    result = train(_tiny(formats, tmp_path, optimizer="mtadamv2", seg_weight=0.3))
    assert calls == [2] * 6
    assert result["stop_reason"] == StopReason.COMPLETED
    assert result["last_train_seg_loss"] > 0


def test_reporter_stop_prunes(formats: dict[str, Path], tmp_path: Path) -> None:
    reporter = RecordingReporter(stop_after_epoch=1)
    result = train(_tiny(formats, tmp_path, epochs=3), reporter)
    assert result["stop_reason"] == StopReason.PRUNED and result["epochs_run"] == 1


def test_resume_equals_the_uninterrupted_run(formats: dict[str, Path], tmp_path: Path) -> None:
    straight = train(_tiny(formats, tmp_path, optimizer="mtadamv2"))
    ckpt = str(tmp_path / "ckpt")
    first = _tiny(formats, tmp_path, optimizer="mtadamv2", checkpoint_dir=ckpt)
    train(first, RecordingReporter(stop_after_epoch=1))
    resumed_reporter = RecordingReporter()
    resumed = train(first, resumed_reporter)
    assert [e for e, _ in resumed_reporter.history] == [2]
    assert (resumed["resumed_from_epoch"], straight["resumed_from_epoch"]) == (1, 0)
    for key in ("last_val_acc", "last_val_miou", "last_train_cls_loss", "last_train_seg_loss"):
        assert resumed[key] == pytest.approx(straight[key], rel=1e-5), key
    with pytest.raises(ValueError, match=r"different settings \['lr'\]"):
        train(first.replace(lr=0.1))


def test_learning_rate_defaults_follow_model_and_optimizer() -> None:
    lr = {(m, o): MultitaskConfig(model=m, optimizer=o).resolved().lr
          for m in ("mobilenet_v3_large", "resnet18")
          for o in ("sgd", "adam", "adagrad", "adadelta", "mtadamv2")}
    assert lr == {("mobilenet_v3_large", "sgd"): 0.01, ("mobilenet_v3_large", "adam"): 0.001,
                  ("mobilenet_v3_large", "adagrad"): 0.01,
                  ("mobilenet_v3_large", "adadelta"): 1.0,
                  ("mobilenet_v3_large", "mtadamv2"): 0.001,
                  ("resnet18", "sgd"): 0.01, ("resnet18", "adam"): 0.005,
                  ("resnet18", "adagrad"): 0.02, ("resnet18", "adadelta"): 1.0,
                  ("resnet18", "mtadamv2"): 0.005}
    adamw = MultitaskConfig(model="resnet18", optimizer="adamw").resolved()
    assert (adamw.lr, adamw.weight_decay) == (0.005, 0.01)  # document's AdamW decay
    assert MultitaskConfig(model="resnet18", optimizer="adam", lr=0.02).resolved().lr == 0.02
    scaled = MultitaskConfig(optimizer="adadelta", lr_scale=0.5).resolved()
    assert (scaled.lr, scaled.lr_scale) == (0.5, 1.0)
    assert scaled.resolved() == scaled  # the scale is folded in once


def test_bad_settings_are_named() -> None:
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        MultitaskConfig(model="vgg")
    with pytest.raises(ValueError, match="seg_weight must be in"):
        MultitaskConfig(seg_weight=1.5)
    with pytest.raises(ValueError, match="mtadamv2 needs both task weights"):
        MultitaskConfig(optimizer="mtadamv2", seg_weight=0.0)
    with pytest.raises(ValueError, match=r"bn_momentum must be in \(0, 1\], got 0"):
        MultitaskConfig(bn_momentum=0.0)
    with pytest.raises(ValueError, match="clip_grad_norm does not apply to mtadamv2"):
        MultitaskConfig(optimizer="mtadamv2", clip_grad_norm=1.0)


def test_class_count_mismatch_and_bad_masks_fail_naming_the_data(
        formats: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has 10 classes but num_classes is 1000"):
        train(_tiny(formats, tmp_path, num_classes=1000))
    voc = tmp_path / "voc"
    shutil.copytree(formats["voc"], voc)
    for png in (voc / "SegmentationClass").glob("*.png"):
        with Image.open(png) as img:
            Image.new("L", img.size, 77).save(png)
    with pytest.raises(ValueError, match=r"mask .*SegmentationClass/2007_\d+\.png holds "
                                         r"labels \[77\]"):
        train(_tiny(formats, tmp_path, seg_dataset=str(voc)))


def test_confusion_matrix_miou_ignores_255_and_absent_classes() -> None:
    cm = ConfusionMatrix(3)
    target = torch.tensor([[0, 0, 1, 1], [255, 255, 1, 0]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 2, 0, 0]])
    cm.update(target, pred)
    # class 0: tp 2, fp 1, fn 1 -> 0.5; class 1: tp 2, fp 1, fn 1 -> 0.5; class 2 absent
    assert cm.mean_iou() == pytest.approx(0.5)
    assert cm.pixel_accuracy() == pytest.approx(4 / 6)
