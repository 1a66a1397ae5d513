"""Per-member cost of a study through the product, against the bare science, in one run.

    .venv/bin/python benchmarks/study_overhead.py [--sizes 8 32 96] [--points 200]

For each N: a study of N members on scikit-learn wine that share one classifier and one flow
(members differ only in the explanation seed, so they differ only in their explanations).
- product: `tabs-assets study run FILE` in a fresh process (register, one Dagster run with the
  members, the table and the report; MLflow tracking on), wall time;
- floor: the same compute functions (paths, LOF, metrics) for the same configs in this plain
  process, models loaded once, no store, no Dagster, no MLflow;
- members phase: the study run's shard step alone (from its event log), per member, against the
  floor: what the product adds to each member's science;
- cached: the same `study run` again, everything in the store, against a fully cached run of
  the trivial graph (benchmarks/trivial_graph.py: the 7 per-config assets doing nothing);
- without MLflow: another N new members through `dagster asset materialize` with the tracking
  resource disabled, to show what MLflow logging costs per member;
- Slurm: another N new members with `study run --shards S` on the Slurm executor (the shards as
  one job array), when Slurm is installed: on the cluster $SLURM_CONF names, else on a one-node
  cluster started here (tabs_assets_tests/slurm_cluster.py; needs root). Also reported: each
  shard's wait from submission to its step's start (queue, interpreter, definitions).
The models are trained once before timing. Prints a table, the fit of product time = fixed +
per-member x N, and saves benchmarks/results/study_overhead.json.
"""

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


