from __future__ import annotations

import pytest
import torch

from trainers.cifar import CifarConfig, train
from trainers.mtadam import MTAdamV2
from trainers.optim import OPTIMIZERS, optimizer_settings

TINY = CifarConfig(synthetic_size=64, val_size=20, width=0.0625, batch_size=32, epochs=1,
                   milestones=(1,), eval_batch_size=64)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_optimizer_trains_through_the_trainer(name: str) -> None:
    result = train(TINY.replace(optimizer=name))
    assert result["stop_reason"] == "completed" and result["epochs_run"] == 1
    assert result["last_train_loss"] > 0


def test_document_defaults_apply_unless_given() -> None:
    assert TINY.replace(optimizer="adam").resolved().lr == 0.001
    assert TINY.replace(optimizer="adamw").resolved().weight_decay == 0.01
    assert TINY.replace(optimizer="adadelta").resolved().lr == 1.0
    assert TINY.replace(optimizer="adadelta").resolved().rho == 0.9
    assert TINY.replace(optimizer="adagrad").resolved().eps == 1e-10
    sgd = TINY.replace(optimizer="sgd").resolved()
    assert (sgd.lr, sgd.momentum, sgd.weight_decay) == (0.01, 0.9, 1e-4)
    assert TINY.replace(optimizer="adam", lr=0.02).resolved().lr == 0.02
    # settings an optimizer does not use do not leak into it
    assert "momentum" not in optimizer_settings("adam", {"momentum": 0.5})


def test_unknown_optimizer_is_named() -> None:
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamw2'; expected one of"):
        optimizer_settings("adamw2", {})


def _twin_models() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    a = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    b = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    b.load_state_dict(a.state_dict())
    return a, b


@pytest.mark.parametrize(("wd", "reference"), [(0.0, torch.optim.Adam),
                                               (0.05, torch.optim.AdamW)])
def test_mtadamv2_with_one_loss_is_adam_step_by_step(wd: float, reference: type) -> None:
    ours, theirs = _twin_models()
    opt_a = MTAdamV2(ours.parameters(), lr=0.01, weight_decay=wd)
    opt_b = reference(theirs.parameters(), lr=0.01, weight_decay=wd, foreach=False)
    gen = torch.Generator().manual_seed(1)
    for _ in range(25):
        x = torch.randn(8, 6, generator=gen)
        for model, opt in ((ours, opt_a), (theirs, opt_b)):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            opt.step()
        for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_mtadamv2_single_loss_backward_and_step_is_also_adam() -> None:
    ours, theirs = _twin_models()
    opt_a = MTAdamV2(ours.parameters(), lr=0.01)
    opt_b = torch.optim.Adam(theirs.parameters(), lr=0.01, foreach=False)
    x = torch.randn(4, 6)
    opt_a.backward_and_step([ours(x).sum()])
    opt_b.zero_grad()
    theirs(x).sum().backward()
    opt_b.step()
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_mtadamv2_balances_terms_and_skips_unreached_parameters() -> None:
    torch.manual_seed(0)
    shared = torch.nn.Linear(4, 4)
    head_a, head_b = torch.nn.Linear(4, 1), torch.nn.Linear(4, 1)
    params = [*shared.parameters(), *head_a.parameters(), *head_b.parameters()]
    opt = MTAdamV2(params, lr=0.01, task_weights=(0.5, 0.5))
    x = torch.randn(16, 4)
    before_b = [p.detach().clone() for p in head_b.parameters()]
    h = shared(x)
    # term 0 reaches shared + head_a; term 1 reaches shared + head_b and is 1000x larger
    opt.backward_and_step([head_a(h).pow(2).mean(), 1000 * head_b(h).pow(2).mean()])
    state_a = opt.state[head_a.weight]["terms"]
    assert set(state_a) == {0}, "head_a must hold state for term 0 only"
    assert set(opt.state[head_b.weight]["terms"]) == {1}
    assert set(opt.state[shared.weight]["terms"]) == {0, 1}
    # the shared layer's rescaled term-1 gradient has the anchor's running norm (equal weights)
    terms = opt.state[shared.weight]["terms"]
    assert float(terms[1]["exp_avg"].norm()) == pytest.approx(
        float(terms[0]["exp_avg"].norm()), rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(before_b, head_b.parameters(), strict=True))


