"""Random ReLU generators G(x) = relu(W_d ... relu(W_1 x)), a batch of independent networks.

The theory of Hand & Voroninski (arXiv 1705.07576), Huang et al. (arXiv 1812.04176) and Cocola
(arXiv 2204.13599) is about such networks: widths [K, n_1, ..., n_d], no biases, weights
W_i (n_i, n_{i-1}) with i.i.d. N(0, 1/n_i) entries. One :class:`RandomReLUNetwork` holds R
independent networks (one per Monte-Carlo trial) as stacked weights (R, n_i, n_{i-1}), so a
whole experiment point runs as one tensor program.

G is positively homogeneous (G(c x) = c G(x) for c >= 0), so the weight scale only rescales
the latent space; experiments normalise the target so that ||G(x*)|| = 1.

Shapes: R trials (networks), S latent points per network (starts), K latent size, N = n_d
output size.
"""

import logging
import numbers
from collections.abc import Sequence

import numpy as np
import torch

from genprior.errors import NonFiniteError, ShapeError
from genprior.priors.base import Generator

logger = logging.getLogger(__name__)

__all__ = ["RandomReLUNetwork", "check_widths", "trial_generator"]


def check_widths(widths: Sequence[int]) -> tuple[int, ...]:
    """Return widths [K, n_1, ..., n_d] as a tuple of ints, or raise ValueError.

    Args:
        widths: the latent size followed by at least one layer width; positive integers.
    """
    ok = isinstance(widths, list | tuple) and len(widths) >= 2
    ok = ok and all(
        isinstance(w, numbers.Integral) and not isinstance(w, bool) and w >= 1 for w in widths
    )
    if not ok:
        raise ValueError(
            "widths must be a list of at least two positive integers [k, n1, ..., nd]; "
            f"received {widths!r}"
        )
    return tuple(int(w) for w in widths)


