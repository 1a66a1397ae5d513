"""The Slurm executor: Dagster's StepDelegatingExecutor with a step handler that submits jobs."""

import subprocess
import time
from collections.abc import Iterator
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

from tabs_assets.config.slurm import (
    ResolvedSlurm,
    SlurmSettingsError,
)
from tabs_assets.defs.slurm.jobs import (
    FAILED_STATES,
    STATUS_MAX_AGE_S,
    JobState,
    SlurmError,
    SubmittedJob,
    job_script,
    job_states,
    log_tail,
    refusal_message,
    sbatch_options,
    step_command,
    submit,
)
from tabs_assets.defs.slurm.placement import forced_assets, placement
from tabs_assets.defs.slurm.settings_layers import SlurmProblem, run_settings
from tabs_assets.store.errors import StoreError

HEALTH_CHECK_S = 5


# How often the run's process reads the event log for its steps' progress. Dagster's default
# (1 s) makes a fully cached run of 13 steps take 15 s; at 0.1 s it takes 7 s (in process: 3 s).
POLL_S = 0.1


JOB_ID = "Slurm job id"  # metadata label of a step's job (STEP_WORKER_STARTING event)


# A job COMPLETED this long ago whose step never reported its end failed to report.
REPORT_GRACE_S = 60.0


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
