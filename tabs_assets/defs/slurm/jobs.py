"""Slurm's command line: job scripts, sbatch, squeue and scontrol, and what their answers mean."""

import re
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dagster._grpc.types import ExecuteStepArgs

from tabs_assets.config.slurm import (
    ResolvedSlurm,
    SlurmSettings,
)

JOB_ENTRY = "tabs_assets.defs.slurm.job_entry"


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
    """`dagster api execute_step ...` through job_entry.py (quiet when Slurm ends the job), run
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
