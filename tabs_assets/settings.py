"""Where things live: store root, Dagster home, raw-data cache. Defaults stay in the checkout."""

import os
import shutil
import sys
from pathlib import Path

STORE_ENV = "TABS_ASSETS_STORE"
RAW_DATA_ENV = "TABS_ASSETS_RAW_DATA"
EXPERIMENTS_ENV = "TABS_ASSETS_EXPERIMENTS"
EXECUTOR_ENV = "TABS_ASSETS_EXECUTOR"
TRAINING_POOL_ENV = "TABS_ASSETS_TRAINING_POOL"
STUDY_SHARDS_ENV = "TABS_ASSETS_STUDY_SHARDS"
TORCH_THREADS_ENV = "TABS_ASSETS_TORCH_THREADS"
# Measured by benchmarks/cached_rerun.py: see the README, "Performance".
DEFAULT_EXECUTOR = "in_process"
DAGSTER_HOME_ENV = "DAGSTER_HOME"
_PACKAGE_DIR = Path(__file__).resolve().parents[1]
# The instance settings copied into $DAGSTER_HOME (not at the root: `dagster dev` would warn).
DAGSTER_YAML_TEMPLATE = Path("deploy") / "dagster.yaml"


def project_root() -> Path:
    """The checkout holding the package (editable install), else the working directory."""
    checkout = _PACKAGE_DIR.parent
    if (checkout / "workspace.yaml").is_file() and (checkout / "pyproject.toml").is_file():
        return checkout
    return Path.cwd()


def store_root() -> Path:
    return Path(os.environ.get(STORE_ENV) or project_root() / ".tabs_store").resolve()


def raw_data_dir() -> Path:
    """Downloaded (or dropped-in) raw UCI files; shared by every config."""
    return Path(os.environ.get(RAW_DATA_ENV) or store_root() / "raw").resolve()


def experiments_dir() -> Path:
    """The folder the sensor watches for config and study files."""
    return Path(os.environ.get(EXPERIMENTS_ENV) or project_root() / "experiments").resolve()


def executor_name() -> str:
    """in_process (default), multiprocess or celery: read when the definitions load."""
    return os.environ.get(EXECUTOR_ENV) or DEFAULT_EXECUTOR


def training_pool() -> str:
    """The Dagster concurrency pool of the training assets (one GPU = one slot)."""
    return os.environ.get(TRAINING_POOL_ENV) or "gpu"


def study_shards() -> int:
    """Steps a study's missing members are split into: 1 runs them all in one process (least
    overhead); more lets the multiprocess or Celery executor run shards in parallel."""
    value = os.environ.get(STUDY_SHARDS_ENV, "1")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"${STUDY_SHARDS_ENV}={value!r}: expected a whole number >= 1")
    return int(value)


def torch_threads() -> int:
    """Torch threads for this process: $TABS_ASSETS_TORCH_THREADS, else the cores this process
    may use less the machine's current load (at least 1). Torch's default, every core, makes
    runs crawl on a busy machine (10-20x slower at load 9 on 2 cores)."""
    value = os.environ.get(TORCH_THREADS_ENV)
    if value is not None:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"${TORCH_THREADS_ENV}={value!r}: expected a whole number >= 1")
        return int(value)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    usable = usable or 1
    return max(1, min(usable, usable - round(os.getloadavg()[0])))


def ensure_dagster_home() -> Path:
    """Set DAGSTER_HOME (default ``.dagster_home`` in the checkout) and install
    deploy/dagster.yaml there as its dagster.yaml (when it has none).

    Without DAGSTER_HOME Dagster keeps run history in a throwaway directory.
    """
    home = Path(os.environ.get(DAGSTER_HOME_ENV) or project_root() / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ[DAGSTER_HOME_ENV] = str(home)
    template = project_root() / DAGSTER_YAML_TEMPLATE
    target = home / "dagster.yaml"
    if template.is_file() and not target.exists():
        shutil.copyfile(template, target)
    return home


# Dagster CLI commands that run on the instance: without DAGSTER_HOME they use a throwaway one.
_DAGSTER_RUN_COMMANDS = (["asset", "materialize"], ["job", "execute"], ["job", "launch"])


def exit_if_dagster_cli_without_home() -> None:
    """Called when the code location loads. ``dagster asset materialize`` (or ``job execute``)
    with no DAGSTER_HOME runs on a temporary instance that has none of the registered partitions
    and fails with a long DagsterInvalidSubsetError traceback: say what to set instead."""
    if os.environ.get(DAGSTER_HOME_ENV) or Path(sys.argv[0]).name != "dagster":
        return
    if sys.argv[1:3] not in _DAGSTER_RUN_COMMANDS:
        return
    home = project_root() / ".dagster_home"
    print(
        f"DAGSTER_HOME is not set, so `dagster {' '.join(sys.argv[1:3])}` would use a temporary "
        f"Dagster instance without the registered partitions. Use the instance tabs-assets "
        f"registers them in:\n  export DAGSTER_HOME={home}\n"
        f"or run it as `tabs-assets materialize KEY --select ...`.",
        file=sys.stderr,
    )
    raise SystemExit(2)
