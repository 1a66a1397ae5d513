"""The Slurm executor: a run's computing steps as Slurm jobs, a study's shards as one job array.

Dagster has no Slurm executor, so this is one built the way dagster-docker and dagster-k8s build
theirs: Dagster's StepDelegatingExecutor plans the run in the run's process and asks a step
handler to launch each step; here the handler submits it with ``sbatch`` as ``dagster api
execute_step`` (the command those executors run in a container; through slurm_job.py, which
exits quietly when Slurm ends the job). The job writes its events
straight to the Dagster instance, which the nodes must reach (SQLite in .dagster_home/ on the
shared filesystem, or Postgres), so the UI shows its logs, materializations and failures like any
step's. submitit (which pickles a Python callable per job) and dagster-slurm (Dagster Pipes over
SSH, one asset body as one script) would each need a second way of running a step; the command
Dagster already has for running one step elsewhere needs no pickling and no second code path.

- Where a step runs (``placement``): a per-config or study asset whose result is in the store
  (its checks, reported by its own step, are stored with it) and the study's planning and
  recording steps run in the run's own process, as ``execute_step`` would, without a job: a
  cache hit never queues.
- A study's shards are submitted together as one job array (``--array=0-N%concurrency``) when
  the first of them is launched; each task runs its shard's members in-process as always.
- Training steps and study shards ask for ``training_gpus`` GPUs (``--gres``), others for none.
- Every ``HEALTH_CHECK_S`` the executor asks ``squeue`` (then ``scontrol`` for finished jobs) about
  the jobs of unfinished steps: a job cancelled, timed out or lost with its node fails its step
  with the job id, Slurm's state and reason and the end of the job's log. Terminating the run
  ``scancel``s its jobs. Results are written atomically and the executor frees a failed step's
  pool slot, so a rerun reuses everything stored and waits for nothing.
"""

import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import Permissive, executor
from dagster._core.definitions.executor_definition import multiple_process_executor_requirements
from dagster._core.events import DagsterEvent, EngineEventData
from dagster._core.execution.plan.objects import StepFailureData
from dagster._core.execution.retries import RetryMode
from dagster._core.executor.base import Executor
from dagster._core.executor.init import InitExecutorContext
from dagster._core.executor.step_delegating import (
    CheckStepHealthResult,
    StepDelegatingExecutor,
    StepHandler,
    StepHandlerContext,
)
from dagster._grpc.types import ExecuteStepArgs
from dagster._utils.error import SerializableErrorInfo
from dagster_shared.record import copy

from tabs_assets.config.loading import ConfigError, read_yaml
from tabs_assets.config.slurm import (
    ResolvedSlurm,
    SlurmSettings,
    SlurmSettingsError,
    parse_layer,
    resolve,
)
from tabs_assets.orchestration import settings
from tabs_assets.orchestration.executors import TRAINING_TAG
from tabs_assets.orchestration.graph import NODES, entry_address, study_store_key
from tabs_assets.orchestration.registry import Registry, UnknownPartitionError
from tabs_assets.orchestration.resources import FORCE_ALL
from tabs_assets.orchestration.store import Store, StoreError

SLURM_CONFIG_ENV = "TABS_ASSETS_SLURM_CONFIG"
DEPLOY_FILE = Path("deploy") / "slurm.yaml"
JOB_ENTRY = "tabs_assets.orchestration.slurm_job"
HEALTH_CHECK_S = 5
# How often the run's process reads the event log for its steps' progress. Dagster's default
# (1 s) makes a fully cached run of 13 steps take 15 s; at 0.1 s it takes 7 s (in process: 3 s).
POLL_S = 0.1
RUN_CONFIG_SOURCE = "the run config (execution.config)"
JOB_ID = "Slurm job id"  # metadata label of a step's job (STEP_WORKER_STARTING event)
SHARD_OP = "materialize_study_shard"
STUDY_ASSETS = ("study_table", "study_report")
# Slurm job states after which a step that has not reported its end never will.
FAILED_STATES = {
    "BOOT_FAIL",
    "CANCELLED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "TIMEOUT",
}
# A job COMPLETED this long ago whose step never reported its end failed to report.
REPORT_GRACE_S = 60.0
STATUS_MAX_AGE_S = 1.0  # one squeue call serves every step's health check of one round
# sbatch's refusal (its last error line, lower case) -> the settings that can cause it.
REFUSALS = (
    ("partition", ("partition",)),
    ("account", ("account",)),
    ("qos", ("qos",)),
    ("time limit", ("time_limit_min",)),
    ("gres", ("training_gpus", "gpu_type")),
    ("memory", ("mem_mb",)),
    ("node configuration", ("cpus", "mem_mb", "training_gpus", "gpu_type")),
    ("cpu", ("cpus",)),
)


