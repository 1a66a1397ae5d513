"""Wall time of a fully cached `dagster asset materialize` of a config partition, against a
trivial Dagster graph with the same steps, partitions and executor, measured in the same run.

    .venv/bin/python benchmarks/cached_rerun.py [--config experiments/quickstart.yaml] [--repeats 3]

Prints a table per executor and saves benchmarks/results/cached_rerun.json. The first
(uncached) materialization is done once before timing and is not part of the figures.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "cached_rerun.json"
EXECUTORS = ("in_process", "multiprocess")


def timed_materialize(target: list[str], partition: str, env: dict[str, str]) -> tuple[float, str]:
    command = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        *target,
        "--select",
        "*plots",
        "--partition",
        partition,
    ]
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{completed.stderr[-3000:]}")
    return seconds, completed.stderr + completed.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "experiments" / "quickstart.yaml")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--store",
        type=Path,
        default=None,
        help="store root to use (default: the project's; cached results reused)",
    )
    args = parser.parse_args()

    from tabs_assets.orchestration import settings

    home = Path(tempfile.mkdtemp(prefix="bench_dagster_home_"))
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    if args.store:
        env["TABS_ASSETS_STORE"] = str(args.store.resolve())
    os.environ.update(env)
    settings.ensure_dagster_home()

    from dagster import DagsterInstance

    from tabs_assets.orchestration.definitions import CONFIG_ASSETS
    from tabs_assets.orchestration.register_files import add_partitions, register_file
    from tabs_assets.orchestration.registry import Registry
    from tabs_assets.orchestration.runs import materialize_partition

    registered = register_file(Registry(settings.store_root()), args.config)
    add_partitions(DagsterInstance.get(), registered)
    partition = registered.configs[0]
    print(f"warming the cache for {partition} (trains models if the store lacks them)...")
    warm = materialize_partition(partition)
    if not warm.success:
        raise SystemExit("the warm-up materialization failed")
    names = [asset.key.path[-1] for asset in CONFIG_ASSETS]
    env["TRIVIAL_GRAPH_ASSETS"] = ",".join(names)

    rows = []
    for executor in EXECUTORS:
        run_env = {**env, "TABS_ASSETS_EXECUTOR": executor}
        ours, trivial = [], []
        for _ in range(args.repeats):
            seconds, log = timed_materialize(
                ["-m", "tabs_assets.orchestration.definitions"], partition, run_env
            )
            hits = log.count("cache hit")
            if hits < len(names):
                raise SystemExit(f"expected {len(names)} cache hits, saw {hits}:\n{log[-2000:]}")
            ours.append(seconds)
            trivial.append(
                timed_materialize(
                    ["-f", str(REPO / "benchmarks" / "trivial_graph.py")], partition, run_env
                )[0]
            )
        rows.append(
            {
                "executor": executor,
                "steps": len(names),
                "tabs_assets_s": statistics.median(ours),
                "trivial_graph_s": statistics.median(trivial),
                "ratio": statistics.median(ours) / statistics.median(trivial),
                "tabs_assets_runs_s": ours,
                "trivial_graph_runs_s": trivial,
            }
        )

    print(
        f"\nfully cached `dagster asset materialize --select '*plots'` of {partition} "
        f"({len(names)} steps), median of {args.repeats}"
    )
    print(f"{'executor':14} {'tabs_assets s':>14} {'trivial s':>10} {'ratio':>7}")
    for row in rows:
        print(
            f"{row['executor']:14} {row['tabs_assets_s']:14.2f} {row['trivial_graph_s']:10.2f} "
            f"{row['ratio']:7.2f}"
        )
    fastest = min(rows, key=lambda row: row["tabs_assets_s"])
    print(f"fastest cached rerun: {fastest['executor']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "cached_rerun",
                "partition": partition,
                "machine": {
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                },
                "rows": rows,
                "fastest_executor": fastest["executor"],
            },
            indent=2,
        )
    )
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
