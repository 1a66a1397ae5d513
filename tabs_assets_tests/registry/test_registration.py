"""tabs_assets.registry.registration: bad input stops at `tabs-assets register`.

Generated bad configs, studies and data files go through ``tabs-assets register``; each exits 2,
names the dotted path or the absolute file path, prints no traceback and leaves the store and the
registry untouched.
"""

import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from tabs_assets.cli.main import main
from tabs_assets.config.base import MAX_SEED
from tabs_assets.config.experiment import MAX_NAME_LENGTH
from tabs_assets.config.loading import resolve_config
from tabs_assets.config.study import MAX_SEEDS
from tabs_assets.config.yaml_files import MAX_YAML_BYTES
from tabs_assets.registry.records import Registry
from tabs_assets.settings import MAX_MEMORY_GB_ENV
from tabs_assets.store.entries import Store
from tabs_assets_tests.conftest import REPO

# (what the file says, what the message must contain: {dir} = the config's absolute folder).
Writer = Callable[[Path], None]


@dataclass
class Case:
    id: str
    yaml: str | bytes
    expected: str  # a substring, or 're:' + a regex; {dir} is the config file's folder
    extra_files: Writer | None = None
    overrides: list[str] = field(default_factory=list)


CASES: list[Case] = []


def _add(case_id: str, yaml_text: str | bytes, expected: str, **kwargs) -> None:
    CASES.append(Case(case_id, yaml_text, expected, **kwargs))


def _nested(dotted: str, value: str) -> str:
    """``a.b.c`` and a YAML value -> a flow mapping ``{a: {b: {c: value}}}``."""
    text = value
    for part in reversed(dotted.split(".")):
        text = f"{{{part}: {text}}}"
    return text


def _config(dotted: str, value: str) -> str:
    """A config whose only non-default value is ``dotted``, written nested in flow style."""
    top, _, rest = dotted.partition(".")
    return f"name: bad\n{top}: {_nested(rest, value) if rest else value}\n"


# --- ranges ---------------------------------------------------------------------------------
RANGES = {
    "dataset.n_points": ["0", "-1"],
    "dataset.n_dims": ["1", "0", "-3"],
    "dataset.n_uncorrelated_dims": ["1", "0"],
    "explanation.max_points": ["0", "-5"],
    "explanation.chunk_size": ["0", "-1"],
    "metrics.lof_neighbors": ["0", "-2"],
    "metrics.lof_max_train_rows": ["0"],
    "metrics.ynn_neighbors": ["0", "-1"],
    "plots.n_example_paths": ["0", "-1"],
    "plots.grid_resolution": ["9", "0", "-100"],
    "classifier.training.max_epochs": ["0", "-1"],
    "classifier.training.patience": ["0"],
    "classifier.training.batch_size": ["0", "-1"],
    "classifier.training.learning_rate": ["0", "-1", "100"],
    "classifier.training.min_delta": ["-1"],
    "classifier.dropout": ["-0.1", "1.0", "2"],
    "generative_model.coupling_layers": ["1", "0", "-4"],
    "generative_model.training.max_epochs": ["0"],
    "reference_density.training.batch_size": ["0"],
    "explainer.n_steps": ["0", "-1"],
    "explainer.step_size": ["0", "-0.01"],
    "dataset.split.train": ["0", "1", "1.5", "-0.1"],
    "dataset.split.val": ["0.0", "1.0"],
}
for _key, _values in RANGES.items():
    for _value in _values:
        _add(f"range-{_key}={_value}", _config(_key, _value), _key)

_add("range-split-sum", _config("dataset.split.test", "0.5"), "dataset.split: train + val + test")

SEEDS = [
    "dataset.seed",
    "dataset.split.seed",
    "explanation.seed",
    "classifier.training.seed",
    "generative_model.training.seed",
    "reference_density.training.seed",
]
for _key in SEEDS:
    for _value in ("-1", str(MAX_SEED + 1), str(2**64)):
        _add(f"seed-{_key}={_value}", _config(_key, _value), _key)