class SlurmError(RuntimeError):
    """Slurm refused or cannot run a job: a message naming the setting, never a traceback."""


def deployment_layer() -> tuple[str, SlurmSettings]:
    """$TABS_ASSETS_SLURM_CONFIG, else deploy/slurm.yaml of the checkout (optional)."""
    explicit = os.environ.get(SLURM_CONFIG_ENV)
    path = Path(explicit) if explicit else settings.project_root() / DEPLOY_FILE
    if not explicit and not path.is_file():
        return "the built-in defaults", SlurmSettings()
    try:
        data = read_yaml(path)
    except ConfigError as error:
        raise SlurmSettingsError("; ".join(error.problems)) from None
    return str(path), parse_layer(data, str(path))


def partition_layer(registry: Registry, partition_key: str | None) -> tuple[str, SlurmSettings]:
    """The ``slurm:`` section of the run's config or study file."""
    if partition_key:
        try:
            return f"the slurm section of config {partition_key}", registry.config(
                partition_key
            ).slurm
        except UnknownPartitionError:
            pass
        try:
            return f"the slurm section of study {partition_key}", registry.study(
                partition_key
            ).study.slurm
        except UnknownPartitionError:
            pass
    return "no partition", SlurmSettings()


@dataclass(frozen=True)
class SlurmProblem:
    message: str


def run_settings(run_config: dict[str, Any], run: Any) -> ResolvedSlurm:
    """A run's settings from its three layers, once Slurm and the store are known to work."""
    launch = parse_layer(run_config, RUN_CONFIG_SOURCE)
    if shutil.which("sbatch") is None:
        raise SlurmError("sbatch is not on PATH: run Dagster where Slurm's commands are")
    Store(settings.store_root()).check_locks()
    registry = Registry(settings.store_root())
    partition = partition_layer(registry, run.tags.get("dagster/partition"))
    return resolve([deployment_layer(), partition, (RUN_CONFIG_SOURCE, launch)])


def is_stored(registry: Registry, store: Store, name: str, partition_key: str) -> bool:
    """Whether the result of asset ``name`` for ``partition_key`` is in the store (checked as a
    cache hit checks it: the step then finds it the same way)."""
    if name in NODES:
        return store.find(*entry_address(name, registry.config(partition_key))) is not None
    record = registry.study(partition_key)
    key = study_store_key(name, record.study, record.member_configs(registry))
    return store.find(name, key) is not None


def forced_assets(run_config: dict[str, Any]) -> set[str]:
    """The run's ``resources.store.config.force`` list (assets to recompute)."""
    store = run_config.get("resources", {}).get("store", {})
    return set(store.get("config", {}).get("force", []))


@dataclass(frozen=True)
class Placement:
    job: bool  # False: in the run's process
    training: bool = False
    why: str = ""


def placement(
    step_key: str, tags: dict[str, str], partition_key: str | None, forced: set[str]
) -> Placement:
    """Where a step runs: a Slurm job only when it computes something not in the store."""
    name, _, mapping_key = step_key.partition("[")
    op = name.rsplit(".", 1)[-1]
    training = bool(tags.get(TRAINING_TAG))
    if op == SHARD_OP:
        from tabs_assets.orchestration.assets.studies import NOTHING_TO_RUN

        if mapping_key.rstrip("]") == NOTHING_TO_RUN:
            return Placement(False, why="every member of the study is in the store")
        return Placement(True, training)
    if (name not in NODES and name not in STUDY_ASSETS) or not partition_key:
        return Placement(False, why="it only plans or records stored results")
    if not ({name, FORCE_ALL} & forced):
        registry, store = Registry(settings.store_root()), Store(settings.store_root())
        if is_stored(registry, store, name, partition_key):
            return Placement(False, why="its result is in the store (cache hit)")
    return Placement(True, training)


def sbatch_options(
    resolved: ResolvedSlurm, training: bool, name: str, output: Path, tasks: int | None
) -> list[str]:
    """sbatch's options for one job (``tasks``: the size of a job array)."""
    s = resolved.settings
    options = [f"--job-name={name}", f"--output={output}"]
    values = (
        ("--partition", s.partition),
        ("--account", s.account),
        ("--qos", s.qos),
        ("--time", s.time_limit_min),
        ("--cpus-per-task", s.cpus),
        ("--mem", f"{s.mem_mb}M" if s.mem_mb else None),
    )
    options += [f"{flag}={value}" for flag, value in values if value is not None]
    gpus = resolved.training_gpus if training else 0
    if gpus:
        options.append(f"--gres=gpu:{s.gpu_type + ':' if s.gpu_type else ''}{gpus}")
    if tasks is not None:
        limit = f"%{s.array_concurrency}" if s.array_concurrency else ""
        options.append(f"--array=0-{tasks - 1}{limit}")
    return options


