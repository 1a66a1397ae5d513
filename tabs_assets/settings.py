"""Every ``TABS_ASSETS_*`` setting, parsed here and nowhere else, the same way.

Settings are read from the environment when asked (a command, a test or a Slurm job sets them);
an empty or unset variable means the default. A value a setting cannot take raises SettingError
naming the variable, the value and what it expects, never a silent default. Resources are
configuration: no setting is part of a cache or partition key.
"""

import math
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

STORE_ENV = "TABS_ASSETS_STORE"
RAW_DATA_ENV = "TABS_ASSETS_RAW_DATA"
EXPERIMENTS_ENV = "TABS_ASSETS_EXPERIMENTS"
EXECUTOR_ENV = "TABS_ASSETS_EXECUTOR"
TRAINING_POOL_ENV = "TABS_ASSETS_TRAINING_POOL"
STUDY_SHARDS_ENV = "TABS_ASSETS_STUDY_SHARDS"
TORCH_THREADS_ENV = "TABS_ASSETS_TORCH_THREADS"
LOCK_TIMEOUT_ENV = "TABS_ASSETS_LOCK_TIMEOUT"
MLFLOW_LOCK_TIMEOUT_ENV = "TABS_ASSETS_MLFLOW_LOCK_TIMEOUT"
MAX_MEMORY_GB_ENV = "TABS_ASSETS_MAX_MEMORY_GB"
MAX_WORK_ENV = "TABS_ASSETS_MAX_WORK"
MAX_DATA_FILE_GB_ENV = "TABS_ASSETS_MAX_DATA_FILE_GB"
ACCURACY_MARGIN_ENV = "TABS_ASSETS_CHECK_ACCURACY_MARGIN"
MAX_ROUND_TRIP_ENV = "TABS_ASSETS_CHECK_MAX_ROUND_TRIP"
CELERY_BROKER_ENV = "TABS_ASSETS_CELERY_BROKER"
CELERY_BACKEND_ENV = "TABS_ASSETS_CELERY_BACKEND"
TRAINING_QUEUE_ENV = "TABS_ASSETS_TRAINING_QUEUE"
SENSOR_STUDIES_ENV = "TABS_ASSETS_SENSOR_STUDIES"
SLURM_CONFIG_ENV = "TABS_ASSETS_SLURM_CONFIG"
MLFLOW_UI_ENV = "TABS_ASSETS_MLFLOW_UI_URL"
DAGSTER_UI_ENV = "TABS_ASSETS_DAGSTER_UI_URL"
IN_SLURM_JOB_ENV = "TABS_ASSETS_IN_SLURM_JOB"  # set by the Slurm job itself, not by users

EXECUTORS = ("in_process", "multiprocess", "celery", "slurm")
# Measured by benchmarks/cached_rerun.py: see the README, "Performance".
DEFAULT_EXECUTOR = "in_process"
DEFAULT_CELERY_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DAGSTER_UI = "http://127.0.0.1:3000"
# A waiter gives up after this long: long enough for any single training of the studies here,
# short enough that a stuck holder is noticed. Failing is harmless: the holder goes on, publishes,
# and a rerun is a cache hit.
DEFAULT_LOCK_TIMEOUT_S = 3600.0
DEFAULT_MLFLOW_LOCK_TIMEOUT_S = 30.0
DEFAULT_MAX_MEMORY_GB = 32.0
DEFAULT_MAX_WORK = 1e16
DEFAULT_MAX_DATA_FILE_GB = 2.0
DEFAULT_ACCURACY_MARGIN = 0.05
DEFAULT_MAX_ROUND_TRIP = 1e-3
DAGSTER_HOME_ENV = "DAGSTER_HOME"
DAGSTER_STATE_ENV = "TABS_ASSETS_DAGSTER_STATE"
# The instance file, at the repository root: DAGSTER_HOME is the checkout (README, "Set up").
DAGSTER_YAML = "dagster.yaml"
# Dagster's state in a checkout's DAGSTER_HOME (git-ignored), not all over the repository root.
DAGSTER_STATE_DIR = ".dagster_home"
_PACKAGE_DIR = Path(__file__).resolve().parent