HIDDEN = {
    "classifier.hidden": ["[]", "[0]", "[-5]", "[50, -1]", "[true]", "['10']"],
    "generative_model.hidden": ["[0]", "[]", "[20, 0]"],
    "reference_density.hidden": ["[0]", "[]"],
}
for _key, _values in HIDDEN.items():
    for _value in _values:
        _add(f"hidden-{_key}={_value}", _config(_key, _value), _key)

# --- non-finite floats ----------------------------------------------------------------------
FLOATS = [
    "dataset.split.train",
    "classifier.dropout",
    "classifier.training.learning_rate",
    "classifier.training.min_delta",
    "generative_model.training.learning_rate",
    "explainer.step_size",
    "loss.weight",
    "plots.grid_resolution",
    "dataset.n_points",
]
for _key in FLOATS:
    for _value in (".inf", "-.inf", ".nan", ".NaN"):
        _add(f"nonfinite-{_key}={_value}", _config(_key, _value), _key)
_add("nonfinite-in-list", _config("classifier.hidden", "[50, .inf]"), "classifier.hidden.1")
_add(
    "nonfinite-in-label-mapping",
    "name: bad\ndataset: {kind: tabular_file, path: x.csv, label_column: y, "
    "label_mapping: {a: .nan}}\n",
    "dataset.label_mapping.a",
)

# --- coercions: no bool or text becomes a number ---------------------------------------------
COERCE_INT = ["dataset.n_points", "explainer.n_steps", "classifier.training.max_epochs"]
COERCE_INT += ["dataset.seed", "plots.grid_resolution", "generative_model.coupling_layers"]
for _key in COERCE_INT:
    for _value in ("true", "'10'", "12.5", "'1e3'"):
        _add(f"coerce-{_key}={_value}", _config(_key, _value), _key)
for _key in ["classifier.dropout", "explainer.step_size", "dataset.split.train", "loss.weight"]:
    for _value in ("true", "'0.1'", "[0.1]"):
        _add(f"coerce-{_key}={_value}", _config(_key, _value), _key)
for _key in ["dataset.split.stratify", "classifier.batch_norm", "dataset.gaussian"]:
    for _value in ("1", "'yes'"):
        _add(f"coerce-{_key}={_value}", _config(_key, _value), _key)

# --- resources: estimate and limit ----------------------------------------------------------
RESOURCES = {
    "dataset.n_points": "1000000000000",
    "explainer.n_steps": "1000000000",
    "classifier.hidden": "[1000000000]",
    "classifier.training.max_epochs": "1000000000000",
    "plots.grid_resolution": "1000000",
    "dataset.n_dims": "10000000",
    "generative_model.coupling_layers": "1000000",
    "classifier.training.batch_size": "1000000000000000",
    "generative_model.hidden": "[100000000, 100000000]",
    "reference_density.training.max_epochs": "100000000000",
}
for _key, _value in RESOURCES.items():
    _add(f"resources-{_key}", _config(_key, _value), r"re:[a-z_]+\.[a-z_.]+: .*limit is")
_add("resources-step_size", _config("explainer.step_size", "1e308"), "explainer.step_size")
_add(
    "resources-max_shift",
    _config("explainer.threshold_search.max_shift", "1.0e+300"),
    "explainer.threshold_search.max_shift",
)