def trial_generator(seed: int, trial: int, stream: int = 0) -> torch.Generator:
    """A torch.Generator for one trial, independent of how many trials are drawn together.

    Args:
        seed: the experiment's seed.
        trial: the trial's index r.
        stream: separates the draws of one trial (weights, sensing matrix, noise, start...).
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer; received {seed!r}")
    state = np.random.SeedSequence([int(seed) % 2**63, int(trial), int(stream)]).generate_state(2)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


class RandomReLUNetwork(Generator):
    """R independent random ReLU networks of the same widths, evaluated together.

    As a :class:`~genprior.priors.base.Generator`, ``G(z)`` maps z (R, K) to (R, N), row r
    through network r (with R = 1, any batch goes through the one network). The batched
    methods take latent points x (R, S, K).

    Args:
        widths: [K, n_1, ..., n_d], positive integers.
        trials: R, the number of independent networks.
        seed: trial r's weights come from :func:`trial_generator` (seed, r), so a network does
            not depend on how many others are drawn with it.
        dtype: dtype of the weights (default: torch's default dtype).
        weight_std: entries of W_i are N(0, (weight_std^2) / n_i); 1 is the papers' scaling.
    """

    def __init__(
        self,
        widths: Sequence[int],
        *,
        trials: int = 1,
        seed: int = 0,
        dtype: torch.dtype | None = None,
        weight_std: float = 1.0,
    ) -> None:
        widths = check_widths(widths)
        if isinstance(trials, bool) or not isinstance(trials, numbers.Integral) or trials < 1:
            raise ValueError(f"trials must be an integer >= 1; received {trials!r}")
        if not (isinstance(weight_std, numbers.Real) and 0 < weight_std < float("inf")):
            raise ValueError(f"weight_std must be a finite number > 0; received {weight_std!r}")
        dtype = dtype or torch.get_default_dtype()
        layers = []
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
            draws = [
                torch.randn(n_out, n_in, generator=trial_generator(seed, r, i), dtype=dtype)
                for r in range(trials)
            ]
            layers.append(torch.stack(draws) * (weight_std / n_out**0.5))  # (R, n_i, n_{i-1})
        super().__init__()
        self._set_weights(layers)
        self.seed = seed
        logger.debug("built %d random ReLU networks of widths %s", trials, widths)

    @classmethod
    def from_weights(cls, weights: Sequence[torch.Tensor]) -> "RandomReLUNetwork":
        """Wrap given weight matrices, e.g. a trained network's, as a (batch of) network(s).

        Args:
            weights: W_1, ..., W_d, each (n_i, n_{i-1}) for one network or (R, n_i, n_{i-1})
                for R networks; consecutive shapes must chain.

        Raises:
            ShapeError: for shapes that do not chain or disagree on R.
            NonFiniteError: for weights holding NaN or inf.
        """
        if not isinstance(weights, list | tuple) or not weights:
            raise ShapeError(
                f"weights must be a non-empty list of matrices; received {type(weights)}"
            )
        stacked = []
        for i, w in enumerate(weights):
            if not isinstance(w, torch.Tensor) or w.ndim not in (2, 3):
                shape = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
                raise ShapeError(
                    f"weights[{i}] must be a tensor (n_out, n_in) or (R, n_out, n_in); "
                    f"received {shape}"
                )
            stacked.append(w.detach().unsqueeze(0) if w.ndim == 2 else w.detach())
        for i, w in enumerate(stacked):
            if not torch.isfinite(w).all():
                raise NonFiniteError(f"weights[{i}] holds NaN or infinite values")
            if i and (w.shape[2] != stacked[i - 1].shape[1] or w.shape[0] != stacked[0].shape[0]):
                raise ShapeError(
                    f"weights[{i}] must have shape (R={stacked[0].shape[0]}, n, "
                    f"{stacked[i - 1].shape[1]}) to follow weights[{i - 1}]; "
                    f"received {tuple(w.shape)}"
                )
        network = cls.__new__(cls)
        Generator.__init__(network)
        network._set_weights(stacked)
        network.seed = None
        return network

    def _set_weights(self, layers: list[torch.Tensor]) -> None:
        self.widths = (layers[0].shape[2], *(w.shape[1] for w in layers))
        self.trials = layers[0].shape[0]
        self.latent_dim = self.widths[0]
        self.output_shape = (self.widths[-1],)
        self.depth = len(layers)
        for i, w in enumerate(layers):
            self.register_buffer(f"W{i + 1}", w.contiguous())

    @property
    def weights(self) -> list[torch.Tensor]:
        """[W_1, ..., W_d], each (R, n_i, n_{i-1})."""
        return [getattr(self, f"W{i + 1}") for i in range(self.depth)]

    @property
    def dtype(self) -> torch.dtype:
        """The weights' dtype."""
        return self.W1.dtype

    def subset(self, index: torch.Tensor | Sequence[int]) -> "RandomReLUNetwork":
        """The networks ``index`` (R',) as a new batch (weights copied)."""
        index = torch.as_tensor(index, dtype=torch.long)
        return RandomReLUNetwork.from_weights([w[index] for w in self.weights])

    # -- evaluation ----------------------------------------------------------------------
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(R, K) -> (R, N), row r through network r; with R = 1, (B, K) -> (B, N)."""
        if self.trials == 1:
            return self.trials_forward(z.unsqueeze(0))[0]
        if z.shape[0] != self.trials:
            raise ShapeError(
                f"z must have one row per network, shape ({self.trials}, {self.latent_dim}); "
                f"received {tuple(z.shape)}"
            )
        return self.trials_forward(z.unsqueeze(1))[:, 0]

    def trials_forward(self, x: torch.Tensor) -> torch.Tensor:
        """G(x) for latent points x (R, S, K) -> (R, S, N), without checks."""
        for w in self.weights:
            x = torch.relu(torch.bmm(x, w.transpose(1, 2)))
        return x

    def forward_with_masks(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """G(x) (R, S, N) and each layer's activity pattern (R, S, n_i) as booleans."""
        masks = []
        for w in self.weights:
            pre = torch.bmm(x, w.transpose(1, 2))  # (R, S, n_i)
            mask = pre > 0
            x = pre * mask
            masks.append(mask)
        return x, masks

    def vjp(self, masks: list[torch.Tensor], g: torch.Tensor) -> torch.Tensor:
        """Lambda_x^T g: pull g (R, S, N) back to the latent space (R, S, K).

        Lambda_x = W_{d,+,x} ... W_{1,+,x}, where W_{i,+,x} is W_i with the rows inactive at x
        zeroed; it is the Jacobian of G at x (away from the measure-zero kinks).
        """
        for w, mask in zip(reversed(self.weights), reversed(masks)):
            g = torch.bmm(g * mask, w)
        return g

    def jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """Lambda_x, (R, N, K), at one latent point per network x (R, K).

        Built layer by layer from the activity patterns (used to check autograd in tests and
        by the condition checker).
        """
        self._check_points(x.unsqueeze(1), "x")
        _, masks = self.forward_with_masks(x.unsqueeze(1))
        lam = None
        for w, mask in zip(self.weights, masks):
            w_plus = w * mask.transpose(1, 2)  # (R, n_i, n_{i-1}), inactive rows zeroed
            lam = w_plus if lam is None else torch.bmm(w_plus, lam)
        return lam

    def unit_target(
        self, direction: int = 1, *, seed: int = 0, support: int | None = None
    ) -> torch.Tensor:
        """x* (R, K): the basis vector e_direction scaled per network so ||G(x*)|| = 1.

        Positive homogeneity makes the rescaling exact. The papers' experiments use e_2
        (direction 1, counting from 0). A network that maps e_direction to 0 (possible when a
        layer is narrow) gets a Gaussian direction drawn from (seed, r) instead, in the first
        ``support`` coordinates (default: all K), so that it also suits the networks
        restricted to them.
        """
        support = self.latent_dim if support is None else support
        if not 0 <= direction < support <= self.latent_dim:
            raise ValueError(
                f"direction must be in 0..{support - 1} and support in 1..{self.latent_dim} "
                f"(the latent size); received direction {direction}, support {support}"
            )
        x = torch.zeros(self.trials, 1, self.latent_dim, dtype=self.dtype)
        x[..., direction] = 1.0
        norm = self.trials_forward(x).norm(dim=-1, keepdim=True)  # (R, 1, 1)
        for attempt in range(100):
            dead = (norm[:, 0, 0] == 0).nonzero().squeeze(1).tolist()
            if not dead:
                return (x / norm)[:, 0]
            for r in dead:
                gen = trial_generator(seed, r, 1000 + attempt)
                x[r, 0, :support] = torch.randn(support, generator=gen, dtype=torch.float64)
            norm = self.trials_forward(x).norm(dim=-1, keepdim=True)
        raise ValueError("G(x) = 0 for 100 random directions of some network; widen its layers")

    def _check_points(self, x: torch.Tensor, name: str) -> None:
        expected = (self.trials, self.latent_dim)
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or (x.shape[0], x.shape[2]) != expected:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ShapeError(
                f"{name} must have shape (R={expected[0]}, S, K={expected[1]}) or "
                f"(R, K); received {shape}"
            )
        if not torch.isfinite(x).all():
            raise NonFiniteError(f"{name} holds NaN or infinite values")

    def extra_repr(self) -> str:
        return f"widths={list(self.widths)}, trials={self.trials}"
