"""Wall time of a fully cached materialization of a config partition, against a trivial Dagster
graph with the same assets, partition and executor, measured in the same run.

    .venv/bin/python benchmarks/cached_rerun.py [--config experiments/quickstart.yaml]
        [--select '*explanation_metrics'] [--repeats 5] [--executors in_process multiprocess]

Rows, each a fresh process, repeats interleaved so every row sees the same machine load:
- `dagster asset materialize` of the product, and of the trivial graph without and with the
  product's asset checks (each check reported passed: Dagster's own cost for them);
- `tabs-assets materialize KEY --select ...` (the same run through the project's CLI).
The first (uncached) materialization is done once before timing, in a fresh store and
Dagster home, and is not part of the figures. Prints a table and saves
benchmarks/results/cached_rerun.json.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

from timing import timed

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "cached_rerun.json"
BIN = Path(sys.executable).parent


def all_hits(instance: object, expected: int) -> None:
    """The product's last run: every materialization a cache hit."""
    from dagster import DagsterEventType

    run = instance.get_runs(limit=1)[0]
    records = instance.get_records_for_run(
        run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
    ).records
    found = [
        r.event_log_entry.dagster_event.step_materialization_data.materialization.metadata[
            "cache"
        ].value
        for r in records
    ]
    if found != ["hit"] * expected:
        raise SystemExit(f"expected {expected} cache hits, saw {found}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "experiments" / "quickstart.yaml")
    parser.add_argument("--select", default="*explanation_metrics")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--executors", nargs="+", default=["in_process"])
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cached_rerun_"))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(work / "dagster_home"),
        "TABS_ASSETS_STORE": str(work / "store"),
    }
    os.environ.update(env)
    from dagster import AssetSelection, DagsterInstance

    from tabs_assets import settings
    from tabs_assets.defs.definitions import defs
    from tabs_assets.defs.partitions import add_partitions
    from tabs_assets.defs.runs import materialize_partition
    from tabs_assets.registry.records import Registry
    from tabs_assets.registry.registration import register_file

    settings.ensure_dagster_home()
    registered = register_file(Registry(settings.store_root()), args.config)
    add_partitions(DagsterInstance.get(), registered)
    partition = registered.configs[0]
    print(f"warming the cache for {partition} (trains models)...")
    if not materialize_partition(partition, args.select).success:
        raise SystemExit("the warm-up materialization failed")
    graph = defs.resolve_asset_graph()
    names = sorted(key.path[-1] for key in AssetSelection.from_string(args.select).resolve(graph))
    env["TRIVIAL_GRAPH_ASSETS"] = ",".join(names)
    materialize = [str(BIN / "dagster"), "asset", "materialize", "--select", args.select]
    materialize += ["--partition", partition]
    trivial = [*materialize, "-f", str(REPO / "benchmarks" / "trivial_graph.py")]
    commands = {
        "dagster asset materialize": [*materialize, "-m", "tabs_assets.defs.definitions"],
        "tabs-assets materialize": [
            str(BIN / "tabs-assets"),
            "materialize",
            partition,
            "--select",
            args.select,
        ],
        "trivial graph": trivial,
        "trivial graph + same checks": trivial,
    }

    rows = []
    for executor in args.executors:
        seconds: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.repeats):
            for name, command in commands.items():
                run_env = {**env, "TABS_ASSETS_EXECUTOR": executor}
                if name == "trivial graph + same checks":
                    run_env["TRIVIAL_GRAPH_CHECKS"] = "1"
                seconds[name].append(timed(command, run_env))
                if not name.startswith("trivial"):
                    all_hits(DagsterInstance.get(), len(names))
        medians = {name: statistics.median(values) for name, values in seconds.items()}
        rows.append({"executor": executor, "median_s": medians, "runs_s": seconds})

    print(
        f"\nfully cached `--select '{args.select}'` of {partition} ({len(names)} assets), "
        f"median of {args.repeats}; load {os.getloadavg()[0]:.1f}"
    )
    print(f"{'executor':12} {'command':28} {'s':>6} {'/ trivial':>10} {'/ trivial+checks':>17}")
    for row in rows:
        medians = row["median_s"]
        for name, value in medians.items():
            print(
                f"{row['executor']:12} {name:28} {value:6.2f} "
                f"{value / medians['trivial graph']:10.2f} "
                f"{value / medians['trivial graph + same checks']:17.2f}"
            )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "cached_rerun",
                "partition": partition,
                "select": args.select,
                "machine": {
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "load": os.getloadavg(),
                },
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