# --- YAML: duplicate keys, bombs, sizes, encodings ------------------------------------------
_add("dup-top", "name: a\nname: b\n", "{dir}")
_add("dup-nested", "name: a\nclassifier:\n  dropout: 0.1\n  dropout: 0.2\n", "{dir}")
_add("dup-flow", "name: a\nexplainer: {n_steps: 3, n_steps: 4}\n", "{dir}")
_add("dup-dataset", "name: a\ndataset: {kind: cake_on_sea}\ndataset: {seed: 1}\n", "{dir}")
_add("dup-deep", "name: a\nclassifier:\n  training:\n    seed: 1\n    seed: 1\n", "{dir}")
_add("nest-list-5000", "name: a\nx: " + "[" * 5000 + "]" * 5000 + "\n", "{dir}")
_add("nest-map-5000", "name: a\nx: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", "{dir}")
_add("nest-block-40", "name: a\n" + "".join("  " * i + f"k{i}:\n" for i in range(40)), "{dir}")
_add("anchor-recursive-list", "name: a\nx: &a [1, *a]\n", "{dir}")
_add("anchor-recursive-map", "name: a\nx: &a {y: *a}\n", "{dir}")
_laughs = "name: a\nl0: &l0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n" for i in range(1, 10)
)
_add("billion-laughs-list", _laughs, "{dir}")
_map_laughs = "name: a\nm0: &m0 {a: x, b: x, c: x, d: x, e: x, f: x, g: x, h: x, i: x}\n" + (
    "".join(
        f"m{i}: &m{i} {{" + ", ".join(f"{k}: *m{i - 1}" for k in "abcdefghi") + "}\n"
        for i in range(1, 10)
    )
)
_add("billion-laughs-map", _map_laughs, "{dir}")
_add(
    "too-many-aliases",
    "name: a\nv: &v 1\nx: [" + ", ".join(["*v"] * 200) + "]\n",
    "{dir}",
)
_add("too-big", "name: a\n" + "#" * (MAX_YAML_BYTES + 10) + "\n", "{dir}")
_add("description-20mb-file", "name: a\ndescription: " + "x" * 2_000_000 + "\n", "{dir}")
_add("description-too-long", "name: a\ndescription: " + "x" * 20_000 + "\n", "description")
_add("non-utf8", b"name: a\ndescription: \xff\xfe caf\xe9\n", "{dir}")
_add("binary", bytes(range(256)) * 4, "{dir}")
_add("top-level-list", "- name: a\n", "{dir}")
_add("top-level-scalar", "just text\n", "{dir}")
_add("not-yaml", "name: [unclosed\n", "{dir}")
_add("tabs", "name: a\n\tclassifier: {}\n", "{dir}")
for _length in (MAX_NAME_LENGTH + 1, 250, 10_000):
    _add(f"name-{_length}", f"name: {'n' * _length}\n", "name")
_add("name-uppercase", "name: Bad\n", "name")
_add("name-slash", "name: a/b\n", "name")
_add("name-number", "name: 12\n", "name")


# --- data files -----------------------------------------------------------------------------
def _frame(rows: int = 30, classes: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "a": rng.normal(size=rows),
            "b": rng.normal(size=rows),
            "y": [f"c{i % classes}" for i in range(rows)],
        }
    )


def _csv(name: str, frame: pd.DataFrame) -> Writer:
    return lambda folder: frame.to_csv(folder / name, index=False)


def _bytes(name: str, data: bytes) -> Writer:
    return lambda folder: (folder / name).write_bytes(data)


def _data_config(path: str, extra: str = "") -> str:
    return f"name: bad\ndataset: {{kind: tabular_file, path: '{path}', label_column: y{extra}}}\n"


