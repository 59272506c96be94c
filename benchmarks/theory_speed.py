"""Speed of the batched theory experiments against a per-trial loop, in the same process.

Both sides run the same math: R random ReLU networks (one per trial), their Gaussian
matrices, measurements and starts, and the same negation descent for a fixed number of
steps (no early stopping). Two comparisons, each timed alternately ``--repeats`` times with
the best time kept:

- one point: the R trials of [k, 700, 600] at m = 300 as one batch, against solving trial
  after trial;
- a curve: the P latent sizes of the phase transition's [k, 700, 600] curve (k = 5 ... 150,
  sharing each trial's draws, as ``genprior theory phase-transition`` runs them) stacked in
  one batch, against solving every (trial, k) pair alone, and against one batch of trials
  per k run one k after another (``--independent-points``). This is what the experiments
  run.

In float32 the estimates of the two sides may differ after a few hundred unconverged steps:
a different batch width rounds differently, which can change one negation decision. In
float64 they agree to 1e-15.

``--problem spiked`` times one spiked Wigner point ([k, 250, 1700]) instead, with no curve.

    python benchmarks/theory_speed.py [--quick] [--trials 30] [--steps N] [--problem cs]

The last line reads ``speedup_vs_loop=<x>``: the curve's speed-up for cs, the point's for
spiked.
"""

import argparse
import math
import time
from collections.abc import Callable

import torch

from genprior.operators.linear import gaussian_matrix
from genprior.priors.random_relu import RandomReLUNetwork
from genprior.solvers.negation import NegationDescent
from genprior.solvers.spiked import SpikedDescent, spiked_wigner

CURVE_KS = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 135, 150)


def best_times(runs: list[Callable], repeats: int) -> tuple[list[float], list]:
    """Best wall times of callables run in turn ``repeats`` times, and their last results."""
    times, results = [float("inf")] * len(runs), [None] * len(runs)
    for _ in range(repeats):
        for i, run in enumerate(runs):
            started = time.perf_counter()
            results[i] = run()
            times[i] = min(times[i], time.perf_counter() - started)
    return times, results


def cs_data(trials: int, k: int) -> tuple:
    network = RandomReLUNetwork([k, 700, 600], trials=trials, seed=0)
    signal = network(network.unit_target())
    A = torch.stack([gaussian_matrix((600,), 300, seed=r) for r in range(trials)])
    A = A.to(network.dtype)
    y = torch.bmm(signal.unsqueeze(1), A.transpose(1, 2))[:, 0]
    return network, y, A


def cs_point(args: argparse.Namespace, steps: int) -> float:
    """One point: R trials batched against a loop over trials; returns the speed-up."""
    network, y, A = cs_data(args.trials, args.k)
    solver = NegationDescent(max_iters=steps, grad_tol=0.0)
    x0 = torch.randn(args.trials, args.k)
    solver.solve(network, y, A, x0=x0)  # warm-up

    def loop() -> torch.Tensor:
        return torch.cat(
            [
                solver.solve(network.subset([r]), y[r : r + 1], A[r : r + 1], x0=x0[r : r + 1]).x
                for r in range(args.trials)
            ]
        )

    (batched, looped), (stacked_x, loop_x) = best_times(
        [lambda: solver.solve(network, y, A, x0=x0).x, loop], args.repeats
    )
    report("one point", f"k={args.k}", args.trials * steps, batched, looped, stacked_x, loop_x)
    return looped / batched


