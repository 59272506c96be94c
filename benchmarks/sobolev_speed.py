"""Speed of the Sobolev loss and its parameter gradient: forward mode, reverse mode, the
automatic choice, and the per-sample Python loop that users often write, in the same run.

Over a grid of output sizes P and directions per point K, one training step (the loss on a
batch of B points, then ``backward`` to the parameters of an MLP D -> 256 -> 256 -> P) is
timed for each way of computing the directional derivatives. Modes are timed in interleaved
rounds of about 30 ms each and the median is kept; ``auto`` is timed on its own, as users
call it. The loop (timed once, it is slow) differentiates every output of every point with its
own ``torch.autograd.grad(create_graph=True)`` call.

    python benchmarks/sobolev_speed.py [--quick] [--batch 128] [--dim 32]

The last line reads ``auto_vs_best=<worst ratio over the grid> speedup_vs_loop=<smallest
loop / auto ratio over the grid>``.
"""

import argparse
import itertools
import statistics
import time

import torch

from genprior.sobolev import SobolevData, choose_mode, sobolev_loss
from genprior.sobolev.training import mlp

ORDERS = list(itertools.permutations(["forward", "reverse", "auto"]))


def loop_loss(model: torch.nn.Module, data: SobolevData) -> torch.Tensor:
    """The per-sample loop: one Jacobian row per output per point, by autograd.grad."""
    value_terms, derivative_terms = [], []
    for b in range(len(data)):
        point = data.x[b : b + 1].clone().requires_grad_(True)
        out = model(point)[0]  # (P,)
        rows = [
            torch.autograd.grad(out[p], point, create_graph=True)[0][0] for p in range(len(out))
        ]
        jacobian = torch.stack(rows)  # (P, D)
        value_terms.append((out - data.y[b]).pow(2).sum())
        derivative_terms.append((data.v[b] @ jacobian.T - data.dy[b]).pow(2).sum())
    value = torch.stack(value_terms).sum() / data.y.numel()
    derivative = torch.stack(derivative_terms).sum() / data.dy.numel()
    return value + derivative


def step(model: torch.nn.Module, data: SobolevData, mode: str) -> float:
    """One loss + parameter-gradient evaluation; returns the loss."""
    model.zero_grad(set_to_none=True)
    loss = loop_loss(model, data) if mode == "loop" else sobolev_loss(model, data, mode=mode)
    loss.backward()
    return float(loss.detach())


def timed(model: torch.nn.Module, data: SobolevData, mode: str, seconds: float) -> float:
    """Seconds per step, averaged over as many consecutive steps as fit in ``seconds``.

    One untimed step comes first: the step after another mode's is slower (measured up to
    20% after a reverse-mode step with P = 64, from re-allocated memory).
    """
    step(model, data, mode)
    started = time.perf_counter()
    count = 0
    while True:
        step(model, data, mode)
        count += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return elapsed / count


def measure(
    outputs: int, directions: int, args: argparse.Namespace, rounds: int
) -> dict[str, float]:
    """Median seconds per step for each mode at one grid point, and the loss spread.

    Each sample averages the consecutive steps that fit in ``args.sample_ms``. The modes take
    turns within each round, cycling through the six orders, so slow drifts of the machine
    hit them alike.
    """
    generator = torch.Generator().manual_seed(outputs * 1000 + directions)
    model = mlp(args.dim, (256, 256), outputs, seed=0)
    x = torch.randn(args.batch, args.dim, generator=generator)
    v = torch.randn(args.batch, directions, args.dim, generator=generator)
    data = SobolevData(
        x,
        torch.randn(args.batch, outputs, generator=generator),
        v / v.norm(dim=2, keepdim=True),
        torch.randn(args.batch, directions, outputs, generator=generator),
    )
    modes = ["forward", "reverse", "auto"]
    losses = {mode: step(model, data, mode) for mode in modes}  # also warms up
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    for r in range(rounds):
        for mode in ORDERS[r % len(ORDERS)]:
            times[mode].append(timed(model, data, mode, args.sample_ms / 1e3))
    result = {mode: statistics.median(values) for mode, values in times.items()}
    started = time.perf_counter()
    losses["loop"] = step(model, data, "loop")
    result["loop"] = time.perf_counter() - started
    result["loss_spread"] = max(losses.values()) - min(losses.values())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller grid, fewer rounds")
    parser.add_argument("--batch", type=int, default=128, help="points per step B")
    parser.add_argument("--dim", type=int, default=32, help="input dimension D")
    parser.add_argument(
        "--sample-ms", type=float, default=30.0, help="length of one timing sample"
    )
    args = parser.parse_args()
    if args.quick:
        outputs_grid, directions_grid, rounds = (1, 4, 16, 64), (1, 4, 16), 9
    else:
        outputs_grid, directions_grid, rounds = (1, 2, 4, 8, 16, 32, 64), (1, 2, 4, 8, 16, 32), 15

    print(
        f"threads {torch.get_num_threads()}, B={args.batch}, D={args.dim}, "
        f"MLP {args.dim}-256-256-P (tanh), median of {rounds} interleaved rounds of "
        f"~{args.sample_ms:g} ms; loop timed once"
    )
    header = (
        f"{'P':>4}{'K':>4}{'forward ms':>12}{'reverse ms':>12}{'auto ms':>10}{'auto mode':>10}"
        f"{'auto/best':>10}{'loop ms':>10}{'loop/auto':>10}{'loss spread':>13}"
    )
    print(header)
    worst_ratio, smallest_speedup = 0.0, float("inf")
    for outputs in outputs_grid:
        for directions in directions_grid:
            t = measure(outputs, directions, args, rounds)
            ratio = t["auto"] / min(t["forward"], t["reverse"])
            speedup = t["loop"] / t["auto"]
            worst_ratio = max(worst_ratio, ratio)
            smallest_speedup = min(smallest_speedup, speedup)
            print(
                f"{outputs:>4}{directions:>4}{1e3 * t['forward']:>12.2f}"
                f"{1e3 * t['reverse']:>12.2f}{1e3 * t['auto']:>10.2f}"
                f"{choose_mode(outputs, directions, args.dim):>10}{ratio:>10.2f}"
                f"{1e3 * t['loop']:>10.0f}{speedup:>10.1f}{t['loss_spread']:>13.1e}",
                flush=True,
            )
    print(f"auto_vs_best={worst_ratio:.2f} speedup_vs_loop={smallest_speedup:.1f}")


if __name__ == "__main__":
    main()
