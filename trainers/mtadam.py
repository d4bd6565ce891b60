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
                p.grad = None
            loss.backward(retain_graph=i < len(losses) - 1)
            term_grads.append([None if p.grad is None else p.grad.detach().clone()
                               for p in params])
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
        index = {id(p): k for k, p in enumerate(params)}
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            weights = group["task_weights"]
            if len(term_grads) > 1 and len(weights) != len(term_grads):
                raise ValueError(f"{len(term_grads)} loss terms but task_weights has "
                                 f"{len(weights)} entries: {list(weights)}")
            for p in group["params"]:
                grads = [tg[index[id(p)]] for tg in term_grads]
                if all(g is None for g in grads):
                    continue
                state = self.state[p]
                if not state:
                    state["terms"] = {}
                terms: dict[int, dict[str, Any]] = state["terms"]
                numerator = torch.zeros_like(p)
                denominator: torch.Tensor | None = None
                balance = len(grads) > 1  # one term: plain Adam, no norms to keep
                anchor_norm = (self._running_norm(terms, 0, grads[0], group["beta3"])
                               if balance else None)
                for i, g in enumerate(grads):
                    if g is None:
                        continue  # this term does not reach p: nothing to attribute
                    if i > 0 and anchor_norm is not None:
                        own = self._running_norm(terms, i, g, group["beta3"])
                        assert own is not None
                        # tensors, not floats: no device sync per parameter
                        scale = (weights[i] / weights[0]) * anchor_norm / own.clamp_min(1e-30)
                        g = g * scale
                    t = terms.setdefault(i, {})
                    if "exp_avg" not in t:
                        t["step"] = 0
                        t["exp_avg"] = torch.zeros_like(p)
                        t["exp_avg_sq"] = torch.zeros_like(p)
                    t["step"] += 1
                    t["exp_avg"].lerp_(g, 1 - beta1)
                    t["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=1 - beta2)
                    bias1 = 1 - beta1 ** t["step"]
                    bias2_sqrt = (1 - beta2 ** t["step"]) ** 0.5
                    denom = (t["exp_avg_sq"].sqrt() / bias2_sqrt).add_(group["eps"])
                    numerator.add_(t["exp_avg"], alpha=1 / bias1)
                    denominator = denom if denominator is None else torch.maximum(denominator,
                                                                                  denom)
                if denominator is None:
                    continue
                if group["weight_decay"]:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                p.addcdiv_(numerator, denominator, value=-group["lr"])

    @staticmethod
    def _running_norm(terms: dict[int, dict[str, Any]], i: int, g: torch.Tensor | None,
                      beta3: float) -> torch.Tensor | None:
        if g is None:
            return terms.get(i, {}).get("norm")
        t = terms.setdefault(i, {})
        norm = torch.linalg.vector_norm(g)
        t["norm"] = norm if "norm" not in t else t["norm"].mul(beta3).add_(norm, alpha=1 - beta3)
        return t["norm"]