_text = _frame()
_text["b"] = ["word"] * len(_text)
_nan = _frame()
_nan.loc[3, "a"] = np.nan
_one_class = _frame(classes=1)
_few = _frame(rows=12, classes=4).iloc[:7]
_missing_label = _frame()
_missing_label.loc[0, "y"] = None
DATA = {
    "missing-file": (_data_config("{dir}/nope.csv"), None, "{dir}/nope.csv"),
    "missing-relative": (_data_config("data/nope.csv"), None, "{dir}/data/nope.csv"),
    "directory": (_data_config("{dir}"), None, "{dir}"),
    "dev-zero": (_data_config("/dev/zero"), None, "/dev/zero"),
    "etc-passwd": (_data_config("/etc/passwd"), None, "/etc/passwd"),
    "txt-suffix": (_data_config("d.txt"), _bytes("d.txt", b"a,b,y\n1,2,c0\n"), "{dir}/d.txt"),
    "empty-csv": (_data_config("e.csv"), _bytes("e.csv", b""), "{dir}/e.csv"),
    "binary-csv": (_data_config("g.csv"), _bytes("g.csv", bytes(range(256)) * 8), "{dir}/g.csv"),
    "text-parquet": (
        _data_config("t.parquet"),
        _bytes("t.parquet", b"a,b,y\n1,2,3\n"),
        "{dir}/t.parquet",
    ),
    "no-label-column": (
        _data_config("d.csv").replace("label_column: y", "label_column: z"),
        _csv("d.csv", _frame()),
        "{dir}/d.csv",
    ),
    "no-feature-column": (
        _data_config("d.csv", ", feature_columns: [a, q]"),
        _csv("d.csv", _frame()),
        "{dir}/d.csv",
    ),
    "text-feature": (_data_config("d.csv"), _csv("d.csv", _text), "{dir}/d.csv"),
    "nan-feature": (_data_config("d.csv"), _csv("d.csv", _nan), "{dir}/d.csv"),
    "one-class": (_data_config("d.csv"), _csv("d.csv", _one_class), "{dir}/d.csv"),
    "few-rows-per-class": (_data_config("d.csv"), _csv("d.csv", _few), "{dir}/d.csv"),
    "missing-label": (_data_config("d.csv"), _csv("d.csv", _missing_label), "{dir}/d.csv"),
    "label-is-feature": (
        _data_config("d.csv", ", feature_columns: [a, y]"),
        _csv("d.csv", _frame()),
        "{dir}/d.csv",
    ),
    "unknown-categorical": (
        _data_config("d.csv", ", categorical_columns: [q]"),
        _csv("d.csv", _frame()),
        "{dir}/d.csv",
    ),
    "label-mapping-gap": (
        _data_config("d.csv", ", label_mapping: {c0: 0, c1: 2}"),
        _csv("d.csv", _frame()),
        "{dir}/d.csv",
    ),
    "header-only": (_data_config("h.csv"), _bytes("h.csv", b"a,b,y\n"), "{dir}/h.csv"),
}
for _name, (_yaml, _writer, _expected) in DATA.items():
    _add(f"data-{_name}", _yaml, _expected, extra_files=_writer)


# --- studies --------------------------------------------------------------------------------
def _study(body: str) -> str:
    return "study:\n  name: s\n" + body


_add("study-base-folder", _study("  base: [sub]\n"), "study.base.0")
_add("study-base-missing", _study("  base: [nope.yaml]\n"), "study.base.0")
_add(
    "study-sweep-4^10",
    _study(
        "  sweep: {"
        + ", ".join(f"k{i}: [1, 2, 3, 4]" for i in range(10)).replace("k0", "dataset.seed")
        + "}\n"
    ),
    "study.sweep",
)
_add(
    "study-seeds-100000",
    _study("  seeds: {values: [" + ", ".join(map(str, range(100_000))) + "]}\n"),
    "{dir}",
)
_add(
    "study-seeds-too-many",
    _study("  seeds: {values: [" + ", ".join(map(str, range(MAX_SEEDS + 1))) + "]}\n"),
    "study.seeds.values",
)
_add("study-seed-negative", _study("  seeds: {values: [1, -1]}\n"), "study.seeds.values.1")
_add("study-unknown-row", _study("  report: {rows: [datset]}\n"), "study.report.rows")
_add("study-unknown-column", _study("  report: {columns: [method]}\n"), "study.report.columns")
_add("study-unknown-metric", _study("  report: {metrics: [validity]}\n"), "study.report.metrics")
_add("study-unknown-boxplot", _study("  report: {boxplots: [l1]}\n"), "study.report.boxplots")
_add(
    "study-unknown-ranking",
    _study("  report: {ranking: {metric: nope, group: dataset}}\n"),
    "study.report.ranking.metric",
)
_add(
    "study-unknown-line-plot",
    _study("  report: {line_plots: [{x: weight, value: validity_rate}]}\n"),
    "study.report.line_plots.0",
)
_add("study-bad-member", _study("  sweep: {classifier.hidden: [[5], [0]]}\n"), "classifier.hidden")
_add(
    "study-inf-set", _study("  set: {explainer.step_size: .inf}\n"), "study.set.explainer.step_size"
)
_add("study-name-long", _study("").replace("name: s", "name: " + "s" * 300), "study.name")
_add("study-description-long", _study(f"  description: {'d' * 20_000}\n"), "description")
_add(
    "study-member-resources",
    _study("  sweep: {dataset.n_points: [1000, 1000000000000]}\n"),
    "limit is",
)

