from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch

from trainers.checkpoint_file import read_verified
from trainers.cifar import CifarConfig, StopReason, train
from trainers.reporter import RecordingReporter

TINY = CifarConfig(synthetic_size=400, val_size=100, width=0.0625, batch_size=32, epochs=4,
                   milestones=(2, 3), gamma=0.1, lr=0.2, optimizer="sgd", patience=10,
                   eval_batch_size=256)


def test_reports_once_per_epoch_with_every_metric() -> None:
    reporter = RecordingReporter()
    result = train(TINY, reporter)
    assert [epoch for epoch, _ in reporter.history] == [1, 2, 3, 4]
    metrics = reporter.history[0][1]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "train_val_gap", "lr",
                "grad_norm", "epoch_seconds", "images_per_second"):
        assert key in metrics
    assert result["stop_reason"] == StopReason.COMPLETED and result["epochs_run"] == 4
    assert result["best_val_acc"] == max(m["val_acc"] for _, m in reporter.history)


def test_multistep_schedule_decays_at_milestones() -> None:
    reporter = RecordingReporter()
    train(TINY, reporter)
    lrs = [m["lr"] for _, m in reporter.history]
    assert lrs == pytest.approx([0.2, 0.2, 0.02, 0.002])


def test_learns_the_synthetic_task_and_lr_matters() -> None:
    cfg = TINY.replace(synthetic_size=1000, val_size=200, width=0.125, epochs=5, lr=0.3,
                       milestones=(4,))
    good = train(cfg)
    tiny_lr = train(cfg.replace(lr=1e-4))
    assert good["best_val_acc"] > 0.35  # chance is 0.1
    assert tiny_lr["best_val_acc"] < good["best_val_acc"] - 0.2


def test_same_seed_same_result() -> None:
    short = TINY.replace(epochs=2, milestones=(1,))
    a, b = train(short), train(short)
    assert a["best_val_acc"] == b["best_val_acc"] and a["last_train_loss"] == b["last_train_loss"]


def test_stops_when_the_reporter_asks_and_says_pruned() -> None:
    result = train(TINY, RecordingReporter(stop_after_epoch=2))
    assert result["stop_reason"] == StopReason.PRUNED and result["epochs_run"] == 2


def test_a_stop_asked_after_the_last_epoch_leaves_the_run_completed() -> None:
    """A pruner's rung may fall on the last epoch; the run has trained every epoch by then,
    so it completes rather than being thrown away as pruned."""
    short = TINY.replace(epochs=2, milestones=(1,))
    result = train(short, RecordingReporter(stop_after_epoch=2))
    assert result["stop_reason"] == StopReason.COMPLETED and result["epochs_run"] == 2
    assert train(short, RecordingReporter(stop_after_epoch=1))["stop_reason"] == \
        StopReason.PRUNED


def test_early_stopping_stops_and_says_so() -> None:
    # min_delta 1.0 can never be beaten: patience 2 ends the run after epoch 3.
    result = train(TINY.replace(patience=2, min_delta=1.0, epochs=10, milestones=(8,)))
    assert result["stop_reason"] == StopReason.EARLY_STOPPED and result["epochs_run"] == 3


def test_divergence_is_reported_not_raised_and_not_scored() -> None:
    reporter = RecordingReporter()
    result = train(TINY.replace(lr=1e12, epochs=3, milestones=(2,)), reporter)
    assert result["stop_reason"] == StopReason.DIVERGED
    assert result["diverged_epoch"] == 1 and result["epochs_run"] == 0
    assert reporter.history == []


