"""What the benchmarks share: the wall time of a command in a fresh process."""

import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(command: list[str], env: dict[str, str]) -> float:
    """Seconds ``command`` took, run from the repository root; its output if it failed."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed:\n{(done.stderr + done.stdout)[-3000:]}")
    return seconds