# --- overrides ------------------------------------------------------------------------------
for _override, _expected in [
    ("dataset.seed=-1", "dataset.seed"),
    ("explainer.n_steps=true", "explainer.n_steps"),
    ("explainer.n_steps='5'", "explainer.n_steps"),
    ("explainer.step_size=.inf", "explainer.step_size"),
    ("classifier.hidden=[]", "classifier.hidden"),
    ("dataset.n_points=1000000000000", "limit is"),
]:
    _add(f"override-{_override}", "name: ok\n", _expected, overrides=["-o", _override])


def _snapshot(*roots: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path): (path.stat().st_size, path.stat().st_mtime_ns)
        for root in roots
        for path in sorted(root.rglob("*"))
    }


def test_there_are_at_least_200_cases() -> None:
    assert len(CASES) >= 200
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_rejected_at_register(project_env, tmp_path: Path, case: Case) -> None:
    folder = tmp_path / "configs"
    (folder / "sub").mkdir(parents=True)
    path = folder / "bad.yaml"
    content = case.yaml.replace("{dir}", str(folder)) if isinstance(case.yaml, str) else case.yaml
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    if case.extra_files is not None:
        case.extra_files(folder)
    before = _snapshot(project_env["store"], project_env["dagster_home"])

    result = CliRunner().invoke(main, ["register", str(path), *case.overrides])

    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), output
    expected = case.expected.replace("{dir}", str(folder))
    if expected.startswith("re:"):
        assert re.search(expected[3:], output), output
    else:
        assert expected in output, output
    assert _snapshot(project_env["store"], project_env["dagster_home"]) == before


def test_one_bad_file_in_a_folder_registers_nothing(project_env, tmp_path) -> None:
    (tmp_path / "a_good.yaml").write_text("name: good\n")
    (tmp_path / "b_bad.yaml").write_text("name: bad\nexplainer: {n_steps: 0}\n")
    before = _snapshot(project_env["store"])
    result = CliRunner().invoke(main, ["register", str(tmp_path)])
    assert result.exit_code == 2 and "explainer.n_steps" in result.output
    assert _snapshot(project_env["store"]) == before


