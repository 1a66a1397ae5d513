"""What a Slurm job runs: `dagster api execute_step ...`, ended silently when Slurm ends the job.

    python -m tabs_assets.defs.slurm.job_entry api execute_step --compressed-input-json ...

Slurm ends a job (scancel, time limit, preemption) with SIGTERM to every process of the job,
then SIGKILL after KillWait. Dagster turns the SIGTERM into an interrupted step whose failure says
only "DagsterExecutionInterruptedError", with a traceback. In a job started here, a step body
that Slurm interrupts (``ended_quietly_by_slurm``) exits at once instead, without reporting; the
run's executor then fails the step with what the user needs: the job id, Slurm's state and reason
and the end of the job's log (slurm.py, ``check_step_health``). Nothing is left half-written:
store entries are renamed into place whole, the OS releases the key locks of a dead process.
"""

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from dagster._core.errors import DagsterExecutionInterruptedError

from tabs_assets import settings


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        with suppress(OSError, IndexError, ValueError):
            if entry.name.isdigit():  # "pid (comm) state ppid ...", comm may hold spaces
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def _kill_descendants(pid: int) -> None:
    for child in _children(pid):
        _kill_descendants(child)
        with suppress(OSError):
            os.kill(child, signal.SIGKILL)


@contextmanager
def ended_quietly_by_slurm() -> Iterator[None]:
    """Around a step's body: in a job of ours, Slurm's SIGTERM ends the process (and its
    children, e.g. Dagster's log-copying ``tail``) at once, without a failure event."""
    try:
        yield
    except DagsterExecutionInterruptedError:
        if settings.in_slurm_job():
            _kill_descendants(os.getpid())
            os._exit(128 + signal.SIGTERM)
        raise


if __name__ == "__main__":
    os.environ[settings.IN_SLURM_JOB_ENV] = "1"
    from dagster._cli import main

    main()
