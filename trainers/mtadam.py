"""MTAdamV2: Adam that balances several loss terms (after MTAdam, Malkiel and Wolf, EMNLP 2021).

The paper's idea: before the Adam update, rescale each loss term's gradient so that every term
moves each parameter tensor with a magnitude set by the first ("anchor") term, times the term's
weight, and keep Adam's moments per term. Written here from that description with these choices:

- Per parameter tensor and term: a running (exponential, factor ``beta3``) norm of the term's
  gradient, and Adam's first and second moments of the rescaled gradient.
- Term ``i``'s gradient is scaled by ``(w_i / w_0) * (n_0 / n_i)``: its running norm is matched to
  the anchor's, weighted relative to the anchor's task weight. The anchor itself is unscaled.
- The step is ``lr * sum_i mhat_i / max_i (sqrt(vhat_i) + eps)``: the first moments add up and the
  most energetic term sets the denominator, element-wise.
- A term that does not reach a parameter (its gradient is None) is skipped for that parameter:
  its moments and step count for it are untouched, and nothing is attributed to it.
- Weight decay is decoupled (AdamW style) and applied once per step, not once per term.
- Task weights default to [0.5, 0.5]. With one loss term the update is exactly Adam's (AdamW's
  with weight decay), which a test checks step by step against torch.optim.

Cost: one backward pass per loss term (``backward_and_step``), plus per-term moment buffers
(two tensors per term and parameter). With a single loss, plain ``loss.backward(); step()`` works.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

__all__ = ["MTAdamV2"]


class MTAdamV2(torch.optim.Optimizer):
    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, task_weights: Sequence[float] = (0.5, 0.5),
                 beta3: float = 0.9) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not all(0.0 <= b < 1.0 for b in (*betas, beta3)):
            raise ValueError(f"betas and beta3 must be in [0, 1), got {betas}, {beta3}")
        if eps <= 0 or weight_decay < 0:
            raise ValueError(f"eps must be > 0 and weight_decay >= 0, got {eps}, {weight_decay}")
        weights = tuple(float(w) for w in task_weights)
        if not weights or any(w <= 0 for w in weights):
            raise ValueError(f"task_weights must be positive, got {list(task_weights)}")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay,
                    "task_weights": weights, "beta3": beta3}
        super().__init__(params, defaults)

    def backward_and_step(self, losses: Sequence[torch.Tensor]) -> None:
        """One backward pass per loss term, then one update from all of them."""
        params = [p for group in self.param_groups for p in group["params"]]
        term_grads: list[list[torch.Tensor | None]] = []
        for i, loss in enumerate(losses):
            for p in params:
                p.grad = None  # the next backward allocates fresh gradients: no copies needed
            loss.backward(retain_graph=i < len(losses) - 1)
            term_grads.append([p.grad for p in params])
        for p in params:
            p.grad = None
        self._update(params, term_grads)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """A single-loss step from ``p.grad``: exactly Adam (AdamW with weight decay)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = [p for group in self.param_groups for p in group["params"]]
        self._update(params, [[p.grad for p in params]])
        return loss

    @torch.no_grad()
    def _update(self, params: list[torch.Tensor], term_grads: list[list[torch.Tensor | None]]
                ) -> None:
        """The update, with multi-tensor (``torch._foreach_*``) kernels: a handful of launches
        per term instead of a dozen per parameter and term (the per-parameter loop spent half
        of a MobileNetV3 step here on an H100)."""
        index = {id(p): k for k, p in enumerate(params)}
        for group in self.param_groups:
            weights = group["task_weights"]
            if len(term_grads) > 1 and len(weights) != len(term_grads):
                raise ValueError(f"{len(term_grads)} loss terms but task_weights has "
                                 f"{len(weights)} entries: {list(weights)}")
            ps = [p for p in group["params"]
                  if any(tg[index[id(p)]] is not None for tg in term_grads)]
            if not ps:
                continue
            terms = [self.state[p].setdefault("terms", {}) for p in ps]
            grads = [[tg[index[id(p)]] for p in ps] for tg in term_grads]
            num: list[torch.Tensor | None] = [None] * len(ps)
            den: list[torch.Tensor | None] = [None] * len(ps)
            anchor: list[torch.Tensor | None] = [None] * len(ps)
            if len(term_grads) > 1:  # one term: plain Adam, no norms to keep
                self._running_norms(terms, 0, [(k, g) for k, g in enumerate(grads[0])
                                               if g is not None], group["beta3"])
                anchor = [t.get(0, {}).get("norm") for t in terms]
            for i, term in enumerate(grads):
                ks = [k for k, g in enumerate(term) if g is not None]
                if not ks:
                    continue  # this term reaches none of the group: nothing to attribute
                g_list: list[torch.Tensor] = [term[k] for k in ks]  # type: ignore[misc]
                if i > 0:
                    self._rescale(terms, i, ks, g_list, anchor, weights, group["beta3"])
                contrib, denom = self._moments(terms, i, ks, g_list, group)
                _accumulate(ks, contrib, denom, num, den)
            updated = [p for p, d in zip(ps, den, strict=True) if d is not None]
            nums = [n for n in num if n is not None]
            dens = [d for d in den if d is not None]
            if group["weight_decay"]:
                torch._foreach_mul_(updated, 1 - group["lr"] * group["weight_decay"])
            torch._foreach_addcdiv_(updated, nums, dens, value=-group["lr"])

    @staticmethod
    def _running_norms(terms: list[dict[int, dict[str, Any]]], i: int,
                       reached: list[tuple[int, torch.Tensor]], beta3: float) -> None:
        """Update term ``i``'s running gradient norm of each (parameter index, gradient)."""
        if not reached:
            return
        fresh = torch._foreach_norm([g for _, g in reached])
        old, new = [], []
        for (k, _), norm in zip(reached, fresh, strict=True):
            t = terms[k].setdefault(i, {})
            if "norm" in t:
                old.append(t["norm"])
                new.append(norm)
            else:
                t["norm"] = norm
        if old:
            torch._foreach_mul_(old, beta3)
            torch._foreach_add_(old, new, alpha=1 - beta3)

    def _rescale(self, terms: list[dict[int, dict[str, Any]]], i: int, ks: list[int],
                 g_list: list[torch.Tensor], anchor: list[torch.Tensor | None],
                 weights: Sequence[float], beta3: float) -> None:
        """Scale term ``i``'s gradients (in ``g_list``) to the anchor's running norm times the
        weight ratio, where the anchor has a norm for that parameter."""
        pos = [j for j, k in enumerate(ks) if anchor[k] is not None]
        if not pos:
            return
        scaled = [ks[j] for j in pos]
        self._running_norms(terms, i, [(ks[j], g_list[j]) for j in pos], beta3)
        own = torch._foreach_clamp_min([terms[k][i]["norm"] for k in scaled], 1e-30)
        anchors = [a for a in (anchor[k] for k in scaled) if a is not None]
        ratio = torch._foreach_div(anchors, list(own))
        torch._foreach_mul_(ratio, weights[i] / weights[0])
        # tensors, not floats: no device sync
        out = torch._foreach_mul([g_list[j] for j in pos], ratio)
        for j, g in zip(pos, out, strict=True):
            g_list[j] = g

    def _moments(self, terms: list[dict[int, dict[str, Any]]], i: int, ks: list[int],
                 g_list: list[torch.Tensor], group: dict[str, Any]
                 ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Adam's moments of term ``i``; returns the bias-corrected first moments and the
        denominators ``sqrt(vhat) + eps`` for the parameters ``ks``."""
        beta1, beta2 = group["betas"]
        m, v, bias1, bias2_sqrt = [], [], [], []
        for k, g in zip(ks, g_list, strict=True):
            t = terms[k].setdefault(i, {})
            if "exp_avg" not in t:
                t["step"] = 0
                t["exp_avg"] = torch.zeros_like(g)
                t["exp_avg_sq"] = torch.zeros_like(g)
            t["step"] += 1
            m.append(t["exp_avg"])
            v.append(t["exp_avg_sq"])
            bias1.append(1 - beta1 ** t["step"])
            bias2_sqrt.append((1 - beta2 ** t["step"]) ** 0.5)
        torch._foreach_lerp_(m, g_list, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, g_list, g_list, value=1 - beta2)
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, bias2_sqrt)
        torch._foreach_add_(denom, group["eps"])
        return list(torch._foreach_div(m, bias1)), list(denom)


def _accumulate(ks: list[int], contrib: list[torch.Tensor], denom: list[torch.Tensor],
                num: list[torch.Tensor | None], den: list[torch.Tensor | None]) -> None:
    """Sum first moments and take the element-wise maximum of denominators over terms."""
    num_again: list[torch.Tensor] = []
    den_again: list[torch.Tensor] = []
    again: list[int] = []
    for j, k in enumerate(ks):
        n, d = num[k], den[k]
        if n is None or d is None:
            num[k], den[k] = contrib[j], denom[j]
        else:
            num_again.append(n)
            den_again.append(d)
            again.append(j)
    if again:
        torch._foreach_add_(num_again, [contrib[j] for j in again])
        torch._foreach_maximum_(den_again, [denom[j] for j in again])
