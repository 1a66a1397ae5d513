"""Benchmark: batched explainers vs a row-by-row loop of the same math (SCIENCE.md §4, §7).

On the cake-on-sea test split, with a seeded (untrained) MLP classifier and NICE: path timing
does not depend on training quality, because every path has exactly n_steps + 1 points.
The row loop runs the library's own per-chunk math on one row at a time, on a subset of rows,
and is scaled per path; both sides time the same work (sources, latents, decoded points; the
classification of the path points is evaluation and is not timed). Batched and looped runs
alternate for ``--rounds`` rounds and the medians are reported.
Goals: batched >= 50x the row loop; Latent Shift >= 10x faster per step than REVISE.

    PYTHONPATH=. python benchmarks/explainers.py [--device cpu|cuda] [--row-subset 200]
        [--rounds 3] [--threads N]
"""

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import Tensor, nn

from tabs_assets.config.datasets import CakeOnSeaConfig
from tabs_assets.config.explainers import ExplainerConfig, LatentShiftConfig, ReviseConfig
from tabs_assets.config.losses import GeneralValidityLoss
from tabs_assets.science.datasets.cake_on_sea import make_cake_on_sea
from tabs_assets.science.datasets.prepared import prepare_dataset
from tabs_assets.science.explainers.explain import default_device, explain, path_latents
from tabs_assets.science.explainers.paths import draw_targets
from tabs_assets.science.models.classifier import MLPClassifier
from tabs_assets.science.models.nice import Nice

RESULTS = Path(__file__).parent / "results" / "explainers.json"
LOSS = GeneralValidityLoss()  # LossLogitSource, the loss the research used for paths
METHODS: dict[str, ExplainerConfig] = {
    "latent_shift": LatentShiftConfig(),
    "revise": ReviseConfig(),
}
BATCHED_GOAL, PER_STEP_GOAL = 50.0, 10.0


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def test_split() -> tuple[Tensor, int]:
    config = CakeOnSeaConfig()
    data = prepare_dataset(make_cake_on_sea(config), config.split)
    features, _ = data.split_arrays("test")
    return torch.from_numpy(features), data.n_classes


def models(input_dim: int, n_classes: int, device: torch.device) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(42)
    classifier = MLPClassifier(input_dim, n_classes).to(device).eval()
    flow = Nice(input_dim).to(device).eval()
    return classifier, flow


def row_loop(
    inputs: Tensor,
    targets: Tensor,
    classifier: nn.Module,
    flow: nn.Module,
    config: ExplainerConfig,
    device: torch.device,
) -> tuple[Tensor, float]:
    """The same math one row at a time (benchmark-only reference): points [S, N, D], seconds.

    Times what ``explain`` times: the source, the latents and the decoded points.
    """
    rows = []
    synchronize(device)
    start = time.perf_counter()
    for x, t in zip(inputs.to(device), targets.to(device), strict=True):
        with torch.no_grad():
            source = classifier(x[None]).argmax(-1)
        latents = path_latents(x[None], source, t[None], classifier, flow, config, LOSS)
        with torch.no_grad():
            rows.append(flow.decode(latents))
    synchronize(device)
    seconds = time.perf_counter() - start
    return torch.cat(rows, dim=1).cpu(), seconds


def rates(seconds: float, n_paths: int, n_points: int) -> dict[str, float]:
    return {
        "paths": n_paths,
        "seconds": seconds,
        "paths_per_second": n_paths / seconds,
        "ns_per_step": seconds / (n_paths * n_points) * 1e9,
    }