def step_command(args: ExecuteStepArgs) -> list[str]:
    """`dagster api execute_step ...` through slurm_job.py (quiet when Slurm ends the job), run
    by the run's own Python (its venv, on the shared filesystem), whatever the node's PATH."""
    command = list(args.get_command_args())
    return [args.job_origin.executable_path, "-m", JOB_ENTRY, *command[command.index("api") :]]


def job_script(resolved: ResolvedSlurm, commands: Sequence[Sequence[str]]) -> str:
    """A batch script running ``commands[$SLURM_ARRAY_TASK_ID]`` (the only one for a plain
    job): `dagster api execute_step` with one step's compressed arguments each."""
    prefix = shlex.join(commands[0][:-1])
    if any(shlex.join(command[:-1]) != prefix for command in commands):
        raise ValueError("the commands of a job array differ in more than their arguments")
    arguments = "\n".join(f"  {shlex.quote(command[-1])}" for command in commands)
    setup = "\n".join(resolved.settings.setup or [])
    return (
        f"#!/bin/bash\nset -e\n{setup}\narguments=(\n{arguments}\n)\n"
        f'exec {prefix} "${{arguments[${{SLURM_ARRAY_TASK_ID:-0}}]}}"\n'
    )


def refusal_message(stderr: str, resolved: ResolvedSlurm, step: str) -> str:
    """sbatch's refusal as one line naming the settings that can cause it."""
    lines = [line.split("error:", 1)[-1].strip() for line in stderr.splitlines() if line.strip()]
    reason = lines[-1] if lines else "no message"
    lowered = stderr.lower()
    fields = next((f for word, f in REFUSALS if word in lowered), tuple(SlurmSettings.model_fields))
    named = ", ".join(resolved.describe(field) for field in fields if field != "setup")
    return f"Slurm refused the job of step {step}: {reason}. Check {named}"


