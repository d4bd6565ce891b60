"""How a training run ends and what it returns, the same for every trainer.

``StopReason`` names why a run ended; ``epoch_verdict`` decides after each epoch's report but
the last (the reporter's stop wins over early stopping); ``summarize`` builds the returned
dict: why it stopped, epochs run, where it resumed, the best epoch's selection metric and the
metrics listed in ``best_keys`` (as ``best_*``), and every metric of the last epoch (as
``last_*``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from trainers.reporter import Reporter

__all__ = ["StopReason", "epoch_verdict", "summarize"]


class StopReason:
    COMPLETED = "completed"  # ran the whole epoch budget
    EARLY_STOPPED = "early_stopped"  # patience ran out on the selection metric
    PRUNED = "pruned"  # the reporter asked to stop
    DIVERGED = "diverged"  # non-finite loss


def epoch_verdict(reporter: Reporter, *, stop_early: bool, final: bool) -> str | None:
    """After ``reporter.report``: the reason to stop now, or None to go on. After the
    ``final`` epoch the run has completed: the reporter is not asked, since stopping a run
    that has nothing left to train saves nothing and would throw its result away (a pruner's
    rung can fall on the last epoch: Hyperband from epoch 1 keeping a third has one at 9)."""
    if final:
        return None
    if reporter.should_stop():
        return StopReason.PRUNED
    if stop_early:
        return StopReason.EARLY_STOPPED
    return None


def summarize(stop_reason: str, *, epoch: int, first_epoch: int, best: Mapping[str, float],
              last: Mapping[str, float], selection: Sequence[str],
              best_keys: Sequence[str]) -> dict[str, float | int | str]:
    """``selection``: metrics reported as ``best_<name>`` even when no epoch finished (0.0)."""
    diverged = stop_reason == StopReason.DIVERGED
    result: dict[str, float | int | str] = {
        "stop_reason": stop_reason,
        "resumed_from_epoch": first_epoch - 1,  # 0: started fresh
        "epochs_run": epoch - 1 if diverged else epoch,
        "best_epoch": int(best.get("epoch", 0)),
    }
    result.update({f"best_{k}": best.get(k, 0.0) for k in selection})
    if diverged:
        result["diverged_epoch"] = epoch
    result.update({f"best_{k}": best[k] for k in best_keys if k in best})
    result.update({f"last_{k}": v for k, v in last.items()})
    return result
