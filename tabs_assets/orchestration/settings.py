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
DAGSTER_STATE_ENV = "TABS_ASSETS_DAGSTER_STATE"
# The instance file, at the repository root: DAGSTER_HOME is the checkout (README, "Set up").
DAGSTER_YAML = "dagster.yaml"
# Dagster's state in a checkout's DAGSTER_HOME (git-ignored), not all over the repository root.
DAGSTER_STATE_DIR = ".dagster_home"
_PACKAGE_DIR = Path(__file__).resolve().parents[1]


def project_root() -> Path:
    """The checkout holding the package (editable install), else the working directory."""
    checkout = _PACKAGE_DIR.parent
    return checkout if _is_checkout(checkout) else Path.cwd()


def _is_checkout(folder: Path) -> bool:
    return (folder / "workspace.yaml").is_file() and (folder / "pyproject.toml").is_file()


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


def dagster_home() -> Path:
    """$DAGSTER_HOME, else the checkout: the folder whose dagster.yaml configures the instance."""
    return Path(os.environ.get(DAGSTER_HOME_ENV) or project_root()).resolve()


def dagster_state_dir(home: str | Path | None = None) -> Path:
    """Where the instance of dagster.yaml in ``home`` (default: dagster_home()) keeps everything
    it writes (SQLite runs, event logs and schedules, step outputs, compute logs, ``tabs_runs/``,
    ``slurm/``): ``$TABS_ASSETS_DAGSTER_STATE``, else ``.dagster_home/`` when the home is a
    checkout (its root stays clean), else the home itself as Dagster would. Always absolute."""
    override = os.environ.get(DAGSTER_STATE_ENV)
    if override:
        return Path(override).resolve()
    home = Path(home or dagster_home()).resolve()
    return home / DAGSTER_STATE_DIR if _is_checkout(home) else home


def ensure_dagster_home() -> Path:
    """Set DAGSTER_HOME (default: the checkout, whose dagster.yaml is the instance file); a home
    elsewhere without a dagster.yaml gets a copy of the checkout's.

    Without DAGSTER_HOME Dagster keeps run history in a throwaway directory.
    """
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ[DAGSTER_HOME_ENV] = str(home)
    source, target = project_root() / DAGSTER_YAML, home / DAGSTER_YAML
    if source.is_file() and not target.exists():
        shutil.copyfile(source, target)
    return home


# CLI commands that run on the instance: without DAGSTER_HOME they use a throwaway one.
_RUN_COMMANDS = {
    "dagster": (["asset", "materialize"], ["job", "execute"], ["job", "launch"]),
    "dg": (["launch"],),
}


def exit_if_dagster_cli_without_home() -> None:
    """Called when the code location loads. ``dagster asset materialize`` (``job execute``, ``dg
    launch``) with no DAGSTER_HOME runs on a temporary instance that has none of the registered
    partitions and fails with a long DagsterInvalidSubsetError traceback: say what to set."""
    program = Path(sys.argv[0]).name
    if os.environ.get(DAGSTER_HOME_ENV):
        return
    command = next(
        (c for c in _RUN_COMMANDS.get(program, ()) if sys.argv[1 : 1 + len(c)] == c), None
    )
    if command is None:
        return
    home = project_root()
    print(
        f"DAGSTER_HOME is not set, so `{program} {' '.join(command)}` would use a temporary "
        f"Dagster instance without the registered partitions. Use the instance tabs-assets "
        f"registers them in:\n  export DAGSTER_HOME={home}\n"
        f"or run it as `tabs-assets materialize KEY --select ...`.",
        file=sys.stderr,
    )
    raise SystemExit(2)
