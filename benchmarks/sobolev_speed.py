"""Speed of the Sobolev loss and its parameter gradient: forward mode, reverse mode, the
automatic choice, and the per-sample Python loop that users often write, in the same run.

Over a grid of output sizes P and directions per point K, one training step (the loss on a
batch of B points, then ``backward`` to the parameters of an MLP D -> 256 -> 256 -> P) is
timed for each way of computing the directional derivatives. Modes are timed in interleaved
rounds and the median is kept. The loop differentiates every output of every point with its
own ``torch.autograd.grad(create_graph=True)`` call.

    python benchmarks/sobolev_speed.py [--quick] [--batch 128] [--dim 32]

The last line reads ``auto_vs_best=<worst ratio over the grid> speedup_vs_loop=<smallest
loop / auto ratio over the grid>``.
"""

import argparse
import statistics
import time

import torch

from genprior.sobolev import SobolevData, choose_mode, sobolev_loss
from genprior.sobolev.training import mlp


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


def timed(model: torch.nn.Module, data: SobolevData, mode: str) -> tuple[float, float]:
    started = time.perf_counter()
    loss = step(model, data, mode)
    return time.perf_counter() - started, loss


def measure(
    outputs: int, directions: int, args: argparse.Namespace, rounds: int
) -> dict[str, float]:
    """Median seconds per step for each mode at one grid point, and the loss spread."""
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
    for mode in modes:  # warm up
        step(model, data, mode)
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    losses = {}
    for _ in range(rounds):
        for mode in modes:
            seconds, losses[mode] = timed(model, data, mode)
            times[mode].append(seconds)
    loop_seconds, losses["loop"] = timed(model, data, "loop")
    result = {mode: statistics.median(values) for mode, values in times.items()}
    result["loop"] = loop_seconds
    result["loss_spread"] = max(losses.values()) - min(losses.values())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller grid, fewer rounds")
    parser.add_argument("--batch", type=int, default=128, help="points per step B")
    parser.add_argument("--dim", type=int, default=32, help="input dimension D")
    args = parser.parse_args()
    if args.quick:
        outputs_grid, directions_grid, rounds = (1, 4, 16, 64), (1, 4, 16), 7
    else:
        outputs_grid, directions_grid, rounds = (1, 2, 4, 8, 16, 32, 64), (1, 2, 4, 8, 16, 32), 11

    print(
        f"threads {torch.get_num_threads()}, B={args.batch}, D={args.dim}, "
        f"MLP {args.dim}-256-256-P (tanh), median of {rounds} interleaved rounds"
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
