"""Known answers for the classical phase-retrieval baseline."""

import pytest
import torch

from genprior.operators import GaussianCS
from genprior.operators.phase import PhaseRetrieval
from genprior.solvers.phase_baselines import (
    SparseAmplitudeFlow,
    _amplitude_flow,
    spectral_start,
    tune_amplitude_flow_lambda,
)


def _correlation(a, b):
    a, b = a.flatten(1), b.flatten(1)
    return (a * b).sum(1).abs() / (a.norm(dim=1) * b.norm(dim=1))


def test_spectral_start_finds_the_direction_and_norm_with_many_measurements():
    generator = torch.Generator().manual_seed(0)
    A = torch.randn(4000, 20, generator=generator, dtype=torch.float64) / 4000**0.5
    x = torch.randn(3, 20, generator=generator, dtype=torch.float64)
    start = spectral_start(A, (x @ A.T).abs())
    assert _correlation(start, x).min() > 0.95
    torch.testing.assert_close(start.norm(dim=1), x.norm(dim=1), rtol=0.05, atol=0)


def test_amplitude_flow_converges_to_the_signal_from_nearby():
    torch.manual_seed(0)
    operator = PhaseRetrieval((1, 4, 4), 16, seed=3).double()
    x = torch.rand(2, 1, 4, 4, dtype=torch.float64)
    y = operator.apply(x)
    # Replace the spectral start by a point near the truth: the iteration must then converge.
    near = x.flatten(1) + 0.01 * torch.randn(2, 16, dtype=torch.float64)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("genprior.solvers.phase_baselines.spectral_start", lambda A, y, seed: near)
        estimate = _amplitude_flow(operator, y, "dct", [0.0], 3000, 0)[0]
    torch.testing.assert_close(estimate, x, atol=1e-6, rtol=0)


def test_estimates_take_the_non_negative_sign():
    operator = PhaseRetrieval((1, 4, 4), 12, seed=1).double()
    x = torch.rand(3, 1, 4, 4, dtype=torch.float64)
    result = SparseAmplitudeFlow("dct", 0.0, iters=50).solve(operator, operator.apply(x))
    assert (result.x.flatten(1).sum(1) >= 0).all()
    assert result.measurement_loss.shape == (3,)


def test_large_weight_shrinks_to_zero_and_tuning_prefers_the_better_weight():
    operator = PhaseRetrieval((1, 4, 4), 16, seed=2).double()
    x = torch.rand(4, 1, 4, 4, dtype=torch.float64)
    y = operator.apply(x)
    huge = SparseAmplitudeFlow("wavelet", 1e6, iters=20).solve(operator, y)
    assert huge.x.abs().max() == 0
    best, mse = tune_amplitude_flow_lambda(operator, x, y, "dct", [0.0, 1e6], iters=200)
    assert mse.shape == (2,)
    assert best == [0.0, 1e6][int(mse.argmin())]


def test_rejects_linear_operators_and_bad_settings():
    x = torch.rand(2, 1, 4, 4)
    cs = GaussianCS((1, 4, 4), 8, seed=0)
    with pytest.raises(TypeError, match="PhaseRetrieval"):
        SparseAmplitudeFlow().solve(cs, cs.apply(x))
    with pytest.raises(ValueError, match="lam"):
        SparseAmplitudeFlow(lam=-1.0)
    with pytest.raises(ValueError, match="transform"):
        SparseAmplitudeFlow(transform="fourier")
