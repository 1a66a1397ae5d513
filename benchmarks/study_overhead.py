"""Per-member cost of a study through the product, against the bare science, in one run.

    .venv/bin/python benchmarks/study_overhead.py [--sizes 8 32 96] [--points 200]

For each N: a study of N members on scikit-learn wine that share one classifier and one flow
(members differ only in the explanation seed, so they differ only in their explanations).
- product: `tabs-assets study run FILE` in a fresh process (register, one Dagster run with the
  members, the table and the report; MLflow tracking on), wall time;
- floor: the same compute functions (paths, LOF, metrics) for the same configs in this plain
  process, models loaded once, no store, no Dagster, no MLflow;
- cached: the same `study run` again, everything in the store;
- without MLflow: another N new members through `dagster asset materialize` with the tracking
  resource disabled, to show what MLflow logging costs per member.
The models are trained once before timing. Prints a table, the fit of product time = fixed +
per-member x N, and saves benchmarks/results/study_overhead.json.
"""

import argparse
import json
import logging
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / ".venv" / "bin" / "tabs-assets"
RESULTS = REPO / "benchmarks" / "results" / "study_overhead.json"


def write_study(directory: Path, name: str, seeds: list[int], points: int) -> Path:
    base = directory / "wine_base.yaml"
    base.write_text(
        yaml.safe_dump(
            {
                "name": "wine_base",
                "dataset": {"kind": "sklearn", "name": "wine"},
                "explanation": {"max_points": points},
            }
        )
    )
    study = directory / f"{name}.yaml"
    study.write_text(
        yaml.safe_dump(
            {
                "study": {
                    "name": name,
                    "base": [base.name],
                    "seeds": {"keys": ["explanation.seed"], "values": seeds},
                    "report": {"rows": ["dataset"], "columns": ["explainer"]},
                }
            }
        )
    )
    return study


def study_run(study: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    completed = subprocess.run(
        [str(CLI), "study", "run", str(study)], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"study run {study} failed:\n{completed.stdout[-3000:]}")
    return seconds


def untracked_run(study: Path, env: dict[str, str]) -> float:
    """The same study run with MLflow tracking off (resource config), through Dagster's CLI."""
    registered = subprocess.run(
        [str(CLI), "register", str(study)], env=env, capture_output=True, text=True
    )
    key = registered.stdout.split()[1].rstrip(",")
    command = [
        str(CLI.parent / "dagster"),
        "asset",
        "materialize",
        "-m",
        "tabs_assets.orchestration.definitions",
        "--select",
        "group:studies",
        "--partition",
        key,
        "--config-json",
        json.dumps({"resources": {"tracking": {"config": {"enabled": False}}}}),
    ]
    started = time.perf_counter()
    completed = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"untracked run of {study} failed:\n{completed.stderr[-3000:]}")
    return seconds


def floor_seconds(study: Path) -> float:
    """The members' science in this process: paths, then metrics, models loaded once."""
    from tabs_assets.config.study import expand_study
    from tabs_assets.orchestration import settings
    from tabs_assets.orchestration.cached import COMPUTE, LOADERS
    from tabs_assets.orchestration.definitions import defs  # noqa: F401 (registers COMPUTE)
    from tabs_assets.orchestration.graph import entry_address
    from tabs_assets.orchestration.store import Store

    store = Store(settings.store_root())
    members = [m.resolved.config for m in expand_study(study).members]
    first = members[0]
    loaded = {
        name: LOADERS[name](store.verify(*entry_address(name, first)).path)
        for name in ("dataset", "classifier", "generative_model", "reference_density")
    }
    log = logging.getLogger("floor")

    def explain(config: Any) -> None:
        paths = COMPUTE["counterfactual_paths"](config, loaded, log).payload
        COMPUTE["explanation_metrics"](config, {**loaded, "counterfactual_paths": paths}, log)

    explain(first)  # warm-up: first calls of torch and scikit-learn kernels, not timed
    started = time.perf_counter()
    for config in members:
        explain(config)
    return time.perf_counter() - started


def fit_line(sizes: list[int], seconds: list[float]) -> tuple[float, float]:
    """Least squares seconds = fixed + slope * N."""
    n = len(sizes)
    mean_x, mean_y = sum(sizes) / n, sum(seconds) / n
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(sizes, seconds, strict=True)) / sum(
        (x - mean_x) ** 2 for x in sizes
    )
    return mean_y - slope * mean_x, slope


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 32, 96])
    parser.add_argument("--points", type=int, default=200)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="study_overhead_"))
    env = {
        **os.environ,
        "TABS_ASSETS_STORE": str(work / "store"),
        "DAGSTER_HOME": str(work / "dagster_home"),
        "TABS_ASSETS_EXPERIMENTS": str(work / "experiments"),
    }
    os.environ.update({k: env[k] for k in ("TABS_ASSETS_STORE", "DAGSTER_HOME")})
    (work / "experiments").mkdir()
    warm = write_study(work / "experiments", "warmup", [0], args.points)
    study_run(warm, env)  # trains the shared classifier and flow once, untimed

    rows: list[dict[str, Any]] = []
    for index, size in enumerate(args.sizes):
        seeds = list(range(1000 * (index + 1), 1000 * (index + 1) + size))
        study = write_study(work / "experiments", f"members{size}", seeds, args.points)
        product = study_run(study, env)
        cached = study_run(study, env)
        floor = floor_seconds(study)
        seeds = [seed + 500 for seed in seeds]  # new members: nothing of them is stored
        untracked = untracked_run(
            write_study(work / "experiments", f"untracked{size}", seeds, args.points), env
        )
        rows.append(
            {
                "members": size,
                "product_s": product,
                "product_s_per_member": product / size,
                "untracked_s": untracked,
                "floor_s_per_member": floor / size,
                "cached_rerun_s": cached,
            }
        )
    sizes = [r["members"] for r in rows]
    fixed, per_member = fit_line(sizes, [r["product_s"] for r in rows])
    untracked_fixed, untracked_per_member = fit_line(sizes, [r["untracked_s"] for r in rows])
    floor_per_member = sum(r["floor_s_per_member"] for r in rows) / len(rows)

    print(
        f"{'members':>8} {'product s':>10} {'s/member':>9} {'floor s/member':>15} "
        f"{'ratio':>6} {'cached rerun s':>15}"
    )
    for r in rows:
        ratio = r["product_s_per_member"] / r["floor_s_per_member"]
        print(
            f"{r['members']:>8} {r['product_s']:>10.2f} {r['product_s_per_member']:>9.3f} "
            f"{r['floor_s_per_member']:>15.3f} {ratio:>6.1f} {r['cached_rerun_s']:>15.2f}"
        )
    print(
        f"fit: product = {fixed:.2f} s fixed + {per_member:.3f} s/member; "
        f"marginal / floor = {per_member / floor_per_member:.2f}x (goal <= 2x)"
    )
    print(
        f"fit without MLflow: {untracked_fixed:.2f} s fixed + {untracked_per_member:.3f} "
        f"s/member; marginal / floor = {untracked_per_member / floor_per_member:.2f}x"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
                "points_per_member": args.points,
                "rows": rows,
                "fit": {"fixed_s": fixed, "per_member_s": per_member},
                "fit_without_mlflow": {
                    "fixed_s": untracked_fixed,
                    "per_member_s": untracked_per_member,
                },
                "floor_s_per_member": floor_per_member,
                "marginal_over_floor": per_member / floor_per_member,
            },
            indent=2,
        )
    )
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