def test_relative_data_path_is_relative_to_the_config_file(project_env, tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    (folder / "data").mkdir(parents=True)
    _frame().to_csv(folder / "data" / "d.csv", index=False)
    path = folder / "c.yaml"
    path.write_text(_data_config("data/d.csv"))
    monkeypatch.chdir(tmp_path)  # not the config's folder
    resolved = resolve_config([path])
    assert resolved.config.dataset.path == folder / "data" / "d.csv"
    result = CliRunner().invoke(main, ["register", str(path)])
    assert result.exit_code == 0, result.output


def test_a_limit_is_raised_by_its_setting(project_env, tmp_path, monkeypatch) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(_config("plots.grid_resolution", "100000"))
    refused = CliRunner().invoke(main, ["register", str(path)])
    assert refused.exit_code == 2 and MAX_MEMORY_GB_ENV in refused.output
    monkeypatch.setenv(MAX_MEMORY_GB_ENV, "1e9")
    accepted = CliRunner().invoke(main, ["register", str(path)])
    assert accepted.exit_code == 0, accepted.output


def test_shipped_configs_and_studies_are_accepted() -> None:
    from tabs_assets.config.study import expand_study
    from tabs_assets.registry.registration import validate_file

    validate_file(REPO / "experiments" / "quickstart.yaml")
    for path in sorted((REPO / "experiments" / "studies").glob("*.yaml")):
        assert expand_study(path).members


# --- the same verdict from register and show-config (and study run) -------------------------
def _directory(folder: Path) -> str:
    (folder / "data").mkdir()
    return str(folder / "data")


def _fifo(folder: Path) -> str:
    os.mkfifo(folder / "fifo.csv")  # opening it for reading blocks until a writer comes
    return str(folder / "fifo.csv")


def _sparse(folder: Path) -> str:
    with open(folder / "big.csv", "wb") as file:  # 100 GiB, no blocks: hashing it takes hours
        file.truncate(100 * 2**30)
    return str(folder / "big.csv")


# id -> (makes the data path in the config's folder and returns it, what the message names)
BAD_DATA_PATHS: dict[str, Callable[[Path], str]] = {
    "directory": _directory,
    "missing-file": lambda folder: str(folder / "nope.csv"),
    "dev-zero": lambda folder: "/dev/zero",
    "fifo": _fifo,
    "empty-string": lambda folder: "",
    "sparse-100gib": _sparse,
}
VERDICT_COMMANDS = [["register"], ["show-config"]]


def _tabs_assets(*args: str) -> subprocess.CompletedProcess:
    """The real CLI in a fresh process; a hang (a FIFO opened, a 100 GiB file read) fails."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "tabs-assets"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("command", VERDICT_COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize("case", list(BAD_DATA_PATHS), ids=str)
def test_register_and_show_config_reject_a_bad_data_path_alike(
    project_env, tmp_path: Path, case: str, command: list[str]
) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    data_path = BAD_DATA_PATHS[case](folder)
    config = folder / "c.yaml"
    config.write_text(_data_config(data_path))
    before = _snapshot(project_env["store"])

    completed = _tabs_assets(*command, str(config))

    output = completed.stdout + completed.stderr
    assert completed.returncode == 2, output
    assert "Traceback" not in output, output
    assert "dataset.path" in output, output
    assert (data_path or "''") in output, output
    assert str(config) in output, output  # the file the verdict is about
    assert _snapshot(project_env["store"]) == before


def _mixed_study(folder: Path) -> Path:
    """A study file with per-config keys beside ``study:`` (silently ignored before)."""
    (folder / "base.yaml").write_text("name: base\n")
    path = folder / "mixed.yaml"
    path.write_text(
        "study:\n  name: mixed\n  base: [base.yaml]\n  seeds: {values: [1, 2]}\n"
        "classifier: {dropout: 0.3}\ndataset: {kind: sklearn, name: wine}\n"
    )
    return path


@pytest.mark.parametrize(
    "command", [*VERDICT_COMMANDS, ["study", "run"]], ids=lambda c: "-".join(c)
)
def test_a_study_file_with_config_keys_beside_study_is_rejected(
    project_env, tmp_path: Path, command: list[str]
) -> None:
    path = _mixed_study(tmp_path)
    before = _snapshot(project_env["store"], project_env["dagster_home"])

    completed = _tabs_assets(*command, str(path))

    output = completed.stdout + completed.stderr
    assert completed.returncode == 2, output
    assert "Traceback" not in output, output
    assert str(path) in output and "classifier" in output and "dataset" in output, output
    assert "study.base" in output and "study.set" in output, output  # where they belong
    assert _snapshot(project_env["store"], project_env["dagster_home"]) == before


def test_a_study_file_holding_only_study_still_loads(tmp_path: Path) -> None:
    from tabs_assets.config.study import expand_study, is_study_file

    path = _mixed_study(tmp_path)
    path.write_text("\n".join(path.read_text().splitlines()[:4]) + "\n")
    assert is_study_file(path) and len(expand_study(path).members) == 2


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("name: bad\nclassifer:\n  hidden: [3]\n", "classifer: unknown key"),
        ("name: bad\nclassifier:\n  dropout: lots\n", "classifier.dropout"),
        (
            "name: bad\ndataset:\n  kind: tabular_file\n",
            "dataset.path: required value is missing",
        ),
    ],
)
def test_bad_configs_fail_before_any_compute_naming_the_path(
    project_env, content: str, expected: str
) -> None:
    path = project_env["experiments"] / "bad.yaml"
    path.write_text(content)
    result = CliRunner().invoke(main, ["register", str(path)])
    assert result.exit_code == 2
    assert expected in result.output
    assert Registry(project_env["store"]).config_keys() == []
    assert Store(project_env["store"]).entries() == []
