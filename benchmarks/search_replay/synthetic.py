"""A tiny search table made up from a formula: known curves, a known best, known costs.

For the replay's tests and for a smoke run of the benchmark without the recorded table. Every
configuration's validation accuracy climbs linearly to its final value (``final * epoch /
epochs``), so the best configuration is known; each epoch costs a fixed number of CPU seconds
that depends on the batch size, so charges are easy to check. Optionally one configuration
diverges after its first epoch, and some configurations carry extra seeds whose curves differ a
little.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from benchmarks.search_table.table import FORMAT, ConfigValues, Table, table_from_dict

__all__ = ["SYNTHETIC_BEST", "synthetic_table"]

# The configuration with the highest final accuracy in the default synthetic grid.
SYNTHETIC_BEST = ConfigValues(lr=0.1, weight_decay=1e-4, batch_size=128, gamma=0.1)


def _final_acc(config: ConfigValues, best: ConfigValues) -> float:
    """Peaks at ``best``; drops with the log distance of lr and weight decay, and by a fixed
    step for another batch size or gamma."""
    d_lr = abs(math.log10(config.lr) - math.log10(best.lr))
    d_wd = abs(math.log10(config.weight_decay) - math.log10(best.weight_decay))
    off = (config.batch_size != best.batch_size) + (config.gamma != best.gamma)
    return round(0.9 - 0.2 * d_lr - 0.05 * d_wd - 0.03 * off, 6)


def _epoch_cpu(config: ConfigValues, batch_sizes: Sequence[int]) -> float:
    """1, 2, 3 ... CPU seconds per epoch for the first, second, third ... batch size."""
    return float(1 + list(batch_sizes).index(config.batch_size))


def synthetic_table(*, lrs: Sequence[float] = (0.01, 0.1, 1.0),
                    weight_decays: Sequence[float] = (1e-5, 1e-4, 1e-3),
                    batch_sizes: Sequence[int] = (64, 128),
                    gammas: Sequence[float] = (0.1, 0.5), epochs: int = 4,
                    best: ConfigValues = SYNTHETIC_BEST,
                    diverging: ConfigValues | None = None,
                    extra_seed_configs: Sequence[ConfigValues] = ()) -> Table:
    """A table over the full grid of the given values; ``diverging`` (if given) diverges in its
    second epoch; ``extra_seed_configs`` also run with seed 1, one point lower at every epoch."""
    runs: list[dict[str, Any]] = []
    for lr in lrs:
        for wd in weight_decays:
            for bs in batch_sizes:
                for gamma in gammas:
                    config = ConfigValues(lr=lr, weight_decay=wd, batch_size=bs, gamma=gamma)
                    seeds = (0, 1) if config in extra_seed_configs else (0,)
                    for seed in seeds:
                        runs.append(_run(config, seed, epochs=epochs, best=best,
                                         cpu=_epoch_cpu(config, batch_sizes),
                                         diverges=config == diverging))
    header = {
        "identity": {
            "grid": {"lrs": list(lrs), "weight_decays": list(weight_decays),
                     "batch_sizes": list(batch_sizes), "gammas": list(gammas),
                     "milestone_fractions": [0.5, 0.75], "epochs": epochs, "width": 0.125},
            "seeds": {"base": [0], "extra": [1] if extra_seed_configs else [],
                      "extra_configs": [c.as_dict() for c in extra_seed_configs]},
            "sizes": {"pool": 0, "val": 0, "train": 0, "holdout": 0},
            "trainer_settings": {},
            "data": {"source": "synthetic formula"},
        },
        "machine": {"cpu_model": "none (synthetic)"},
        "recording": {"runs": len(runs), "expected_runs": len(runs), "complete": True},
    }
    return table_from_dict({"format": FORMAT, "header": header, "runs": runs})


def _run(config: ConfigValues, seed: int, *, epochs: int, best: ConfigValues, cpu: float,
         diverges: bool) -> dict[str, Any]:
    final = _final_acc(config, best) - 0.01 * seed
    finished = 1 if diverges else epochs
    curve = [round(final * e / epochs, 6) for e in range(1, finished + 1)]
    records = [{"epoch": e, "val_acc": acc, "val_loss": 1.0 - acc, "train_acc": acc,
                "train_loss": 1.0 - acc, "lr": config.lr, "wall_seconds": cpu,
                "cpu_seconds": cpu} for e, acc in enumerate(curve, start=1)]
    best_epoch = max(range(len(curve)), key=lambda i: curve[i]) + 1
    tail = 0.5 * cpu if diverges else 0.25
    return {
        "config": config.as_dict(), "seed": seed, "milestones": [epochs // 2],
        "epochs": records, "stop_reason": "diverged" if diverges else "completed",
        "diverged_epoch": 2 if diverges else None, "epochs_run": finished,
        "best_val_acc": max(curve), "best_epoch": best_epoch,
        "holdout_acc": round(max(curve) - 0.005, 6), "holdout_loss": 0.5,
        "run_cpu_seconds": cpu * finished + tail, "run_wall_seconds": cpu * finished + tail,
        "tail_cpu_seconds": tail,
    }