class SettingError(ValueError):
    """An environment variable with a value its setting cannot take."""


def read(name: str, parse: Callable[[str], T], default: T | Callable[[], T]) -> T:
    """``parse`` of $name, or the default when it is unset or blank."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default() if callable(default) else default
    try:
        return parse(raw)
    except ValueError as error:
        raise SettingError(f"${name}={raw!r}: expected {error}") from None


def _number(text: str, minimum: float, inclusive: bool) -> float:
    bound = f"a number {'>=' if inclusive else '>'} {minimum:g}"
    try:
        value = float(text)
    except ValueError:
        raise ValueError(bound) from None
    if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
        raise ValueError(bound)
    return value


def positive(text: str) -> float:
    return _number(text, 0, inclusive=False)


def non_negative(text: str) -> float:
    return _number(text, 0, inclusive=True)


def count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError("a whole number >= 1")
    return int(text)


def flag(text: str) -> bool:
    words = {"1": True, "true": True, "yes": True, "on": True}
    words |= {"0": False, "false": False, "no": False, "off": False}
    if text.lower() not in words:
        raise ValueError("one of 1/true/yes/on or 0/false/no/off")
    return words[text.lower()]


def one_of(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in options:
            raise ValueError(f"one of {', '.join(options)}")
        return text

    return parse


def text(value: str) -> str:
    return value


def path(value: str) -> Path:
    return Path(value).expanduser().resolve()


def url(value: str) -> str:
    return value.rstrip("/")


def check() -> None:
    """Parse every setting now: raise one SettingError naming each bad variable, before any
    work (the CLI and the code location call this when they start)."""
    readers = (
        store_root,
        raw_data_dir,
        experiments_dir,
        executor_name,
        training_pool,
        study_shards,
        torch_threads,
        lock_timeout_s,
        mlflow_lock_timeout_s,
        max_memory_gb,
        max_work,
        max_data_file_bytes,
        check_accuracy_margin,
        check_max_round_trip,
        celery_broker,
        celery_backend,
        training_queue,
        sensor_registers_studies,
        dagster_ui_url,
        in_slurm_job,
        dagster_state_dir,
    )
    problems = []
    for reader in readers:
        try:
            reader()
        except SettingError as error:
            problems.append(str(error))
    if problems:
        raise SettingError("; ".join(problems))


def project_root() -> Path:
    """The checkout holding the package (editable install), else the working directory."""
    checkout = _PACKAGE_DIR.parent
    return checkout if _is_checkout(checkout) else Path.cwd()


def _is_checkout(folder: Path) -> bool:
    return (folder / "workspace.yaml").is_file() and (folder / "pyproject.toml").is_file()


def store_root() -> Path:
    return read(STORE_ENV, path, lambda: (project_root() / ".tabs_store").resolve())


def raw_data_dir() -> Path:
    """Downloaded (or dropped-in) raw UCI files; shared by every config."""
    return read(RAW_DATA_ENV, path, lambda: (store_root() / "raw").resolve())


def experiments_dir() -> Path:
    """The folder the sensor watches for config and study files."""
    return read(EXPERIMENTS_ENV, path, lambda: (project_root() / "experiments").resolve())


def executor_name() -> str:
    """in_process (default), multiprocess, celery or slurm: read when the definitions load."""
    return read(EXECUTOR_ENV, one_of(*EXECUTORS), DEFAULT_EXECUTOR)


def training_pool() -> str:
    """The Dagster concurrency pool of the training assets (one GPU = one slot)."""
    return read(TRAINING_POOL_ENV, text, "gpu")


def study_shards() -> int:
    """Steps a study's missing members are split into: 1 runs them all in one process (least
    overhead); more lets the multiprocess or Celery executor run shards in parallel."""
    return read(STUDY_SHARDS_ENV, count, 1)


def torch_threads() -> int:
    """Torch threads for this process: $TABS_ASSETS_TORCH_THREADS, else the cores this process
    may use less the machine's current load (at least 1). Torch's default, every core, makes
    runs crawl on a busy machine (10-20x slower at load 9 on 2 cores)."""
    return read(TORCH_THREADS_ENV, count, _unloaded_cores)


def _unloaded_cores() -> int:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    usable = usable or 1
    return max(1, min(usable, usable - round(os.getloadavg()[0])))


def lock_timeout_s() -> float:
    """Seconds a process waits for a store key lock before failing (default 1 h)."""
    return read(LOCK_TIMEOUT_ENV, positive, DEFAULT_LOCK_TIMEOUT_S)


def mlflow_lock_timeout_s() -> float:
    """Seconds a process waits for the SQLite MLflow store's writer lock."""
    return read(MLFLOW_LOCK_TIMEOUT_ENV, positive, DEFAULT_MLFLOW_LOCK_TIMEOUT_S)


