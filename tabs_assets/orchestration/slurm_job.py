"""What a Slurm job runs: `dagster api execute_step ...`, ended silently when Slurm ends the job.

    python -m tabs_assets.orchestration.slurm_job api execute_step --compressed-input-json ...

Slurm ends a job (scancel, time limit, preemption) with SIGTERM, then SIGKILL after KillWait.
Dagster would turn the SIGTERM into an interrupted step whose failure says only
"DagsterExecutionInterruptedError". Here the job exits at once without reporting; the run's
executor then fails the step with what the user needs: the job id, Slurm's state and reason and
the end of the job's log (slurm.py, ``check_step_health``). Nothing is left half-written: store
entries are renamed into place whole, and the OS releases the key locks of a dead process.

SIGTERM is blocked in every thread and taken by one thread that waits for it, so the signal
handlers Dagster installs for the step are never involved. Child processes inherit the blocked
signal (Dagster's log-capturing ``tail`` processes, for one), so they are killed first.
"""

import os
import signal
import threading
from contextlib import suppress
from pathlib import Path


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


def exit_on_sigterm() -> None:
    """From now on SIGTERM ends this process and its children at once (call before any other
    thread starts)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    def wait() -> None:
        signal.sigwait({signal.SIGTERM})
        _kill_descendants(os.getpid())
        os._exit(128 + signal.SIGTERM)

    threading.Thread(target=wait, name="slurm-sigterm", daemon=True).start()


if __name__ == "__main__":
    exit_on_sigterm()
    from dagster._cli import main

    main()
