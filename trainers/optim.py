"""Optimizers by name, with the settings of the optimizer-settings document as code defaults.

Defaults (lr, and the optimizer's own settings) from the 1000-class multi-task document:
SGD lr 0.01 momentum 0.9 wd 1e-4; SGD+Nesterov the same; Adam lr 0.001 betas (0.9, 0.999)
eps 1e-8; AdamW lr 0.001 wd 0.01; RMSprop lr 0.001 alpha 0.99 eps 1e-8; Adagrad lr 0.01
eps 1e-10 lr_decay 0; Adadelta lr 1.0 rho 0.9 eps 1e-6; MTAdamV2 lr 0.001 task weights
[0.5, 0.5]. NAdam and Adam with AMSGrad take Adam's settings (the document lists neither).
A value given explicitly in the config always wins over these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import torch

from trainers.mtadam import MTAdamV2

__all__ = ["OPTIMIZERS", "OPTIMIZER_DEFAULTS", "build_optimizer", "optimizer_settings"]

_ADAM = {"lr": 1e-3, "weight_decay": 0.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
OPTIMIZER_DEFAULTS: Mapping[str, Mapping[str, float]] = MappingProxyType({
    "sgd": MappingProxyType({"lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4}),
    "nesterov": MappingProxyType({"lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4}),
    "adam": MappingProxyType(dict(_ADAM)),
    "adamw": MappingProxyType({**_ADAM, "weight_decay": 0.01}),
    "rmsprop": MappingProxyType({"lr": 1e-3, "weight_decay": 0.0, "alpha": 0.99, "eps": 1e-8,
                                 "momentum": 0.0}),
    "adagrad": MappingProxyType({"lr": 0.01, "weight_decay": 0.0, "eps": 1e-10,
                                 "lr_decay": 0.0}),
    "adadelta": MappingProxyType({"lr": 1.0, "weight_decay": 0.0, "rho": 0.9, "eps": 1e-6}),
    "nadam": MappingProxyType(dict(_ADAM)),
    "amsgrad": MappingProxyType(dict(_ADAM)),
    "mtadamv2": MappingProxyType({**_ADAM}),
})
OPTIMIZERS = tuple(OPTIMIZER_DEFAULTS)


def optimizer_settings(name: str, explicit: Mapping[str, float | None]) -> dict[str, float]:
    """The document's defaults for ``name`` with every non-None explicit value on top.

    Keys the optimizer does not use are dropped, so a config's ``momentum`` does not leak into
    Adam. Raises naming the optimizer when it is unknown.
    """
    if name not in OPTIMIZER_DEFAULTS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {list(OPTIMIZERS)}")
    out = dict(OPTIMIZER_DEFAULTS[name])
    for key, value in explicit.items():
        if value is not None and key in out:
            out[key] = float(value)
    return out


def build_optimizer(name: str, groups: Iterable[dict[str, Any]], settings: Mapping[str, float],
                    *, task_weights: tuple[float, ...] = (0.5, 0.5)) -> torch.optim.Optimizer:
    """``groups`` carry their own ``weight_decay`` multiplier (1.0 or 0.0), applied to the
    resolved weight decay, so BatchNorm and bias parameters can be left undecayed."""
    s = dict(settings)
    wd = s.pop("weight_decay")
    param_groups = [{"params": g["params"], "weight_decay": wd * g.get("decay", 1.0)}
                    for g in groups]
    lr = s["lr"]
    if name in ("sgd", "nesterov"):
        return torch.optim.SGD(param_groups, lr=lr, momentum=s["momentum"],
                               nesterov=name == "nesterov")
    betas = (s.get("beta1", 0.9), s.get("beta2", 0.999))
    if name in ("adam", "amsgrad"):
        return torch.optim.Adam(param_groups, lr=lr, betas=betas, eps=s["eps"],
                                amsgrad=name == "amsgrad")
    if name == "adamw":
        return torch.optim.AdamW(param_groups, lr=lr, betas=betas, eps=s["eps"])
    if name == "nadam":
        return torch.optim.NAdam(param_groups, lr=lr, betas=betas, eps=s["eps"])
    if name == "rmsprop":
        return torch.optim.RMSprop(param_groups, lr=lr, alpha=s["alpha"], eps=s["eps"],
                                   momentum=s["momentum"])
    if name == "adagrad":
        return torch.optim.Adagrad(param_groups, lr=lr, eps=s["eps"], lr_decay=s["lr_decay"])
    if name == "adadelta":
        return torch.optim.Adadelta(param_groups, lr=lr, rho=s["rho"], eps=s["eps"])
    if name == "mtadamv2":
        return MTAdamV2(param_groups, lr=lr, betas=betas, eps=s["eps"],
                        task_weights=task_weights)
    raise AssertionError(f"optimizer {name!r} is in OPTIMIZER_DEFAULTS but not built")
