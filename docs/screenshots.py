"""Screenshots of the researcher's UIs, taken with headless Chromium: anyone can re-run this.

    .venv/bin/python docs/screenshots.py [--keep DIR]

In a throwaway project (store, Dagster home, MLflow DB under a temporary folder, or DIR):
registers two small configs that differ only in the explainer (Latent Shift, REVISE),
materializes them, starts ``mlflow ui`` and ``dagster-webserver`` on 127.0.0.1 and saves

- docs/images/mlflow_runs.png: the MLflow runs table of the config (parent) runs,
- docs/images/mlflow_charts.png: the same runs as charts, one per metric,
- docs/images/mlflow_compare.png: MLflow's compare view of the two configs,
- docs/images/dagster_metadata.png: an asset partition's metadata in the Dagster UI.

It also prints the size of every materialization's metadata in the event log, and what the
old all-previews-embedded metadata would have taken. Needs ``chromium`` (or set $CHROMIUM):
``apt-get install -y chromium``.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "images"
BIN = Path(sys.executable).parent
SMALL = {
    "dataset": {"n_points": 6000},
    "classifier": {"training": {"max_epochs": 5}},
    "generative_model": {"training": {"max_epochs": 3}},
    "reference_density": {"training": {"max_epochs": 3}},
    "explanation": {"max_points": 300},
    "metrics": {"lof_max_train_rows": 1000},
}
"""Settings that keep the demo configs small; written into their files, which they describe."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status < 500:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {seconds} s")


def chromium() -> str:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    raise SystemExit("no chromium: apt-get install -y chromium (or set $CHROMIUM)")


def screenshot(url: str, out: Path, size: str = "1600,1000", budget_ms: int = 25000) -> None:
    subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={size}",
            f"--virtual-time-budget={budget_ms}",
            f"--screenshot={out}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    print(f"saved {out.relative_to(REPO)} <- {url}")


def cli(env: dict[str, str], *args: str) -> str:
    completed = subprocess.run(
        [str(BIN / "tabs-assets"), *args], env=env, cwd=REPO, capture_output=True, text=True
    )
    if completed.returncode != 0:
        raise SystemExit(f"tabs-assets {' '.join(args)} failed:\n{completed.stderr[-3000:]}")
    return completed.stdout


def write_configs(folder: Path) -> list[Path]:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    configs = {
        "latent_shift_demo": ("Latent Shift (19 steps) on a small cake on sea", "latent_shift"),
        "revise_demo": ("REVISE (19 steps) on the same data and models", "revise"),
    }
    paths = []
    for name, (description, method) in configs.items():
        path = folder / f"{name}.yaml"
        config = {"name": name, "description": description, **SMALL}
        path.write_text(yaml.safe_dump({**config, "explainer": {"method": method, "n_steps": 19}}))
        paths.append(path)
    return paths