def benchmark(device: torch.device, row_subset: int, rounds: int, chunk_size: int) -> dict:
    inputs, n_classes = test_split()
    classifier, flow = models(inputs.shape[1], n_classes, device)
    with torch.no_grad():
        sources = classifier(inputs.to(device)).argmax(-1).cpu()
    targets = draw_targets(sources, n_classes, seed=0)
    subset = slice(0, row_subset)
    results: dict = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "platform": platform.platform(),
        "rows": len(inputs),
        "input_dim": int(inputs.shape[1]),
        "n_classes": n_classes,
        "chunk_size": chunk_size,
        "row_subset": row_subset,
        "rounds": rounds,
        "loss": LOSS.label,
        "methods": {},
    }
    batched_seconds: dict[str, list[float]] = {name: [] for name in METHODS}
    loop_seconds: dict[str, list[float]] = {name: [] for name in METHODS}
    differences: dict[str, float] = dict.fromkeys(METHODS, 0.0)
    for config in METHODS.values():  # warm-up (allocator, kernels)
        explain(inputs[:256], targets[:256], classifier, flow, config, LOSS, chunk_size, device)
    # Batched and looped runs alternate, so load from other processes hits both alike.
    for _ in range(rounds):
        for name, config in METHODS.items():
            paths = explain(inputs, targets, classifier, flow, config, LOSS, chunk_size, device)
            batched_seconds[name].append(paths.seconds)
            points, seconds = row_loop(
                inputs[subset], targets[subset], classifier, flow, config, device
            )
            loop_seconds[name].append(seconds)
            # The loop computes the same paths as the batched call.
            difference = float((points - paths.points[:, subset]).abs().max())
            differences[name] = max(differences[name], difference)
    for name, config in METHODS.items():
        n_points = config.n_steps + 1
        batched = rates(statistics.median(batched_seconds[name]), len(inputs), n_points)
        looped = rates(statistics.median(loop_seconds[name]), len(inputs[subset]), n_points)
        results["methods"][name] = {
            "n_points_per_path": n_points,
            "batched": batched,
            "row_loop": looped,
            "batched_seconds_per_round": batched_seconds[name],
            "row_loop_seconds_per_round": loop_seconds[name],
            "speedup_batched_vs_row_loop": looped["ns_per_step"] / batched["ns_per_step"],
            "max_abs_difference_row_loop_vs_batched": differences[name],
        }
    shift, revise = results["methods"]["latent_shift"], results["methods"]["revise"]
    results["latent_shift_vs_revise_per_step"] = {
        kind: revise[kind]["ns_per_step"] / shift[kind]["ns_per_step"]
        for kind in ("batched", "row_loop")
    }
    results["goals"] = {
        "batched_vs_row_loop_at_least": BATCHED_GOAL,
        "latent_shift_vs_revise_per_step_at_least": PER_STEP_GOAL,
        "met": all(
            m["speedup_batched_vs_row_loop"] >= BATCHED_GOAL for m in results["methods"].values()
        )
        and results["latent_shift_vs_revise_per_step"]["batched"] >= PER_STEP_GOAL,
    }
    return results


def table(results: dict) -> str:
    lines = [
        f"device {results['device_name']}, {results['rows']} test rows, "
        f"D = {results['input_dim']}, row loop on {results['row_subset']} rows",
        f"{'method':<14}{'mode':<10}{'paths/s':>12}{'ns/step':>12}{'batched/loop':>14}",
    ]
    for name, method in results["methods"].items():
        for mode in ("batched", "row_loop"):
            r = method[mode]
            ratio = f"{method['speedup_batched_vs_row_loop']:.1f}x" if mode == "batched" else ""
            lines.append(
                f"{name:<14}{mode:<10}{r['paths_per_second']:>12.1f}"
                f"{r['ns_per_step']:>12.1f}{ratio:>14}"
            )
    per_step = results["latent_shift_vs_revise_per_step"]
    lines.append(
        f"Latent Shift vs REVISE per step: {per_step['batched']:.1f}x batched, "
        f"{per_step['row_loop']:.1f}x row loop"
    )
    lines.append(f"goals met: {results['goals']['met']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: CUDA if present)")
    parser.add_argument("--row-subset", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds")
    parser.add_argument("--chunk-size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else default_device()
    results = benchmark(device, args.row_subset, args.rounds, args.chunk_size)
    print(table(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))
    print(f"saved {args.output}")


if __name__ == "__main__":
    main()
