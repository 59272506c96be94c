"""Small networks and a full-batch trainer for value-only or Sobolev fitting."""

import logging
from dataclasses import dataclass

import torch

from genprior.errors import check_choice
from genprior.sobolev.loss import SobolevData, sobolev_terms

logger = logging.getLogger(__name__)

METHODS = ("values", "sobolev")
ACTIVATIONS = {"tanh": torch.nn.Tanh, "silu": torch.nn.SiLU, "softplus": torch.nn.Softplus}


def mlp(
    dim: int,
    hidden: tuple[int, ...],
    outputs: int,
    *,
    activation: str = "tanh",
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> torch.nn.Sequential:
    """A fully connected network D -> hidden... -> P with a smooth activation.

    A smooth activation matters for Sobolev training: a ReLU network's input gradient is
    piecewise constant, so its derivative fit would be coarse.
    """
    check_choice("activation", activation, list(ACTIVATIONS))
    sizes = (dim, *hidden)
    layers: list[torch.nn.Module] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(fan_in, fan_out, dtype=dtype), ACTIVATIONS[activation]()]
        layers.append(torch.nn.Linear(sizes[-1], outputs, dtype=dtype))
    return torch.nn.Sequential(*layers)


@dataclass(frozen=True)
class FitConfig:
    """Settings of :func:`fit`.

    Attributes:
        steps: full-batch Adam steps.
        lr: initial learning rate, decayed to lr/100 by a cosine schedule.
        value_weight: weight of the value term.
        derivative_weight: weight of the derivative term (used by method ``sobolev`` only).
        mode: derivative mode, ``auto``, ``forward`` or ``reverse``.
    """

    steps: int = 1000
    lr: float = 1e-2
    value_weight: float = 1.0
    derivative_weight: float = 1.0
    mode: str = "auto"


def fit(model: torch.nn.Module, data: SobolevData, method: str, config: FitConfig) -> list[float]:
    """Train ``model`` on ``data`` by values only or by values and derivatives.

    Args:
        model: maps x (B, D) to y's shape.
        data: the training set; method ``values`` ignores v and dy.
        method: ``values`` or ``sobolev``.
        config: steps, learning rate, weights, mode.

    Returns:
        The training loss at every step.
    """
    check_choice("method", method, METHODS)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(config.steps, 1), eta_min=config.lr / 100
    )
    losses = []
    for _ in range(config.steps):
        optimizer.zero_grad(set_to_none=True)
        if method == "values":
            loss = config.value_weight * (model(data.x) - data.y).pow(2).mean()
        else:
            terms = sobolev_terms(model, data, mode=config.mode)
            loss = config.value_weight * terms.value + config.derivative_weight * terms.derivative
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return losses
