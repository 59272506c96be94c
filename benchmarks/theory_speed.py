"""Speed of batched trials against a per-trial loop for one theory experiment point.

Both run the same math in the same process: R random ReLU networks (one per trial), their
Gaussian matrices, measurements and starting points, the same negation descent for a fixed
number of steps (no early stopping). The batched program runs all trials as one tensor
program; the loop solves trial after trial. The two are timed alternately ``--repeats`` times
and each keeps its best time. The default point is the phase transition's
[k, 700, 600] at m = 300; ``--problem spiked`` times a spiked Wigner point ([k, 250, 1700]).

    python benchmarks/theory_speed.py [--quick] [--trials 30] [--steps N] [--problem cs]

The last line reads ``speedup_vs_loop=<x>``.
"""

import argparse
import math
import time

import torch

from genprior.operators.linear import gaussian_matrix
from genprior.priors.random_relu import RandomReLUNetwork
from genprior.solvers.negation import NegationDescent
from genprior.solvers.spiked import SpikedDescent, spiked_wigner


def cs_point(trials: int, k: int) -> tuple:
    network = RandomReLUNetwork([k, 700, 600], trials=trials, seed=0)
    signal = network(network.unit_target())
    A = torch.stack([gaussian_matrix((600,), 300, seed=r) for r in range(trials)]).float()
    y = torch.bmm(signal.unsqueeze(1), A.transpose(1, 2))[:, 0]
    return network, (y, A)


def spiked_point(trials: int, k: int) -> tuple:
    network = RandomReLUNetwork([k, 250, 1700], trials=trials, seed=0)
    spike = network(network.unit_target())
    nu = 0.5 / math.sqrt(k * math.log(250**2 * 1700) / 1700)
    return network, spiked_wigner(spike, nu, seed=1)


def solve(problem: str, solver: object, network: RandomReLUNetwork, data: object, x0) -> object:
    if problem == "cs":
        y, A = data
        return solver.solve(network, y, A, x0=x0)
    return solver.solve(network, data, x0=x0)


def subset(problem: str, data: object, r: int) -> object:
    if problem == "cs":
        y, A = data
        return y[r : r + 1], A[r : r + 1]
    return data.subset(torch.tensor([r]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (well under a minute)")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--steps", type=int, default=None, help="descent steps (400; quick 150)")
    parser.add_argument("--problem", choices=["cs", "spiked"], default="cs")
    parser.add_argument("--repeats", type=int, default=3, help="alternating timed runs, best kept")
    args = parser.parse_args()
    steps = args.steps or (150 if args.quick else 400)
    torch.manual_seed(0)

    if args.problem == "cs":
        network, data = cs_point(args.trials, args.k)
        solver = NegationDescent(max_iters=steps, grad_tol=0.0)
        x0 = torch.randn(args.trials, args.k)
    else:
        network, data = spiked_point(args.trials, args.k)
        solver = SpikedDescent(max_iters=steps, grad_tol=0.0)
        x0 = 4e-4 * torch.randn(args.trials, args.k)
    solve(args.problem, solver, network, data, x0)  # warm-up

    def run_loop() -> list:
        return [
            solve(
                args.problem,
                solver,
                network.subset([r]),
                subset(args.problem, data, r),
                x0[r : r + 1],
            )
            for r in range(args.trials)
        ]

    # Alternate the two and keep each one's best time: robust to a machine that is not idle.
    batched_seconds = loop_seconds = float("inf")
    for _ in range(args.repeats):
        started = time.perf_counter()
        batched = solve(args.problem, solver, network, data, x0)
        batched_seconds = min(batched_seconds, time.perf_counter() - started)
        started = time.perf_counter()
        looped = run_loop()
        loop_seconds = min(loop_seconds, time.perf_counter() - started)

    signal_loop = torch.cat([result.signal for result in looped])
    scale = batched.signal.norm(dim=1).clamp_min(1e-12)
    difference = ((batched.signal - signal_loop).norm(dim=1) / scale).max().item()
    trial_steps = args.trials * steps
    print(f"problem={args.problem} trials={args.trials} k={args.k} steps={steps}")
    print(f"threads={torch.get_num_threads()} dtype={network.dtype} repeats={args.repeats}")
    print(f"batched: {batched_seconds:.3f} s ({1e6 * batched_seconds / trial_steps:.0f} us/step)")
    print(f"loop:    {loop_seconds:.3f} s ({1e6 * loop_seconds / trial_steps:.0f} us/step)")
    print(f"max relative difference of the estimates: {difference:.2e}")
    print(f"speedup_vs_loop={loop_seconds / batched_seconds:.2f}")


if __name__ == "__main__":
    main()
