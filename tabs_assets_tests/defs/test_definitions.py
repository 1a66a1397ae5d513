"""tabs_assets.defs.definitions: the Dagster code location."""

import subprocess
import sys

from tabs_assets_tests.conftest import REPO, run_python


def test_importing_definitions_pulls_no_heavy_libraries() -> None:
    output = run_python(
        "import sys, tabs_assets.defs.definitions\n"
        "print(sorted(m for m in ('lightning', 'mlflow', 'torch') if m in sys.modules))"
    )
    assert output.strip() == "[]"


def test_dagster_definitions_validate_passes_for_the_workspace(project_env) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
