"""tabs_assets.graph.code: store keys change exactly when the code a result runs does.

Edits are made on a temporary copy of the package (``code.PACKAGE_DIR`` points at it), never
on the real sources.
"""

import ast
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tabs_assets.config.loading import resolve_config
from tabs_assets.graph import code
from tabs_assets.graph import nodes as graph

CONFIGS = {
    "shift": {},
    "revise": {"explainer.method": "revise"},
    "regularized": {"generative_model.path_regularization": {"path_loss": "boundary_cross"}},
}
COMMENT_EDIT = '\n# a comment\n\n"""A bare string: documentation at the end."""\n'
Edit = Callable[[Path], None]


def _keys(package: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every asset's key of each of CONFIGS, with the sources in ``package``."""
    monkeypatch.setattr(code, "PACKAGE_DIR", package)
    keys = {}
    for label, overrides in CONFIGS.items():
        config = resolve_config([], {"name": "k", **overrides}).config
        keys |= {f"{label}/{name}": graph.store_key(name, config) for name in graph.NODES}
    return keys


def _edited_copy(tmp_path: Path, edit: Edit) -> Path:
    package = Path(tempfile.mkdtemp(dir=tmp_path)) / "tabs_assets"
    shutil.copytree(code.PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    edit(package)
    return package


def _replace(relative: str, old: str, new: str) -> Edit:
    def edit(package: Path) -> None:
        path = package / relative
        text = path.read_text()
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new, 1))

    return edit


def _changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edit: Edit) -> set[str]:
    original = _keys(code.PACKAGE_DIR, monkeypatch)
    edited = _keys(_edited_copy(tmp_path, edit), monkeypatch)
    return {name for name in original if edited[name] != original[name]}


def _all(*assets: str, configs: tuple[str, ...] = tuple(CONFIGS)) -> set[str]:
    return {f"{label}/{asset}" for label in configs for asset in assets}


def test_a_copy_and_comments_change_no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def comment(package: Path) -> None:  # comments, docstrings, blank lines: no behaviour change
        path = package / "science" / "explainers" / "paths.py"
        text = path.read_text()
        edited = text.replace('"""Counterfactual paths', '"""Edited: counterfactual paths', 1)
        edited = edited.replace("\nimport json", "\n# why json\n\nimport json", 1)
        assert edited.count("Edited") == 1 and "# why json" in edited
        path.write_text(edited + COMMENT_EDIT)

    assert _changed(tmp_path, monkeypatch, lambda package: None) == set()
    assert _changed(tmp_path, monkeypatch, comment) == set()


def _add_statement(relative: str, function: str, statement: str = "edited = 1") -> Edit:
    """Put ``statement`` first in ``function``'s body: a change of behaviour for the digest."""

    def edit(package: Path) -> None:
        path = package / relative
        lines = path.read_text().splitlines(keepends=True)
        tree = ast.parse("".join(lines))
        node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function)
        first = node.body[0]
        lines.insert(first.lineno - 1, " " * first.col_offset + statement + "\n")
        path.write_text("".join(lines))

    return edit


PATHS_AND_AFTER = ("counterfactual_paths", "explanation_metrics", "plots")


def test_one_explainers_edit_changes_only_its_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit = _add_statement("science/explainers/descent.py", "descent")
    changed = _changed(tmp_path, monkeypatch, edit)
    assert changed == _all(*PATHS_AND_AFTER, configs=("revise",))


def test_a_latent_shift_edit_retrains_only_the_flow_that_runs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit = _add_statement("science/explainers/latent_shift.py", "latent_shift")
    changed = _changed(tmp_path, monkeypatch, edit)
    shifting = _all(*PATHS_AND_AFTER, configs=("shift", "regularized"))
    assert changed == shifting | {"regularized/generative_model"}


def test_a_plotting_style_edit_changes_the_entries_whose_figures_it_draws(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit = _add_statement("science/plotting/style.py", "figure_bytes")
    changed = _changed(tmp_path, monkeypatch, edit)
    # the confusion matrix and the learning curves are stored in the model entries, so the
    # models' keys change and, through them, everything downstream; the data set's does not
    assert changed == _all(*(name for name in graph.NODES if name != "dataset"))


def test_a_new_unused_explainer_changes_no_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_config = (
        "\n\nclass GrowingSphereConfig(BaseExplainerConfig):\n"
        '    method: Literal["growing_sphere"] = "growing_sphere"\n'
        "    n_steps: int = Field(99, ge=1)\n"
    )
    new_search = "\n\ndef _growing_sphere(inputs: Tensor) -> Tensor:\n    return inputs * 2\n"

    def add(package: Path) -> None:
        for relative, text in (
            ("config/explainers.py", new_config),
            ("science/explainers/descent.py", new_search),
        ):
            path = package / relative
            path.write_text(path.read_text() + text)

    assert _changed(tmp_path, monkeypatch, add) == set()


def test_a_file_move_changes_no_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def move(package: Path) -> None:
        (package / "science" / "plotting" / "style.py").rename(package / "science" / "look.py")
        (package / "science" / "losses.py").rename(package / "science" / "plotting" / "losses_.py")
        renames = {
            "tabs_assets.science.plotting.style": "tabs_assets.science.look",
            "tabs_assets.science.losses": "tabs_assets.science.plotting.losses_",
        }
        for path in package.rglob("*.py"):
            text = path.read_text()
            for old, new in renames.items():
                text = re.sub(rf"\b{re.escape(old)}\b", new, text)
            path.write_text(text)

    assert _changed(tmp_path, monkeypatch, move) == set()


def test_a_docstring_is_stripped_but_code_is_not() -> None:
    def function_code(source: str) -> str:
        return code.read_module(source.encode(), "tabs_assets.m", False).definitions["f"].code

    bare = function_code('def f():\n    """Doc."""\n    return 1\n')
    assert function_code("def f():\n    # why\n\n    return 1\n") == bare
    assert function_code("def f():\n    return 2\n") != bare


def test_every_config_asset_is_a_root_of_its_node_and_every_root_exists() -> None:
    assets_dir = code.PACKAGE_DIR / "defs" / "assets"
    for path in assets_dir.glob("*.py"):
        module = f"tabs_assets.defs.assets.{path.stem}"
        found = re.findall(r'config_asset\(\s*"(\w+)"[^)]*\)\ndef (\w+)', path.read_text())
        for asset, function in found:
            assert f"{module}:{function}" in graph.NODES[asset].roots, asset
    every_root = {root for node in graph.NODES.values() for root in node.roots}
    every_root |= {root for roots in graph.STUDY_ROOTS.values() for root in roots}
    every_root |= graph.SELECTABLE | graph.RESULT_NEUTRAL
    assert dict(code.reached(sorted(every_root)))  # raises KeyError naming a missing root
    with pytest.raises(KeyError, match=r"tabs_assets\.science\.nowhere:f"):
        list(code.reached(["tabs_assets.science.nowhere:f"]))


def test_a_result_neutral_edit_changes_no_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    edit = _add_statement("ui/describe.py", "epoch_progress", "started_at = 0")
    assert _changed(tmp_path, monkeypatch, edit) == set()