def max_memory_gb() -> float:
    """The peak memory ``register`` admits a config with."""
    return read(MAX_MEMORY_GB_ENV, positive, DEFAULT_MAX_MEMORY_GB)


def max_work() -> float:
    """The work (point-steps of training and explaining) ``register`` admits a config with."""
    return read(MAX_WORK_ENV, positive, DEFAULT_MAX_WORK)


def max_data_file_bytes() -> float:
    """The largest data file ``register`` reads."""
    return read(MAX_DATA_FILE_GB_ENV, positive, DEFAULT_MAX_DATA_FILE_GB) * 1e9


def check_accuracy_margin() -> float:
    """How far above chance the classifier check wants the test accuracy."""
    return read(ACCURACY_MARGIN_ENV, non_negative, DEFAULT_ACCURACY_MARGIN)


def check_max_round_trip() -> float:
    """The largest flow round-trip error the generative-model check accepts."""
    return read(MAX_ROUND_TRIP_ENV, positive, DEFAULT_MAX_ROUND_TRIP)


def celery_broker() -> str:
    return read(CELERY_BROKER_ENV, url, DEFAULT_CELERY_URL)


def celery_backend() -> str:
    return read(CELERY_BACKEND_ENV, url, celery_broker)


def training_queue() -> str | None:
    """The Celery queue of the training steps (workers on GPU machines listen on it)."""
    return read(TRAINING_QUEUE_ENV, text, None)


def sensor_registers_studies() -> bool:
    return read(SENSOR_STUDIES_ENV, flag, False)


def slurm_config_file(default: Path) -> Path:
    return read(SLURM_CONFIG_ENV, path, default)


def mlflow_ui_url() -> str | None:
    """The MLflow UI's address when it is not the tracking server's own."""
    return read(MLFLOW_UI_ENV, url, None)


def dagster_ui_url() -> str:
    return read(DAGSTER_UI_ENV, url, DEFAULT_DAGSTER_UI)


def in_slurm_job() -> bool:
    return read(IN_SLURM_JOB_ENV, flag, False)


def dagster_home() -> Path:
    """$DAGSTER_HOME, else the checkout: the folder whose dagster.yaml configures the instance."""
    return read(DAGSTER_HOME_ENV, path, lambda: project_root().resolve())


def dagster_state_dir(home: str | Path | None = None) -> Path:
    """Where the instance of dagster.yaml in ``home`` (default: dagster_home()) keeps everything
    it writes (SQLite runs, event logs and schedules, step outputs, compute logs, ``tabs_runs/``,
    ``slurm/``): ``$TABS_ASSETS_DAGSTER_STATE``, else ``.dagster_home/`` when the home is a
    checkout (its root stays clean), else the home itself as Dagster would. Always absolute."""
    home = Path(home or dagster_home()).resolve()
    default = home / DAGSTER_STATE_DIR if _is_checkout(home) else home
    return read(DAGSTER_STATE_ENV, path, default)


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