def study_run(study: Path, env: dict[str, str], *options: str) -> float:
    started = time.perf_counter()
    completed = subprocess.run(
        [str(CLI), "study", "run", str(study), *options], env=env, capture_output=True, text=True
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
        "tabs_assets.defs.definitions",
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
    from tabs_assets import settings
    from tabs_assets.config.study import expand_study
    from tabs_assets.defs.cached import COMPUTE, LOADERS
    from tabs_assets.defs.definitions import defs  # noqa: F401 (registers COMPUTE)
    from tabs_assets.graph.nodes import entry_address
    from tabs_assets.store.entries import Store

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


@contextmanager
def slurm_env(work: Path, shards: int) -> Iterator[dict[str, str] | None]:
    """Environment for study runs on the Slurm executor; None when Slurm is not installed."""
    if shutil.which("sbatch") is None:
        yield None
        return
    deployment = work / "slurm.yaml"
    deployment.write_text(
        yaml.safe_dump({"cpus": 1, "training_gpus": 0, "array_concurrency": shards})
    )
    env = {"TABS_ASSETS_EXECUTOR": "slurm", "TABS_ASSETS_SLURM_CONFIG": str(deployment)}
    if subprocess.run(["sinfo"], capture_output=True).returncode == 0:
        yield env  # a configured cluster
        return
    from tabs_assets_tests.slurm_cluster import slurm_cluster

    with slurm_cluster(work / "slurm_cluster", gpus=1) as cluster:
        yield {**env, **cluster.env}


def shard_waits() -> list[float]:
    """Seconds from each shard's submission to its step's start, in the latest run."""
    from dagster import DagsterEventType, DagsterInstance

    instance = DagsterInstance.get()
    [run] = instance.get_runs(limit=1)
    times: dict[str, dict[DagsterEventType, float]] = {}
    for record in instance.all_logs(run.run_id):
        event = record.dagster_event
        if event is not None and event.step_key and "shard" in event.step_key:
            times.setdefault(event.step_key, {})[event.event_type] = record.timestamp
    return [
        steps[DagsterEventType.STEP_START] - steps[DagsterEventType.STEP_WORKER_STARTING]
        for steps in times.values()
        if DagsterEventType.STEP_WORKER_STARTING in steps
    ]


def members_phase_seconds() -> float:
    """Seconds of the latest run's shard steps (the members' phase), from their events."""
    from dagster import DagsterEventType, DagsterInstance

    instance = DagsterInstance.get()
    [run] = instance.get_runs(limit=1)
    records = instance.get_records_for_run(
        run.run_id, of_type=DagsterEventType.STEP_SUCCESS
    ).records
    return sum(
        r.event_log_entry.dagster_event.step_success_data.duration_ms / 1000
        for r in records
        if "materialize_study_shard" in (r.event_log_entry.step_key or "")
    )


def trivial_cached_seconds(study: Path, env: dict[str, str]) -> float:
    """A fully cached run of the trivial graph on one member's partition: Dagster's own cost."""
    from tabs_assets.config.study import expand_study
    from tabs_assets.graph.nodes import NODES

    member = expand_study(study).members[0].partition_key
    command = [
        str(CLI.parent / "dagster"),
        *("asset", "materialize", "-f", str(REPO / "benchmarks" / "trivial_graph.py")),
        *("--select", "*plots", "--partition", member),
    ]
    started = time.perf_counter()
    subprocess.run(
        command,
        env={**env, "TRIVIAL_GRAPH_ASSETS": ",".join(NODES)},
        check=True,
        capture_output=True,
    )
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
    parser.add_argument("--slurm-shards", type=int, default=2, help="array tasks of a study")
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
    with slurm_env(work, args.slurm_shards) as slurm:
        for index, size in enumerate(args.sizes):
            seeds = list(range(1000 * (index + 1), 1000 * (index + 1) + size))
            study = write_study(work / "experiments", f"members{size}", seeds, args.points)
            product = study_run(study, env)
            phase = members_phase_seconds()
            cached = study_run(study, env)
            trivial = trivial_cached_seconds(study, env)
            floor = floor_seconds(study)
            seeds = [seed + 500 for seed in seeds]  # new members: nothing of them is stored
            untracked = untracked_run(
                write_study(work / "experiments", f"untracked{size}", seeds, args.points), env
            )
            row = {
                "members": size,
                "product_s": product,
                "product_s_per_member": product / size,
                "untracked_s": untracked,
                "floor_s_per_member": floor / size,
                "members_phase_s_per_member": phase / size,
                "cached_rerun_s": cached,
                "trivial_cached_s": trivial,
            }
            if slurm is not None:  # the same members with other seeds, shards as a job array
                arrayed = write_study(
                    work / "experiments", f"slurm{size}", [x + 200 for x in seeds], args.points
                )
                shards = ("--shards", str(args.slurm_shards))
                row["slurm_s"] = study_run(arrayed, {**env, **slurm}, *shards)
                row["slurm_s_per_member"] = row["slurm_s"] / size
                row["slurm_shard_waits_s"] = shard_waits()
            rows.append(row)
    sizes = [r["members"] for r in rows]
    fixed, per_member = fit_line(sizes, [r["product_s"] for r in rows])
    untracked_fixed, untracked_per_member = fit_line(sizes, [r["untracked_s"] for r in rows])
    floor_per_member = sum(r["floor_s_per_member"] for r in rows) / len(rows)
    on_slurm = all("slurm_s" in r for r in rows)

    print(
        f"{'members':>8} {'product s':>10} {'s/member':>9} {'floor s/member':>15} "
        f"{'ratio':>6} {'phase s/member':>15} {'/ floor':>8} {'cached rerun s':>15} "
        f"{'/ trivial':>10}"
        + (f" {'slurm s':>8} {'slurm s/member':>15} {'shard wait s':>13}" if on_slurm else "")
    )
    for r in rows:
        ratio = r["product_s_per_member"] / r["floor_s_per_member"]
        waits = r.get("slurm_shard_waits_s") or [float("nan")]
        phase = r["members_phase_s_per_member"]
        print(
            f"{r['members']:>8} {r['product_s']:>10.2f} {r['product_s_per_member']:>9.3f} "
            f"{r['floor_s_per_member']:>15.3f} {ratio:>6.1f} {phase:>15.3f} "
            f"{phase / r['floor_s_per_member']:>8.2f} {r['cached_rerun_s']:>15.2f} "
            f"{r['cached_rerun_s'] / r['trivial_cached_s']:>10.2f}"
            + (
                f" {r['slurm_s']:>8.2f} {r['slurm_s_per_member']:>15.3f} {max(waits):>13.2f}"
                if on_slurm
                else ""
            )
        )
    print(
        f"fit: product = {fixed:.2f} s fixed + {per_member:.3f} s/member; "
        f"marginal / floor = {per_member / floor_per_member:.2f}x (goal <= 2x)"
    )
    print(
        f"fit without MLflow: {untracked_fixed:.2f} s fixed + {untracked_per_member:.3f} "
        f"s/member; marginal / floor = {untracked_per_member / floor_per_member:.2f}x"
    )
    slurm_fit = fit_line(sizes, [r["slurm_s"] for r in rows]) if on_slurm else None
    if slurm_fit is not None:
        print(
            f"fit on Slurm ({args.slurm_shards} shards as a job array): {slurm_fit[0]:.2f} s "
            f"fixed + {slurm_fit[1]:.3f} s/member; per member / in process = "
            f"{slurm_fit[1] / per_member:.2f}x"
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
                "fit_slurm": (
                    {
                        "fixed_s": slurm_fit[0],
                        "per_member_s": slurm_fit[1],
                        "shards": args.slurm_shards,
                    }
                    if slurm_fit
                    else None
                ),
            },
            indent=2,
        )
    )
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
