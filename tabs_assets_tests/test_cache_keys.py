"""Issue #10: store keys change exactly when a result can change.

Edits are made on a temporary copy of the package (``graph.PACKAGE_DIR`` points at it), never
on the real sources.
"""

import shutil
from pathlib import Path

import pytest

from tabs_assets.config.loading import resolve_config
from tabs_assets.orchestration import graph

REGULARIZED = {"generative_model.path_regularization": {"path_loss": "boundary_cross"}}
COMMENT_EDIT = '\n# a comment\n\n"""A bare string: documentation at the end."""\n'
CODE_EDIT = "\nSOME_CONSTANT = 1\n"


def _keys(package: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every asset's key of a plain and a path-regularized config, with sources in ``package``."""
    monkeypatch.setattr(graph, "PACKAGE_DIR", package)
    plain = resolve_config([], {"name": "k", "explainer.method": "revise"}).config
    regularized = resolve_config([], {"name": "k", **REGULARIZED}).config
    keys = {f"plain/{name}": graph.store_key(name, plain) for name in graph.NODES}
    keys |= {f"regularized/{name}": graph.store_key(name, regularized) for name in graph.NODES}
    return keys


def _edited_copy(tmp_path: Path, name: str, transform) -> Path:
    package = tmp_path / name
    shutil.copytree(graph.PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    target = package / "science" / "explainers.py"
    target.write_text(transform(target.read_text()))
    return package


def test_comment_edit_keeps_every_key_and_code_edit_changes_only_dependents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = _keys(graph.PACKAGE_DIR, monkeypatch)
    copy = _edited_copy(tmp_path, "same", lambda text: text)
    assert _keys(copy, monkeypatch) == original  # the digest does not depend on where it lives

    def comment(text: str) -> str:  # comments, docstrings, blank lines: no behaviour change
        text = text.replace('"""Counterfactual path', '"""Edited: counterfactual path', 1)
        text = text.replace('"""The identity codec', '"""Edited: the identity codec', 1)
        return text.replace("\nimport json", "\n# why json\n\nimport json", 1) + COMMENT_EDIT

    assert _keys(_edited_copy(tmp_path, "comment", comment), monkeypatch) == original

    code = _keys(_edited_copy(tmp_path, "code", lambda text: text + CODE_EDIT), monkeypatch)
    same = {
        "plain/dataset",
        "plain/classifier",
        "plain/generative_model",
        "plain/reference_density",
        "regularized/dataset",
        "regularized/classifier",
        "regularized/reference_density",
    }
    assert {name for name in original if code[name] == original[name]} == same
    assert original["plain/generative_model"] == original["plain/reference_density"]  # shared


def test_docstring_of_a_function_is_stripped_but_its_code_is_not(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text('def f():\n    """Doc."""\n    return 1\n')
    bare = graph.code_text(source)
    source.write_text("def f():\n    # why\n\n    return 1\n")
    assert graph.code_text(source) == bare
    source.write_text("def f():\n    return 2\n")
    assert graph.code_text(source) != bare