@pytest.mark.parametrize(("changes", "message"), [
    ({"optimizer": "adamw2"}, "unknown optimizer 'adamw2'"),
    ({"milestones": (5, 3)}, "strictly increasing"),
    ({"gamma": 1.5}, "gamma"),
    ({"lr": -1.0}, "lr must be > 0"),
])
def test_bad_config_values_are_named(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TINY.replace(**changes)


def test_unknown_config_key_fails_loudly() -> None:
    with pytest.raises(ValueError, match=r"unknown CIFAR config key\(s\) \['learning_rate'\]"):
        TINY.replace(learning_rate=0.1)


def test_standalone_cli_trains_and_prints_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    from trainers.cifar import main

    code = main(["--synthetic-size", "200", "--val-size", "50", "--width", "0.0625",
                 "--epochs", "1", "--milestones", "1", "--batch-size", "50"])
    assert code == 0
    out = capsys.readouterr().out
    assert "stop_reason: completed" in out and "best_val_acc:" in out


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    cfg = TINY.replace(epochs=5, milestones=(3,), optimizer="nesterov", schedule="multistep",
                       checkpoint_every=1)
    straight = RecordingReporter()
    whole = train(cfg, straight)
    ckpt = str(tmp_path / "ckpt")
    stopped = train(cfg.replace(checkpoint_dir=ckpt), RecordingReporter(stop_after_epoch=2))
    assert stopped["stop_reason"] == StopReason.PRUNED
    resumed_reporter = RecordingReporter()
    resumed = train(cfg.replace(checkpoint_dir=ckpt), resumed_reporter)
    assert [e for e, _ in resumed_reporter.history] == [3, 4, 5]
    for key in ("best_val_acc", "last_train_loss", "last_val_loss", "last_lr", "best_epoch"):
        assert resumed[key] == whole[key], key
    assert [m["val_loss"] for _, m in resumed_reporter.history] == [
        m["val_loss"] for e, m in straight.history if e >= 3]


def test_resume_refuses_a_checkpoint_made_with_other_settings(tmp_path: Path) -> None:
    ckpt = str(tmp_path / "ckpt")
    train(TINY.replace(epochs=1, milestones=(1,), checkpoint_dir=ckpt))
    with pytest.raises(ValueError, match=r"different settings \['lr'\]"):
        train(TINY.replace(epochs=2, milestones=(1,), checkpoint_dir=ckpt, lr=0.3))


def test_checkpoints_load_with_weights_only(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt"
    train(TINY.replace(epochs=1, milestones=(1,), checkpoint_dir=str(ckpt)))
    # the file is a checksum header and torch.save's bytes (trainers/checkpoint_file.py)
    payload = read_verified(ckpt / "last.pt")
    state = torch.load(io.BytesIO(payload), weights_only=True)
    assert state["epoch"] == 1 and "model" in state and "optimizer" in state


def test_a_test_set_is_evaluated_once_with_the_best_weights_and_not_reported() -> None:
    reporter = RecordingReporter()
    result = train(TINY.replace(test_dataset="synthetic"), reporter)
    assert 0 <= result["test_acc"] <= 1 and result["test_loss"] > 0
    assert all("test_acc" not in m for _, m in reporter.history)


def test_clipping_and_label_smoothing_run() -> None:
    result = train(TINY.replace(epochs=1, milestones=(1,), clip_grad_norm=0.1,
                                label_smoothing=0.1))
    assert result["stop_reason"] == StopReason.COMPLETED


def test_batch_larger_than_the_data_fails_before_training() -> None:
    with pytest.raises(ValueError, match="batch_size 500 is larger than the 400 training images"):
        train(TINY.replace(batch_size=500))


def test_missing_official_cifar10_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="set download true"):
        train(TINY.replace(dataset="cifar10", data_dir=str(tmp_path)))


def test_missing_dataset_path_is_named() -> None:
    with pytest.raises(ValueError, match=r"dataset '/nonexistent/train\.tar\.gz' does not exist"):
        train(TINY.replace(dataset="/nonexistent/train.tar.gz"))


def test_host_resident_data_trains_to_the_same_result() -> None:
    # data_on_device="no" is the path for sets too big for the GPU; on a CPU it must agree.
    short = TINY.replace(epochs=2, milestones=(1,))
    timing = ("last_epoch_seconds", "last_images_per_second")
    host, device = train(short.replace(data_on_device="no")), train(short)
    assert {k: v for k, v in host.items() if k not in timing} == {
        k: v for k, v in device.items() if k not in timing}


def test_bf16_autocast_runs_where_asked() -> None:
    result = train(TINY.replace(epochs=1, milestones=(1,), amp="bf16"))
    assert result["stop_reason"] == StopReason.COMPLETED and result["last_train_loss"] > 0
