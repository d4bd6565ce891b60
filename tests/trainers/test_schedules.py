from __future__ import annotations

import math

import pytest
import torch

from trainers.cifar import CifarConfig, train
from trainers.reporter import RecordingReporter
from trainers.schedules import SCHEDULES, LRSchedule, ScheduleSpec


def _epoch_lrs(spec: ScheduleSpec, metrics: list[float] | None = None) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = LRSchedule(opt, spec, steps_per_epoch=4)
    lrs = []
    for e in range(spec.epochs):
        lrs.append(sched.lr())
        for _ in range(4):
            sched.after_batch()
        sched.after_epoch(None if metrics is None else metrics[e])
    return lrs


def _step_lrs(spec: ScheduleSpec, steps_per_epoch: int) -> list[float]:
    """The LR in force at every optimizer step of the run."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = LRSchedule(opt, spec, steps_per_epoch=steps_per_epoch)
    lrs = []
    for _ in range(spec.epochs):
        for _ in range(steps_per_epoch):
            lrs.append(sched.lr())
            sched.after_batch()
        sched.after_epoch()
    return lrs


def test_multistep_matches_torch_multisteplr() -> None:
    spec = ScheduleSpec("multistep", epochs=8, milestones=(2, 5), gamma=0.5)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = torch.optim.lr_scheduler.MultiStepLR(opt, [2, 5], 0.5)
    expected = []
    for _ in range(8):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert _epoch_lrs(spec) == pytest.approx(expected)


def test_warmup_then_exponential_is_the_keras_recipe() -> None:
    spec = ScheduleSpec("exponential", epochs=10, warmup_epochs=3, gamma=0.96)
    lrs = _epoch_lrs(spec)
    assert lrs[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert lrs[3] == pytest.approx(1.0)
    assert lrs[9] == pytest.approx(0.96 ** 6)


def test_exponential_per_step_decays_within_an_epoch() -> None:
    seen = _step_lrs(ScheduleSpec("exponential", epochs=2, gamma=0.5, per_step=True), 4)
    assert seen == pytest.approx([0.5 ** (i / 4) for i in range(8)])


def test_step_and_cosine_follow_their_formulas() -> None:
    assert _epoch_lrs(ScheduleSpec("step", epochs=6, step_size=2, gamma=0.1)) == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01])
    cos = _epoch_lrs(ScheduleSpec("cosine", epochs=4))
    assert cos == pytest.approx([(1 + math.cos(math.pi * t / 4)) / 2 for t in range(4)])


def test_onecycle_rises_then_falls_to_a_tiny_lr() -> None:
    lrs = _step_lrs(ScheduleSpec("onecycle", epochs=10, pct_start=0.3), 10)
    assert lrs[0] == pytest.approx(1 / 25)
    assert max(lrs) == pytest.approx(1.0) and lrs.index(max(lrs)) == 30
    assert lrs[-1] < 1e-3


def test_plateau_reduces_after_patience_and_respects_cooldown() -> None:
    spec = ScheduleSpec("plateau", epochs=10, plateau_patience=1, plateau_factor=0.5,
                        plateau_cooldown=2)
    flat = [0.5] * 10
    lrs = _epoch_lrs(spec, flat)
    # epoch 1 sets the best; epochs 2, 3 are bad (2 > patience 1) -> halved from epoch 4;
    # cooldown ignores epochs 4, 5; epochs 6, 7 bad -> halved again from epoch 8.
    assert lrs == pytest.approx([1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25])


def test_plateau_combines_with_warmup_and_exponential() -> None:
    spec = ScheduleSpec("exponential", epochs=8, warmup_epochs=2, gamma=0.9,
                        plateau_patience=0, plateau_factor=0.5)
    metrics = [0.1, 0.2, 0.3, 0.3, 0.4, 0.5, 0.6, 0.7]
    lrs = _epoch_lrs(spec, metrics)
    assert lrs[:3] == pytest.approx([0.5, 1.0, 1.0])
    # epoch 4 did not improve on epoch 3 (patience 0): halved from epoch 5 on
    assert lrs[4] == pytest.approx(0.9 ** 2 * 0.5)


@pytest.mark.parametrize("name", SCHEDULES)
def test_every_schedule_trains_through_the_trainer_and_reports_the_lr(name: str) -> None:
    cfg = CifarConfig(synthetic_size=64, val_size=20, width=0.0625, batch_size=32, epochs=3,
                      milestones=(1,), schedule=name, warmup_epochs=1, lr=0.1,
                      eval_batch_size=64, plateau_patience=0 if name == "plateau" else None)
    reporter = RecordingReporter()
    train(cfg, reporter)
    lrs = [m["lr"] for _, m in reporter.history]
    assert lrs[0] == pytest.approx(0.1)  # one warmup epoch: full LR at epoch 1
    assert len(lrs) == 3


@pytest.mark.parametrize(("changes", "message"), [
    ({"schedule": "linear"}, "unknown schedule 'linear'"),
    ({"milestones": (100, 300)}, r"milestones \[300\] are beyond the 250-epoch budget"),
    ({"milestones": (120, 60)}, "strictly increasing"),
    ({"warmup_epochs": 250}, "warmup_epochs must be in"),
])
def test_bad_schedule_settings_fail_before_training(changes: dict[str, object],
                                                    message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CifarConfig(**changes)  # type: ignore[arg-type]
