"""The checkout's git state, tagged on every run: commit, dirty flag and uncommitted diff."""

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GitState:
    commit: str
    dirty: bool
    diff: str


GIT_STATE_TTL_S = 30.0  # a study logs hundreds of runs: ask git once per half minute
_GIT_STATES: dict[Path, tuple[float, GitState]] = {}


def git_state(directory: Path) -> GitState:
    """Commit, dirty flag and uncommitted diff of the checkout, read at most every
    ``GIT_STATE_TTL_S`` seconds per process."""
    cached = _GIT_STATES.get(directory)
    if cached is not None and time.monotonic() - cached[0] < GIT_STATE_TTL_S:
        return cached[1]
    state = _read_git_state(directory)
    _GIT_STATES[directory] = (time.monotonic(), state)
    return state


def _read_git_state(directory: Path) -> GitState:
    """Commit, dirty flag and uncommitted diff of the checkout (``unknown`` outside git)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=directory, capture_output=True, text=True, check=True, timeout=30
        ).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        status = git("status", "--porcelain", "--untracked-files=no").strip()
        diff = git("diff", "HEAD") if status else ""
    except (OSError, subprocess.SubprocessError):
        return GitState("unknown", False, "")
    return GitState(commit, bool(status), diff)
