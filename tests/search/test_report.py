"""The round analysis against studies built with known trial values (the round-2 figures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from search.cli.main import main
from search.report.analysis import next_round, optimization_notes, overfitting_notes
from search.study.study_spec import parse_spec
from storage.attrs import SPEC_ATTR

SPEC: dict[str, Any] = {
    "name": "round2", "trainer": "cifar",
    "objective": {"metric": "best_val_acc", "direction": "maximize", "report": "val_acc"},
    "success": {"target": 0.88, "max_train_val_gap": 0.08},
    "budget": {"trials": 10, "workers": 1},
    "config": {"epochs": 250},
    "space": {
        "lr": {"type": "float", "low": 0.005, "high": 0.2, "log": True},
        "gamma": {"type": "float", "low": 0.1, "high": 0.5},
        "batch_size": {"type": "categorical", "choices": [64, 96, 128, 256]},
        "milestones": {"type": "milestones", "count": 3, "low": 0.1, "high": 0.95},
    },
}
DISTS = {"lr": FloatDistribution(0.005, 0.2, log=True), "gamma": FloatDistribution(0.1, 0.5),
         "batch_size": CategoricalDistribution([64, 96, 128, 256]),
         **{f"milestones_{i}": FloatDistribution(0.1, 0.95) for i in (1, 2, 3)}}


def _trial(value: float, *, lr: float, gamma: float = 0.2, bs: int = 96,
           ms: tuple[float, float, float] = (0.24, 0.48, 0.64), **attrs: Any
           ) -> optuna.trial.FrozenTrial:
    params = {"lr": lr, "gamma": gamma, "batch_size": bs,
              **{f"milestones_{i}": m for i, m in enumerate(ms, 1)}}
    return optuna.trial.create_trial(value=value, params=params, distributions=DISTS,
                                     user_attrs=attrs, intermediate_values={1: value / 2})


# Round 1 and round 2 as the analysis reports them.
ROUND1 = {"test_acc": 0.5321, "best_train_acc": 0.5754, "best_val_acc": 0.1836,
          "best_train_loss": 1.210, "best_val_loss": 4.311, "epochs_run": 39}
ROUND2 = {"test_acc": 0.8329, "best_train_acc": 1.0, "best_val_acc": 0.8424,
          "best_train_loss": 0.0, "best_val_loss": 0.789, "epochs_run": 123,
          "best_train_val_gap": 1.0 - 0.8424, "best_epoch": 88,
          "config": {"milestones": [60, 120, 160], "schedule": "multistep"},
          # lr 0.01 for 60 epochs, then 0.001 to epoch 120, then 0.0001
          "lr_schedule": [0.01] * 60 + [0.001] * 60 + [0.0001] * 3}


def _studies(url: str) -> tuple[optuna.Study, optuna.Study]:
    prev = optuna.create_study(study_name="round1", storage=url, direction="maximize")
    prev.add_trial(_trial(0.1836, lr=0.01, **ROUND1))
    cur = optuna.create_study(study_name="round2", storage=url, direction="maximize")
    cur.set_user_attr(SPEC_ATTR, SPEC)
    cur.add_trial(_trial(0.8424, lr=0.05, gamma=0.2, bs=96, **ROUND2))
    cur.add_trial(_trial(0.80, lr=0.03, gamma=0.3, bs=128, ms=(0.3, 0.5, 0.7)))
    cur.add_trial(_trial(0.60, lr=0.006, gamma=0.45, bs=256, ms=(0.2, 0.4, 0.6)))
    cur.add_trial(_trial(0.82, lr=0.2, gamma=0.25, bs=96, ms=(0.25, 0.5, 0.8)))
    return prev, cur


def test_report_compares_with_the_previous_round_like_the_analysis(
        sqlite_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _studies(sqlite_url)
    out = tmp_path / "report"
    assert main(["report", "round2", "--previous", "round1", "--out", str(out),
                 "--storage", sqlite_url]) == 0
    printed = capsys.readouterr().out
    assert "best trial 0: best_val_acc = 0.8424" in printed  # the metric, by its name
    for line in ("Test Accuracy: 53.21% -> 83.29% (+30.08%)",
                 "Training Accuracy: 57.54% -> 100.00% (+42.46%)",
                 "Validation Accuracy: 18.36% -> 84.24% (+65.88%)",
                 "Training Loss: 1.210 -> 0.000 (-1.210)",
                 "Validation Loss: 4.311 -> 0.789 (-3.522)",
                 "Early Stopping: 39 -> 123 epochs (+84 epochs)"):
        assert line in printed
        assert line in (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    assert "Train-validation gap: 15.76 points, over the limit of 8 points" in page
    # Self-contained: plotly.js is written into the page once, every figure is drawn from it,
    # and no script is fetched (the Chromium test below renders it).
    assert page.count("* plotly.js v") == 1 and "<script src=" not in page
    assert page.count("Plotly.newPlot(") == 4  # history, curves, parallel, slice
    assert (out / "history.png").stat().st_size > 1000
    next_spec = parse_spec(yaml.safe_load((out / "next_round.yaml").read_text()))
    assert next_spec.name == "round2-next" and next_spec.baselines[0].name == "round2-best"


def test_overfitting_and_optimization_notes_read_the_trial() -> None:
    best = _trial(0.8424, lr=0.05, **ROUND2)
    over = overfitting_notes(best, 0.08)
    assert "Training accuracy 100.00% is near 100%: the model memorises the training set" in over
    assert "Training loss 0.000 is near 0" in over
    opt = optimization_notes(best)
    assert ("The LR first decayed at epoch 61, before validation accuracy peaked at epoch 88: "
            "decay helped it keep improving") in opt
    assert ("Training stopped at epoch 123, before milestones [160]: those decays never "
            "happened") in opt
    # 0.001 is 10% of the start, not tiny; the 3 epochs at 0.0001 (1%) are
    assert ("3 epochs ran at or below 1% of the starting LR (0.01 -> 0.0001); 3 of them after "
            "the best epoch, without improvement") in opt


def test_next_round_narrows_around_the_top_trials_and_extends_at_edges() -> None:
    trials = [_trial(0.8424, lr=0.05, **ROUND2),
              _trial(0.82, lr=0.2, gamma=0.25, ms=(0.25, 0.5, 0.8)),
              _trial(0.80, lr=0.03, gamma=0.3, bs=128, ms=(0.3, 0.5, 0.7)),
              _trial(0.60, lr=0.006, gamma=0.45, bs=256, ms=(0.2, 0.4, 0.6))]
    spec, reasons = next_round(SPEC, trials, top_k=3)
    lr = spec["space"]["lr"]
    assert lr["low"] == 0.02  # 0.03 / 1.5; the 0.006 trial is not in the top 3
    assert lr["high"] == pytest.approx(0.3)  # best trials at the upper edge: extended
    assert any("lr:" in r and "upper edge" in r for r in reasons)
    # 64 (no trial) and 256 (one) lost nothing clearly: kept (issue 13: no collapse without
    # evidence)
    assert spec["space"]["batch_size"]["choices"] == [64, 96, 128, 256]
    gamma = spec["space"]["gamma"]
    assert gamma["low"] == pytest.approx(0.175) and gamma["high"] == pytest.approx(0.325)
    ms = spec["space"]["milestones"]
    assert ms["low"] <= 0.24 and ms["high"] >= 0.8 and ms["high"] == round(ms["high"], 3)
    assert spec["baselines"][0]["params"]["lr"] == 0.05
    parse_spec(spec)  # a spec hpsearch launch accepts


# ------------------------------------------------- a round with pruning and early stopping

SHORT_SPEC: dict[str, Any] = {
    "name": "short", "trainer": "cifar",
    "objective": {"metric": "best_val_acc", "direction": "maximize", "report": "val_acc"},
    "budget": {"trials": 20, "workers": 1},
    "config": {"epochs": 8, "patience": 1},
    "space": {
        "lr": {"type": "float", "low": 0.01, "high": 1.0, "log": True},
        "gamma": {"type": "float", "low": 0.1, "high": 0.5},
        "weight_decay": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
        "batch_size": {"type": "categorical", "choices": [64, 96, 128, 256]},
        "milestones": {"type": "milestones", "count": 2, "low": 0.1, "high": 0.95},
    },
}
SHORT_DISTS = {"lr": FloatDistribution(0.01, 1.0, log=True), "gamma": FloatDistribution(0.1, 0.5),
               "weight_decay": FloatDistribution(1e-5, 1e-3, log=True),
               "batch_size": CategoricalDistribution([64, 96, 128, 256]),
               "milestones_1": FloatDistribution(0.1, 0.95),
               "milestones_2": FloatDistribution(0.1, 0.95)}


def _short(curve: list[float], *, lr: float = 0.1, bs: int = 96, gamma: float = 0.2,
           wd: float = 1e-4, ms: tuple[float, float] = (0.75, 0.9), pruned: bool = False,
           stop: str = "early_stopped", patience: int = 1) -> optuna.trial.FrozenTrial:
    """A trial of the 8-epoch study that reported ``curve`` (val_acc per epoch)."""
    from search.study.space import milestone_epochs

    config = {"epochs": 8, "patience": patience, "gamma": gamma, "schedule": "multistep",
              "milestones": list(milestone_epochs(list(ms), 8)), "lr": lr, "batch_size": bs}
    attrs: dict[str, Any] = {"config": config, "epochs_run": len(curve),
                             "stop_reason": "pruned" if pruned else stop}
    if not pruned:
        attrs.update(best_val_acc=max(curve), best_train_val_gap=0.02 + 0.1 * lr)
    return optuna.trial.create_trial(
        state=TrialState.PRUNED if pruned else TrialState.COMPLETE,
        value=None if pruned else max(curve),
        params={"lr": lr, "gamma": gamma, "weight_decay": wd, "batch_size": bs,
                "milestones_1": ms[0], "milestones_2": ms[1]},
        distributions=SHORT_DISTS, user_attrs=attrs,
        intermediate_values=dict(enumerate(curve, 1)))


def _short_round(url: str, *, extra_complete: int = 0) -> optuna.Study:
    """Round 2 at 8 epochs with patience 1 (issue 13): the best trial stopped at epoch 5,
    before its milestones [6, 7]; a weak complete trial sits below two pruned ones; batch size
    256 was tried three times and never reached the top."""
    study = optuna.create_study(study_name="short", storage=url, direction="maximize")
    study.set_user_attr(SPEC_ATTR, SHORT_SPEC)
    trials = [
        _short([0.12, 0.18, 0.22, 0.25, 0.251], lr=0.093, bs=64, ms=(0.7, 0.82)),  # best
        _short([0.11, 0.17, 0.21, 0.24], lr=0.12, bs=96, gamma=0.3, ms=(0.6, 0.9)),
        _short([0.10, 0.16, 0.20, 0.23], lr=0.07, bs=96, gamma=0.25, ms=(0.72, 0.86)),
        _short([0.12, 0.16, 0.19, 0.22, 0.23, 0.24, 0.245, 0.247], lr=0.05, bs=128,
               ms=(0.5138, 0.5266), stop="completed"),  # ran past both (one) milestones
        _short([0.10, 0.12, 0.145], lr=0.8, bs=64, gamma=0.45),  # the weak complete trial
        _short([0.13, 0.16], lr=0.2, bs=96, pruned=True),  # beat the weak one at epoch 2
        _short([0.12, 0.15], lr=0.3, bs=128, pruned=True),
        _short([0.09], lr=0.9, bs=256, pruned=True),
        _short([0.08], lr=0.011, bs=256, pruned=True),
        _short([0.07, 0.09, 0.10], lr=0.015, bs=256, gamma=0.4),
    ]
    for i in range(extra_complete):
        trials.append(_short([0.09, 0.11 + 0.005 * i], lr=0.02 + 0.03 * i, bs=128,
                             gamma=0.15 + 0.02 * i, wd=1e-5 * (i + 1)))
    for t in trials:
        study.add_trial(t)
    return study


def _ranked_numbers(study: optuna.Study) -> list[int]:
    from search.report.ranking import rank_trials

    return [r.trial.number for r in rank_trials(study.trials, maximize=True)]


def test_top_trials_are_ranked_at_a_common_fidelity(sqlite_url: str) -> None:
    study = _short_round(sqlite_url)
    order = _ranked_numbers(study)
    # The weak complete trial 4 (0.145) had 0.12 at epoch 2, behind pruned trials 5 (0.16)
    # and 6 (0.15) there: it ranks below both, and below every better complete trial.
    assert order.index(5) < order.index(4) and order.index(6) < order.index(4)
    completes = [n for n in order if n in (0, 1, 2, 3, 4, 9)]
    assert completes == [0, 3, 1, 2, 4, 9]  # among complete trials: their final values
    assert order[0] == 0


def test_a_choice_is_dropped_only_when_several_trials_lost_with_it(sqlite_url: str) -> None:
    study = _short_round(sqlite_url)
    spec, reasons = next_round(SHORT_SPEC, study.trials)
    # 256: three trials (7, 8, 9), none in the top 5 -> dropped; 64, 96, 128 made the top
    assert spec["space"]["batch_size"]["choices"] == [64, 96, 128]
    assert ("batch_size: [64, 96, 128]: the top 5 trials used 64, 96, 128; 256 (3 trials) "
            "dropped: none of those trials reached the top 5") in reasons
    # With one loser it stays: too little to rule 256 out
    kept, why = next_round(SHORT_SPEC, [t for t in study.trials if t.number not in (7, 8)])
    assert kept["space"]["batch_size"]["choices"] == [64, 96, 128, 256]
    assert "256 (1 trial) kept: too few trials to rule out" in " ".join(why)


def test_milestones_and_gamma_are_not_narrowed_around_trials_that_never_reached_them(
        sqlite_url: str) -> None:
    study = _short_round(sqlite_url)
    spec, reasons = next_round(SHORT_SPEC, study.trials)
    # Of the top 5 (0, 3, 5, 1, 2 or so) only trial 3 trained past its first milestone.
    assert spec["space"]["gamma"] == SHORT_SPEC["space"]["gamma"]
    assert spec["space"]["milestones"] == SHORT_SPEC["space"]["milestones"]
    assert any(r.startswith("gamma: kept as searched:") and "before their first milestone" in r
               for r in reasons)
    assert spec["space"]["lr"] != SHORT_SPEC["space"]["lr"]  # lr has evidence: narrowed


def test_the_report_says_what_early_stopping_and_pruning_made_moot(sqlite_url: str) -> None:
    from search.report.analysis import analyse, moot_notes

    study = _short_round(sqlite_url)
    best = study.best_trial
    a = analyse(SHORT_SPEC, study.trials, best, None)
    assert ("The best trial (0) stopped at epoch 5, before its first milestone (epoch 6): its "
            "gamma (0.2) and milestones [6, 7] did nothing") in a.moot
    assert any(n.startswith("Early-stopping patience was 1 epoch (under 3): 5 of 6 completed "
                            "trials stopped early") for n in a.moot)
    assert any(n.startswith("4 trials were pruned (2 at epoch 1, 2 at epoch 2)") for n in a.moot)
    assert moot_notes(SPEC, _trial(0.8424, lr=0.05, **ROUND2), ()) == []  # round 2: nothing


def test_importances_need_ten_completed_trials(sqlite_url: str, tmp_path: Path) -> None:
    from search.report.analysis import importance_unavailable
    from search.report.render import write_report

    study = _short_round(sqlite_url)
    assert importance_unavailable(study.trials) == (
        "not computed: 6 completed trials, fewer than the 10 needed to tell a parameter's "
        "effect from noise")
    files = write_report(study, SHORT_SPEC, tmp_path / "few")
    assert "Parameter importances: not computed: 6 completed trials" in files.markdown.read_text()
    assert not (tmp_path / "few" / "importances.png").exists()
    more = _short_round(sqlite_url.replace("study.db", "more.db"), extra_complete=4)
    assert importance_unavailable(more.trials) is None
    files = write_report(more, SHORT_SPEC, tmp_path / "more")
    assert (tmp_path / "more" / "importances.png").exists()
    assert 'id="figure-importances"' in files.html.read_text()


def test_best_parameters_show_milestones_in_epochs_and_a_collision_once() -> None:
    from search.report.units import shown_params

    best = _short([0.1, 0.2, 0.25], ms=(0.7, 0.82))
    assert shown_params(best, SHORT_SPEC["space"]).line() == (
        "lr=0.1, gamma=0.2, weight_decay=0.0001, batch_size=96, milestones=epochs [6, 7] of 8")
    # 0.5138 and 0.5266 of 8 epochs both round to 4: shown as what ran, with a note
    both = _short([0.1], ms=(0.5138, 0.5266))
    shown = shown_params(both, SHORT_SPEC["space"])
    assert ("milestones", "epochs [4, 5] of 8") in shown.values
    assert shown.notes == ("milestones: fractions 0.5138 and 0.5266 of 8 epochs both round to "
                           "epoch 4; they ran as distinct milestones [4, 5]",)
    # A trial run before milestones were spread apart ran one milestone: shown once
    old = _short([0.1], ms=(0.5138, 0.5266))
    old.user_attrs["config"]["milestones"] = [4]
    shown = shown_params(old, SHORT_SPEC["space"])
    assert ("milestones", "epochs [4] of 8") in shown.values
    assert shown.notes == ("milestones: fractions 0.5138 and 0.5266 of 8 epochs both land on "
                           "epoch 4, so they were one milestone",)


# ------------------------------------------------------------- the page, in a real browser

_PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push('error: ' + e.message));
const __consoleError = console.error;
console.error = (...a) => {
  window.__errors.push('console: ' + a.join(' '));
  __consoleError(...a);
};
window.addEventListener('load', () => setTimeout(() => {
  const out = {errors: window.__errors, figures: {}, hover: null};
  document.querySelectorAll('.js-plotly-plot').forEach(el => {
    out.figures[el.id] = {svgs: el.querySelectorAll('svg.main-svg').length,
                          customdata: (el.data || []).map(t => t.customdata || null)};
  });
  try {
    const h = document.getElementById('figure-history');
    Plotly.Fx.hover(h, [{curveNumber: 0, pointNumber: 0}]);
    out.hover = h.querySelector('.hoverlayer').textContent;
  } catch (e) { out.errors.push('hover: ' + e); }
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}, 1000));
</script>"""