def submit(options: Sequence[str], script: str) -> str:
    """sbatch the script; the job id, or a CalledProcessError carrying sbatch's stderr."""
    completed = subprocess.run(
        ["sbatch", "--parsable", *options],
        input=script,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return completed.stdout.strip().split(";")[0]


@dataclass(frozen=True)
class JobState:
    state: str
    reason: str = ""
    exit_code: str = ""


def _squeue(job_ids: Sequence[str]) -> dict[str, JobState]:
    """Pending and running jobs (array tasks one per line, as ``ARRAY_TASK``)."""
    bases = sorted({job.split("_")[0] for job in job_ids})
    completed = subprocess.run(
        ["squeue", "-h", "-r", "-j", ",".join(bases), "-o", "%i|%T|%r"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if completed.returncode != 0 and "Invalid job id" not in completed.stderr:
        # Slurm unreachable for now (a controller restart): no verdict, the steps go on.
        raise SlurmError(f"squeue failed: {completed.stderr.strip()}")
    states = {}
    for line in completed.stdout.splitlines():
        job, state, reason = [*line.split("|"), "", ""][:3]
        states[job.strip()] = JobState(state.strip(), reason.strip())
    return states


def _scontrol(job_id: str) -> JobState | None:
    """A recently finished job (Slurm keeps them MinJobAge seconds); None when unknown."""
    completed = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=60
    )
    fields = dict(re.findall(r"(\w+)=(\S*)", completed.stdout))
    if completed.returncode != 0 or "JobState" not in fields:
        return None
    return JobState(fields["JobState"], fields.get("Reason", ""), fields.get("ExitCode", ""))


def job_states(job_ids: Sequence[str]) -> dict[str, JobState | None]:
    """Slurm's state of each job: squeue for all, scontrol for those squeue no longer lists."""
    queued = _squeue(job_ids) if job_ids else {}
    return {job: queued.get(job) or _scontrol(job) for job in job_ids}


def log_tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


@dataclass
class SubmittedJob:
    job_id: str
    log: Path
    completed_since: float | None = None  # when Slurm was first seen to report COMPLETED


def run_in_this_process(args: ExecuteStepArgs, instance: Any, run: Any) -> None:
    """What `dagster api execute_step` does, without a new process or job: a step that only
    reads stored results costs a lookup, not an interpreter start and a definitions load
    (seconds). Its events go to the instance as a job's would. (Dagster's command body is
    private; it is the one implementation of "execute this step of that run".)"""
    from dagster._cli.api import _execute_step_command_body

    for _ in _execute_step_command_body(args, instance, run):
        pass


class SlurmStepHandler(StepHandler):
    """Launches, watches and cancels the steps of one run (see the module docstring)."""

    def __init__(self, run_config: dict[str, Any]) -> None:
        super().__init__()
        self._run_config = run_config  # the executor's config: this launch's settings
        self._resolved: ResolvedSlurm | SlurmProblem | None = None
        self._jobs: dict[str, SubmittedJob] = {}  # step key -> its job (array task)
        self._array_tasks: dict[str, SubmittedJob] = {}  # submitted with a sibling, unlaunched
        self._local: set[str] = set()  # steps run in this process
        self._states: dict[str, JobState | None] = {}
        self._states_at = -float("inf")

    @property
    def name(self) -> str:
        return "SlurmStepHandler"

    def _settings(self, context: StepHandlerContext) -> ResolvedSlurm:
        """The run's settings, checked once: a problem fails every step before any runs."""
        if self._resolved is None:
            try:
                self._resolved = run_settings(self._run_config, context.dagster_run)
            except (SlurmSettingsError, SlurmError, StoreError) as error:
                self._resolved = SlurmProblem(str(error))
        if isinstance(self._resolved, SlurmProblem):
            raise SlurmError(self._resolved.message)
        return self._resolved

    def _log_dir(self, context: StepHandlerContext) -> Path:
        base = self._settings(context).settings.log_dir
        root = Path(base) if base else Path(context.instance.root_directory) / "slurm"
        folder = root / context.execute_step_args.run_id
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def launch_step(self, step_handler_context: StepHandlerContext) -> Iterator[DagsterEvent]:
        context = step_handler_context
        step_key = _single_step(context)
        step_context = context.get_step_context(step_key)
        run = context.dagster_run
        try:
            self._settings(context)
        except SlurmError as error:
            yield _failure(step_context, str(error))
            return
        where = placement(
            step_key,
            dict(context.step_tags[step_key]),
            run.tags.get("dagster/partition"),
            forced_assets(run.run_config),
        )
        if not where.job:
            yield DagsterEvent.engine_event(
                step_context,
                f"{step_key} runs in the run's process, no Slurm job: {where.why}.",
                EngineEventData(),
            )
            self._local.add(step_key)
            run_in_this_process(context.execute_step_args, context.instance, run)
            return
        job = self._array_tasks.pop(step_key, None)
        if job is None:
            try:
                job = self._submit(context, step_key, where.training)
            except SlurmError as error:
                yield _failure(step_context, str(error))
                return
        self._jobs[step_key] = job
        yield DagsterEvent.step_worker_starting(
            step_context,
            message=f"{step_key} submitted to Slurm as job {job.job_id} (log {job.log}).",
            metadata={JOB_ID: job.job_id, "Slurm log": str(job.log)},
        )

    def _submit(self, context: StepHandlerContext, step_key: str, training: bool) -> SubmittedJob:
        """sbatch the step; a study shard with unlaunched sibling shards: all of them, as one
        job array (they become ready together, so the rest are launched right after)."""
        resolved = self._settings(context)
        args = context.execute_step_args
        launched = set(self._jobs) | set(self._array_tasks)
        keys = _unlaunched_siblings(args, step_key, launched) if "[" in step_key else []
        keys = keys or [step_key]
        op = step_key.partition("[")[0].rsplit(".", 1)[-1]
        name = f"tabs-{args.run_id[:8]}-{op}"
        folder = self._log_dir(context)
        array = len(keys) > 1 or "[" in step_key
        output = folder / (f"{op}-%A_%a.out" if array else f"{op}-%j.out")
        commands = [step_command(copy(args, step_keys_to_execute=[key])) for key in keys]
        options = sbatch_options(resolved, training, name, output, len(keys) if array else None)
        try:
            job_id = submit(options, job_script(resolved, commands))
        except subprocess.CalledProcessError as error:
            raise SlurmError(refusal_message(error.stderr or "", resolved, step_key)) from None
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SlurmError(f"sbatch could not be run for step {step_key}: {error}") from None
        if not array:
            return SubmittedJob(job_id, folder / f"{op}-{job_id}.out")
        jobs = {
            key: SubmittedJob(f"{job_id}_{index}", folder / f"{op}-{job_id}_{index}.out")
            for index, key in enumerate(keys)
        }
        self._array_tasks.update({key: job for key, job in jobs.items() if key != step_key})
        return jobs[step_key]

    def _state(self, job_id: str) -> JobState | None:
        now = time.monotonic()
        if job_id not in self._states or now - self._states_at > STATUS_MAX_AGE_S:
            self._states = job_states([job.job_id for job in self._jobs.values()])
            self._states_at = now
        return self._states.get(job_id)

    def check_step_health(self, step_handler_context: StepHandlerContext) -> CheckStepHealthResult:
        step_key = _single_step(step_handler_context)
        job = self._jobs.get(step_key)
        if job is None:
            if step_key in self._local:  # ran (synchronously) in this process
                return CheckStepHealthResult.healthy()
            return CheckStepHealthResult.unhealthy(f"{step_key} has no Slurm job of this run")
        state = self._state(job.job_id)
        tail = log_tail(job.log)
        where = f"job log {job.log}" + (f": {tail}" if tail else "")
        if state is None:
            return CheckStepHealthResult.unhealthy(
                f"Slurm job {job.job_id} is no longer known to Slurm and its step never "
                f"reported an end; {where}"
            )
        if state.state in FAILED_STATES:
            reason = "" if state.reason in ("", "None") else f", reason {state.reason}"
            code = f", exit code {state.exit_code}" if state.exit_code else ""
            return CheckStepHealthResult.unhealthy(
                f"Slurm job {job.job_id} ended {state.state}{reason}{code}; {where}"
            )
        if state.state == "COMPLETED":
            job.completed_since = job.completed_since or time.monotonic()
            if time.monotonic() - job.completed_since > REPORT_GRACE_S:
                return CheckStepHealthResult.unhealthy(
                    f"Slurm job {job.job_id} completed but its step never reported an end; {where}"
                )
        return CheckStepHealthResult.healthy()

    def terminate_step(self, step_handler_context: StepHandlerContext) -> Iterator[DagsterEvent]:
        step_key = _single_step(step_handler_context)
        job = self._jobs.get(step_key)
        if job is None:
            return
        completed = subprocess.run(
            ["scancel", job.job_id], capture_output=True, text=True, timeout=60
        )
        result = "cancelled" if completed.returncode == 0 else f"scancel: {completed.stderr}"
        yield DagsterEvent.engine_event(
            step_handler_context.get_step_context(step_key),
            f"Slurm job {job.job_id} of {step_key} {result.strip()}",
            EngineEventData(metadata={JOB_ID: job.job_id}),
        )


def _failure(step_context: Any, message: str) -> DagsterEvent:
    """The step failed for a reason the user fixes (settings, sbatch's refusal): the message
    alone, no traceback."""
    info = SerializableErrorInfo(message, [], SlurmError.__name__)
    return DagsterEvent.step_failure_event(
        step_context, StepFailureData(info, None), message=message
    )


def _single_step(context: StepHandlerContext) -> str:
    keys = context.execute_step_args.step_keys_to_execute or []
    if len(keys) != 1:
        raise ValueError(f"the Slurm step handler launches one step at a time, got {keys}")
    return keys[0]


def _unlaunched_siblings(args: ExecuteStepArgs, step_key: str, launched: set[str]) -> list[str]:
    """The steps mapped from the same dynamic output as ``step_key`` (a study's shards), in
    mapping order, that have no job yet."""
    base, _, mapping_key = step_key.partition("[")
    mappings = args.known_state.dynamic_mappings if args.known_state else {}
    for outputs in mappings.values():
        for keys in outputs.values():
            if mapping_key.rstrip("]") in keys:
                siblings = [f"{base}[{key}]" for key in keys]
                return [key for key in siblings if key not in launched]
    return []


@executor(
    name="slurm",
    config_schema=Permissive(),
    requirements=multiple_process_executor_requirements(),
)
def slurm_executor(init_context: InitExecutorContext) -> Executor:
    """Computing steps as Slurm jobs, a study's shards as a job array (README, "Slurm").
    Run config ``execution: config:`` takes the fields of ``SlurmSettings`` for this run;
    they are checked when the first step is launched (a problem fails every step, no traceback).
    """
    return StepDelegatingExecutor(
        SlurmStepHandler(dict(init_context.executor_config)),
        retries=RetryMode.ENABLED,
        sleep_seconds=POLL_S,
        check_step_health_interval_seconds=HEALTH_CHECK_S,
    )
