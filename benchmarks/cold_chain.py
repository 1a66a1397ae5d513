"""A cold chain through the product against one plain script of the same science, in one run.

    .venv/bin/python benchmarks/cold_chain.py [--config experiments/quickstart.yaml] [--repeats 2]

- product: `tabs-assets materialize KEY --select '*explanation_metrics'` in a fresh process on a
  store with no result in it (MLflow on): load the data, train the classifier and the NICE
  (explainer model and reference density), explain every test row, compute the metrics. The
  store's MLflow database and the Dagster instance are created before timing (once per store,
  not per chain: MLflow's schema migrations take about 1.5 s here);
- plain script: a fresh `python -c` process calling the same science functions in the same
  order (tabs_assets.science only: no store, Dagster or MLflow), saving nothing.
Both set torch's threads the way the product does. Prints a table and saves
benchmarks/results/cold_chain.json.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import timed

REPO = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "tabs-assets"
RESULTS = REPO / "benchmarks" / "results" / "cold_chain.json"

PLAIN_SCRIPT = """
import sys, torch
from tabs_assets.config.loading import resolve_config
from tabs_assets import settings
torch.set_num_threads(settings.torch_threads())
from tabs_assets.science.datasets.loading import load_tabular_data
from tabs_assets.science.datasets.prepared import prepare_dataset
from tabs_assets.science.explainers.paths import draw_targets
from tabs_assets.science.explainers.explain import explain
from tabs_assets.science.metrics import path_lof_scores, path_metrics
from tabs_assets.science.models.training import train_classifier, train_generative_model

config = resolve_config([sys.argv[1]], ()).config
data = prepare_dataset(load_tabular_data(config.dataset, settings.raw_data_dir()),
                       config.dataset.split)
classifier = train_classifier(data, config.classifier).build()
flow = train_generative_model(data, config.generative_model).build()  # also the reference
features, _ = data.split_arrays(config.explanation.split)
x = torch.from_numpy(features[: config.explanation.max_points or len(features)])
with torch.no_grad():
    targets = draw_targets(classifier(x).argmax(-1), data.n_classes, config.explanation.seed)
paths = explain(x, targets, classifier, flow, config.explainer, config.loss,
                chunk_size=config.explanation.chunk_size)
train = torch.from_numpy(data.split_arrays("train")[0])
seed = config.dataset.split.seed
lof = path_lof_scores(paths, train, config.metrics, seed)
path_metrics(paths, flow, train, classifier, train.max(dim=0).values, config.metrics, seed, lof=lof)
"""


def product_seconds(config: Path) -> float:
    work = Path(tempfile.mkdtemp(prefix="cold_chain_"))
    env = {
        **os.environ,
        "TABS_ASSETS_STORE": str(work / "store"),
        "DAGSTER_HOME": str(work / "dagster_home"),
    }
    registered = subprocess.run(
        [str(CLI), "register", str(config)], env=env, capture_output=True, text=True, check=True
    )
    key = registered.stdout.split()[1].rstrip(",")
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=f"sqlite:///{work / 'store' / 'mlflow.db'}").search_experiments()
    return timed([str(CLI), "materialize", key, "--select", "*explanation_metrics"], env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=REPO / "experiments" / "quickstart.yaml")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    product, plain = [], []
    for _ in range(args.repeats):  # interleaved: both see the same machine load
        product.append(product_seconds(args.config.resolve()))
        plain.append(
            timed([sys.executable, "-c", PLAIN_SCRIPT, str(args.config)], dict(os.environ))
        )
    row = {
        "config": str(args.config),
        "product_s": statistics.median(product),
        "plain_script_s": statistics.median(plain),
        "ratio": statistics.median(product) / statistics.median(plain),
        "product_runs_s": product,
        "plain_runs_s": plain,
    }
    print(f"cold chain of {row['config']} up to explanation_metrics, median of {args.repeats}")
    print(f"{'product s':>10} {'plain script s':>15} {'ratio':>6}  (goal <= 1.15)")
    print(f"{row['product_s']:>10.2f} {row['plain_script_s']:>15.2f} {row['ratio']:>6.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "load": os.getloadavg()}
    RESULTS.write_text(json.dumps({"machine": machine, **row}, indent=2))
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