def cs_curve(args: argparse.Namespace, steps: int) -> float:
    """The phase-transition curve: P stacked points against a loop over (trial, point)."""
    ks = CURVE_KS
    network, y, A = cs_data(args.trials, max(ks))
    solver = NegationDescent(max_iters=steps, grad_tol=0.0)
    x0 = torch.randn(args.trials, max(ks))
    singles = [RandomReLUNetwork.from_weights([network.W1[:, :, :k], network.W2]) for k in ks]

    def stacked() -> torch.Tensor:
        return solver.solve(network, y, A, x0=x0, latent_sizes=ks).signal

    def loop() -> torch.Tensor:
        signals = [
            [
                solver.solve(
                    single.subset([r]), y[r : r + 1], A[r : r + 1], x0=x0[r : r + 1, :k]
                ).signal
                for k, single in zip(ks, singles)
            ]
            for r in range(args.trials)
        ]
        return torch.stack([torch.cat(row) for row in signals])  # (R, P, N)

    def per_point() -> torch.Tensor:
        signals = [
            solver.solve(single, y, A, x0=x0[:, :k]).signal for k, single in zip(ks, singles)
        ]
        return torch.stack(signals, dim=1)

    stacked()  # warm-up
    times, results = best_times([stacked, per_point, loop], args.repeats)
    label = f"P={len(ks)} k={ks[0]}..{ks[-1]}"
    work = args.trials * len(ks) * steps
    report("curve, stacked vs loop", label, work, times[0], times[2], results[0], results[2])
    print(f"  one batch per k, one k after another: {times[1]:.3f} s")
    print(f"speedup_vs_batch_per_point={times[1] / times[0]:.2f}")
    return times[2] / times[0]


def spiked_point(args: argparse.Namespace, steps: int) -> float:
    network = RandomReLUNetwork([args.k, 250, 1700], trials=args.trials, seed=0)
    spike = network(network.unit_target())
    nu = 0.5 / math.sqrt(args.k * math.log(250**2 * 1700) / 1700)
    data = spiked_wigner(spike, nu, seed=1)
    solver = SpikedDescent(max_iters=steps, grad_tol=0.0)
    x0 = 4e-4 * torch.randn(args.trials, args.k)
    solver.solve(network, data, x0=x0)  # warm-up

    def loop() -> torch.Tensor:
        return torch.cat(
            [
                solver.solve(
                    network.subset([r]), data.subset(torch.tensor([r])), x0=x0[r : r + 1]
                ).signal
                for r in range(args.trials)
            ]
        )

    (batched, looped), (batch_g, loop_g) = best_times(
        [lambda: solver.solve(network, data, x0=x0).signal, loop], args.repeats
    )
    report("one point", f"k={args.k}", args.trials * steps, batched, looped, batch_g, loop_g)
    return looped / batched


def report(
    name: str,
    label: str,
    work: int,
    batched: float,
    looped: float,
    first: torch.Tensor,
    second: torch.Tensor,
) -> None:
    """Print one comparison; ``work`` counts (trial, point, step) triples."""
    scale = first.norm(dim=-1).clamp_min(1e-12)
    difference = ((first - second).norm(dim=-1) / scale).max().item()
    print(f"{name} ({label}):")
    print(f"  batched: {batched:.3f} s ({1e6 * batched / work:.1f} us per trial-point-step)")
    print(f"  loop:    {looped:.3f} s ({1e6 * looped / work:.1f} us per trial-point-step)")
    print(f"  speed-up {looped / batched:.2f}; max relative difference {difference:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats (~1 min)")
    parser.add_argument("--trials", type=int, default=30, help="independent networks R")
    parser.add_argument("--k", type=int, default=20, help="latent size of the one-point case")
    parser.add_argument("--steps", type=int, default=None, help="descent steps (300; quick 40)")
    parser.add_argument(
        "--problem",
        choices=["cs", "spiked"],
        default="cs",
        help="cs: compressed sensing point and curve; spiked: one spiked Wigner point",
    )
    parser.add_argument("--repeats", type=int, default=None, help="alternating runs (3; quick 2)")
    args = parser.parse_args()
    steps = args.steps or (40 if args.quick else 300)
    args.repeats = args.repeats or (2 if args.quick else 3)
    torch.manual_seed(0)
    print(f"problem={args.problem} trials={args.trials} steps={steps} repeats={args.repeats}")
    print(f"threads={torch.get_num_threads()} dtype={torch.get_default_dtype()}")

    if args.problem == "spiked":
        speedup = spiked_point(args, steps)
    else:
        print(f"speedup_one_point={cs_point(args, steps):.2f}")
        speedup = cs_curve(args, steps)
    print(f"speedup_vs_loop={speedup:.2f}")


if __name__ == "__main__":
    main()