def metadata_sizes(env: dict[str, str]) -> None:
    """Event-log bytes of each asset's latest metadata, and of the old embed-every-preview."""
    code = r"""
import base64, json
from dagster import DagsterInstance, AssetKey
from tabs_assets.defs.metadata import metadata_size
from tabs_assets.store.entries import Store
from tabs_assets import settings
instance = DagsterInstance.get()
rows = {}
for name in ["dataset", "classifier", "reference_density", "counterfactual_paths",
             "explanation_metrics", "plots"]:
    event = instance.get_latest_materialization_event(AssetKey(name))
    if event is None:
        continue
    meta = event.asset_materialization.metadata
    new = metadata_size(meta)
    store = Store(settings.store_root())
    entry = store.lookup(name if name != "reference_density" else "generative_models",
                         meta["store_key"].value)
    old_previews = sum(
        len(base64.b64encode((entry.path / p).read_bytes()))
        for p in entry.manifest.get("report", {}).get("previews", [])
    )
    rows[name] = {"now_bytes": new, "all_previews_embedded_bytes": old_previews}
print(json.dumps(rows))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True
    )
    if out.returncode != 0:
        print(out.stderr[-2000:])
        return
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    print("metadata size per materialization (bytes in the event log):")
    for name, row in rows.items():
        print(
            f"  {name:22} {row['now_bytes']:>8}   (previews alone, as embedded before: "
            f"{row['all_previews_embedded_bytes']})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="project folder to use and keep")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="tabs_screens_"))
    root.mkdir(parents=True, exist_ok=True)
    mlflow_port, dagster_port = free_port(), free_port()
    env = {
        **os.environ,
        "TABS_ASSETS_STORE": str(root / "store"),
        "DAGSTER_HOME": str(root / "dagster_home"),
        "TABS_ASSETS_EXPERIMENTS": str(root / "experiments"),
        "TABS_ASSETS_MLFLOW_UI_URL": f"http://127.0.0.1:{mlflow_port}",
        "TABS_ASSETS_DAGSTER_UI_URL": f"http://127.0.0.1:{dagster_port}",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    home = root / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    template = REPO / "dagster.yaml"
    settings_text = template.read_text() if template.is_file() else ""
    if "nux:" not in settings_text:  # no "join the community" pop-up over the metadata
        settings_text += "\nnux:\n  enabled: false\n"
    (home / "dagster.yaml").write_text(settings_text)
    keys = []
    for path in write_configs(root / "experiments"):
        output = cli(env, "register", str(path))
        keys.append(output.split()[1].rstrip(","))
        print(output.strip())
    for key in keys:
        cli(env, "materialize", key)
        print(f"materialized {key}")
    metadata_sizes(env)

    db = root / "store" / "mlflow.db"
    servers = [
        subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "ui",
                "--backend-store-uri",
                f"sqlite:///{db}",
                "--host",
                "127.0.0.1",
                "--port",
                str(mlflow_port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                str(BIN / "dagster-webserver"),
                "-h",
                "127.0.0.1",
                "-p",
                str(dagster_port),
                "-w",
                str(REPO / "workspace.yaml"),
            ],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        mlflow_url = env["TABS_ASSETS_MLFLOW_UI_URL"]
        dagster_url = env["TABS_ASSETS_DAGSTER_UI_URL"]
        wait_http(f"{mlflow_url}/health")
        wait_http(f"{dagster_url}/server_info")
        from mlflow.tracking import MlflowClient

        from tabs_assets.ui.links import MLFLOW_TRAINING_VIEW

        client = MlflowClient(tracking_uri=f"sqlite:///{db}")
        experiment = client.get_experiment_by_name("tabs_assets")
        parents = client.search_runs(
            [experiment.experiment_id], "tags.`tabs_assets.role` = 'partition'"
        )
        run_ids = json.dumps([run.info.run_id for run in parents])
        IMAGES.mkdir(parents=True, exist_ok=True)
        search = urllib.request.quote("tags.`tabs_assets.role` = 'partition'")
        view = MLFLOW_TRAINING_VIEW  # the Model training layout, as the project's links open
        screenshot(
            f"{mlflow_url}/#/experiments/{experiment.experiment_id}/runs?{view}"
            f"&searchFilter={search}"
            f"&orderByKey={urllib.request.quote('metrics.`validity_rate`')}&orderByAsc=false",
            IMAGES / "mlflow_runs.png",
            size="2400,700",
        )
        screenshot(
            f"{mlflow_url}/#/experiments/{experiment.experiment_id}/runs?{view}"
            f"&searchFilter={search}&compareRunsMode=CHART",
            IMAGES / "mlflow_charts.png",
            size="1600,1100",
        )
        screenshot(
            f"{mlflow_url}/#/compare-runs?runs={urllib.request.quote(run_ids)}"
            f"&experiments={urllib.request.quote(json.dumps([experiment.experiment_id]))}&{view}",
            IMAGES / "mlflow_compare.png",
            size="1600,1400",
        )
        screenshot(
            f"{dagster_url}/assets/explanation_metrics?view=partitions&partition={keys[0]}",
            IMAGES / "dagster_metadata.png",
            size="1600,1400",
            budget_ms=40000,
        )
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