def test_mtadamv2_rejects_mismatched_task_weights() -> None:
    layer = torch.nn.Linear(2, 1)
    opt = MTAdamV2(layer.parameters(), task_weights=(0.5, 0.5))
    out = layer(torch.randn(3, 2)).sum()
    with pytest.raises(ValueError, match="3 loss terms but task_weights has 2"):
        opt.backward_and_step([out, out * 2, out * 3])


def _reference_mtadam(params: list[torch.Tensor], steps: list[list[torch.Tensor | None]], *,
                      lr: float, wd: float, weights: tuple[float, float]) -> None:
    """MTAdamV2 written as the plain per-parameter loop of its description."""
    beta1, beta2, beta3, eps = 0.9, 0.999, 0.9, 1e-8
    state: dict[int, dict[int, dict[str, torch.Tensor | int]]] = {}
    for grads_by_term in steps:
        for k, p in enumerate(params):
            grads = [term[k] for term in grads_by_term]
            if all(g is None for g in grads):
                continue
            terms = state.setdefault(k, {})
            num = torch.zeros_like(p)
            den = None
            for i, g in enumerate(grads):
                if g is None:
                    continue
                t = terms.setdefault(i, {})
                n = g.norm()
                t["norm"] = n if "norm" not in t else t["norm"] * beta3 + (1 - beta3) * n
                if i > 0 and "norm" in terms.get(0, {}):
                    g = g * (weights[i] / weights[0]) * terms[0]["norm"] / t["norm"]
                t["step"] = int(t.get("step", 0)) + 1
                t["m"] = t.get("m", torch.zeros_like(p)) * beta1 + (1 - beta1) * g
                t["v"] = t.get("v", torch.zeros_like(p)) * beta2 + (1 - beta2) * g * g
                step = int(t["step"])
                num += t["m"] / (1 - beta1 ** step)
                d = (t["v"] / (1 - beta2 ** step)).sqrt() + eps
                den = d if den is None else torch.maximum(den, d)
            p.mul_(1 - lr * wd)
            p.sub_(lr * num / den)


def test_mtadamv2_matches_the_per_parameter_description_over_many_steps() -> None:
    torch.manual_seed(0)
    shared = torch.nn.Linear(4, 4)
    head_a, head_b = torch.nn.Linear(4, 1), torch.nn.Linear(4, 1)
    modules = (shared, head_a, head_b)
    params = [p for m in modules for p in m.parameters()]
    reference = [p.detach().clone() for p in params]
    opt = MTAdamV2(params, lr=0.01, weight_decay=0.1, task_weights=(0.3, 0.7))
    gen = torch.Generator().manual_seed(3)
    recorded: list[list[list[torch.Tensor | None]]] = []
    for step in range(12):
        x = torch.randn(16, 4, generator=gen)
        h = shared(x)
        # every third step term 1 skips head_b entirely (its loss uses the shared layer only)
        loss_b = h.pow(2).mean() if step % 3 == 2 else 50 * head_b(h).pow(2).mean()
        losses = [head_a(h).pow(2).mean(), loss_b]
        grads = [list(torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True))
                 for loss in losses]
        recorded.append([[None if g is None else g.clone() for g in term] for term in grads])
        opt.backward_and_step(losses)
    # the reference replays the same gradients on its own copy of the starting weights
    _reference_mtadam(reference, recorded, lr=0.01, wd=0.1, weights=(0.3, 0.7))
    for ours, theirs in zip(params, reference, strict=True):
        torch.testing.assert_close(ours.detach(), theirs, rtol=1e-5, atol=1e-6)