def test_report_page_renders_interactive_figures_offline_in_headless_chromium(
        sqlite_url: str, tmp_path: Path) -> None:
    """report.html from a file:// URL, no network: every figure renders, no script error, and
    hovering the first point of the history names its trial."""
    import html
    import json
    import re

    from search.report.render import write_report
    from tests.search.chromium import dump_dom, require_chromium, screenshot

    require_chromium()
    study = _short_round(sqlite_url, extra_complete=4)
    files = write_report(study, SHORT_SPEC, tmp_path / "report")
    page = files.html.read_text()
    probe = files.html.with_name("probe.html")
    probe.write_text(page.replace("<head>", "<head>" + _PROBE, 1))
    run = dump_dom(probe.as_uri(), tmp_path / "profile")
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    assert found, run.stderr[-2000:]
    out = json.loads(html.unescape(found.group(1)))
    assert out["errors"] == []
    drawn = {"figure-history", "figure-learning_curves", "figure-parallel", "figure-slice",
             "figure-gap_vs_wd", "figure-importances"}
    assert set(out["figures"]) == drawn
    assert all(f["svgs"] >= 1 for f in out["figures"].values())
    # hover data: every trial that reported a value is a curve carrying its number
    curves = out["figures"]["figure-learning_curves"]["customdata"]
    assert {c[0] for c in curves} == {t.number for t in study.trials}
    first = min(t.number for t in study.trials if t.state == TrialState.COMPLETE)
    assert f"trial {first} (complete)" in out["hover"] and "milestones=epochs" in out["hover"]
    shot = screenshot(files.html.as_uri(), tmp_path / "report.png", tmp_path / "profile",
                      height=1600)
    assert shot.stat().st_size > 30_000


def test_a_value_every_top_trial_shares_keeps_its_neighbours(sqlite_url: str) -> None:
    study = _short_round(sqlite_url, extra_complete=4)
    spec, reasons = next_round(SHORT_SPEC, study.trials)
    # The top 5 all ran weight decay 1e-4; others tried 1e-5..4e-5 below it and nothing above
    assert spec["space"]["weight_decay"] == dict(SHORT_SPEC["space"]["weight_decay"],
                                                 low=pytest.approx(4e-5), high=1e-3)
    assert ("weight_decay: [4e-05, 0.001]: the top 5 trials all used 0.0001, so the range keeps "
            "its neighbours up to the nearest values other trials tried (or the searched edge)"
            ) in reasons
    parse_spec(spec)
