"""Speed of the batched CSGM solver against a per-image, per-restart loop, and its FLOP rate.

Both run the same math (same VAE, operator, initial codes, Adam settings and steps) in the
same process; the batched program solves all images and restarts as one tensor, the loop
solves each (image, restart) pair alone. The machine's float32 matrix-multiply rate is
measured in the same run, and the solver's achieved rate (forward and backward matrix
products counted) is reported as a share of it.

    python benchmarks/solver_speed.py [--quick] [--images 64] [--restarts 10] [--steps N]

The last line reads ``speedup_vs_loop=<x> flop_share=<y>``.
"""

import argparse
import resource
import time

import torch

from genprior.operators import GaussianCS
from genprior.priors import VAE, load_generator
from genprior.solvers.csgm import CSGMSolver


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """Best float32 matrix-multiply rate in FLOP/s over ``repeats`` products of size^3."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def step_flops(model: VAE, problems: int, m: int) -> float:
    """Matrix-product FLOPs of one solver step: forward, plus backward to the input only."""
    widths = [
        layer.in_features * layer.out_features
        for layer in model.decoder
        if isinstance(layer, torch.nn.Linear)
    ]
    forward = 2 * problems * (sum(widths) + model.output_shape[-1] ** 2 * m)
    return 2 * forward


def timed(function: object) -> tuple[object, float]:
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (about a minute)")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--steps", type=int, default=None, help="Adam steps (200; quick 40)")
    parser.add_argument("--m", type=int, default=100, help="measurements")
    parser.add_argument(
        "--loop-images",
        type=int,
        default=None,
        help="images the loop solves (all; quick 8); its time is scaled to all",
    )
    args = parser.parse_args()
    steps = args.steps or (40 if args.quick else 200)
    loop_images = min(args.loop_images or (8 if args.quick else args.images), args.images)

    model = load_generator("mnist-vae")
    operator = GaussianCS(model.output_shape, args.m, seed=0)
    z_true = torch.randn(args.images, model.latent_dim, generator=torch.Generator().manual_seed(1))
    y = operator(model(z_true))
    z0 = torch.randn(
        args.restarts, args.images, model.latent_dim, generator=torch.Generator().manual_seed(2)
    )
    batched_solver = CSGMSolver(model, steps=steps, restarts=args.restarts)
    single_solver = CSGMSolver(model, steps=steps, restarts=1)
    peak = matmul_peak()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    warm_up = CSGMSolver(model, steps=5, restarts=args.restarts)
    warm_up.solve(operator, y, z0=z0)  # first-touch allocations, thread pool start-up
    CSGMSolver(model, steps=5, restarts=1).solve(operator, y[:1], z0=z0[:1, :1])
    batched, batched_seconds = timed(lambda: batched_solver.solve(operator, y, z0=z0))
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def loop() -> torch.Tensor:
        losses = torch.empty(args.restarts, loop_images)
        for r in range(args.restarts):
            for b in range(loop_images):
                result = single_solver.solve(operator, y[b : b + 1], z0=z0[r : r + 1, b : b + 1])
                losses[r, b] = result.measurement_loss[0]
        return losses.min(0).values

    looped, loop_seconds = timed(loop)
    loop_seconds *= args.images / loop_images  # the loop's cost is linear in the images

    problems = args.images * args.restarts
    rate = step_flops(model, problems, args.m) * steps / batched_seconds
    difference = float((looped - batched.measurement_loss[:loop_images]).abs().max())
    speedup = loop_seconds / batched_seconds
    share = rate / peak
    print(f"{'threads':<38}{torch.get_num_threads()}")
    print(f"{'problems (images x restarts), steps':<38}{args.images} x {args.restarts}, {steps}")
    print(f"{'float32 matmul peak (2048^3)':<38}{peak / 1e9:.1f} GFLOP/s")
    print(f"{'batched solver':<38}{batched_seconds:.2f} s, {rate / 1e9:.1f} GFLOP/s")
    scaled = "" if loop_images == args.images else f" (timed on {loop_images} images, scaled)"
    print(f"{'per-image, per-restart loop':<38}{loop_seconds:.2f} s{scaled}")
    print(f"{'max |loss loop - loss batched|':<38}{difference:.2e}")
    print(
        f"{'peak RSS before / after batched solve':<38}{rss_before / 1024:.0f} / "
        f"{rss_after / 1024:.0f} MiB"
    )
    print(f"speedup_vs_loop={speedup:.1f} flop_share={share:.2f}")


if __name__ == "__main__":
    main()
