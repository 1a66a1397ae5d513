"""tabs_assets.defs.slurm: configs and studies on a real one-node Slurm cluster.

A session fixture starts munged, slurmctld and slurmd with their config in a temporary folder
(slurm_cluster.py) and stops them afterwards. The node has every core of this machine and one
(placeholder) GPU. Runs use TABS_ASSETS_EXECUTOR=slurm: the test process (or a `tabs-assets`
subprocess) is the run's process, which submits the computing steps with sbatch.
"""

import importlib
import itertools
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
)

from tabs_assets.defs import definitions
from tabs_assets.defs.runs import materialize_partition, run_study
from tabs_assets.defs.slurm.executor import JOB_ID
from tabs_assets.graph.nodes import entry_address
from tabs_assets.registry.records import Registry
from tabs_assets.store.entries import Store
from tabs_assets_tests.conftest import FAST_OVERRIDES, REPO, assert_store_is_valid, write_config
from tabs_assets_tests.services import BIN, service_env, services, start_dagster, wait_until
from tabs_assets_tests.slurm_cluster import PARTITION, SlurmCluster, missing_binaries, slurm_cluster
from tabs_assets_tests.studies import register_study

TRAININGS = ("classifier", "generative_model", "reference_density")
CONFIG_ASSETS = ("dataset", *TRAININGS, "counterfactual_paths", "explanation_metrics")
SHARD = "study_members.materialize_study_shard"

needs_slurm = pytest.mark.skipif(
    bool(missing_binaries()),
    reason=f"Slurm is not installed ({', '.join(missing_binaries())} missing; CI installs "
    f"them: apt-get install slurm-wlm munge)",
)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    with slurm_cluster(tmp_path_factory.mktemp("slurm"), gpus=1) as started:
        yield started


@pytest.fixture
def on_slurm(
    cluster: SlurmCluster, project_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[SlurmCluster]:
    """This test's runs use the Slurm executor on the test cluster (deployment file below).

    The executor is chosen when the definitions load ($TABS_ASSETS_EXECUTOR, as in every
    process a user starts): this process loaded them for the earlier tests, so they are
    loaded again here, and once more afterwards for the tests that follow."""
    deployment = project_env["experiments"].parent / "slurm.yaml"
    deployment.write_text(
        yaml.safe_dump(
            {"partition": PARTITION, "cpus": 1, "time_limit_min": 20, "array_concurrency": 2}
        )
    )
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    monkeypatch.setenv("TABS_ASSETS_EXECUTOR", "slurm")
    monkeypatch.setenv("TABS_ASSETS_SLURM_CONFIG", str(deployment))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    importlib.reload(definitions)
    yield cluster
    monkeypatch.undo()
    importlib.reload(definitions)


def events(instance: DagsterInstance, run_id: str, kind: DagsterEventType) -> list[Any]:
    return [
        record
        for record in instance.all_logs(run_id, of_type=kind)
        if record.dagster_event is not None
    ]


def slurm_jobs(instance: DagsterInstance, run_id: str) -> dict[str, str]:
    """step key -> the Slurm job it was submitted as (from its STEP_WORKER_STARTING event)."""
    jobs = {}
    for record in events(instance, run_id, DagsterEventType.STEP_WORKER_STARTING):
        metadata = record.dagster_event.engine_event_data.metadata
        if JOB_ID in metadata:
            jobs[record.dagster_event.step_key] = metadata[JOB_ID].value
    return jobs


def step_times(instance: DagsterInstance, run_id: str, kind: DagsterEventType) -> dict[str, float]:
    return {r.dagster_event.step_key: r.timestamp for r in events(instance, run_id, kind)}


def cache_status(result: Any) -> dict[str, str]:
    return {
        e.materialization.asset_key.path[-1]: e.materialization.metadata["cache"].value
        for e in result.get_asset_materialization_events()
    }


def job_fields(cluster: SlurmCluster, job_id: str) -> dict[str, str]:
    """`scontrol show job` as a mapping (the cluster keeps finished jobs for MinJobAge)."""
    text = cluster.run("scontrol", "show", "job", "-o", job_id)
    return dict(field.split("=", 1) for field in text.split() if "=" in field)


def finished_job(cluster: SlurmCluster, job_id: str) -> dict[str, str]:
    """The job's fields once it has ended (its process exits just after its step's events)."""

    def ended() -> dict[str, str] | None:
        fields = job_fields(cluster, job_id)
        return None if fields["JobState"] in ("RUNNING", "COMPLETING") else fields

    return wait_until(ended, 30, f"job {job_id} to end")  # type: ignore[return-value]


@pytest.mark.integration
@needs_slurm
def test_computing_steps_are_slurm_jobs_and_cache_hits_are_not(
    on_slurm: SlurmCluster, register, project_env: dict[str, Path]
) -> None:
    """One config from scratch: every computing step is a Slurm job; its three trainings, each
    asking for the node's only GPU, never overlap, also when queued at the same time."""
    instance = DagsterInstance.get()
    # No Dagster pool holds the trainings back: only Slurm's GPU accounting keeps them apart.
    instance.event_log_storage.set_concurrency_slots("gpu", 4)
    # A flow that differs from the reference density: three distinct trainings.
    key = register("slurm_a", {**FAST_OVERRIDES, "generative_model.training.seed": 5})
    result = materialize_partition(key, "*explanation_metrics")
    assert result.success
    jobs = slurm_jobs(instance, result.run_id)
    assert set(jobs) == set(CONFIG_ASSETS), jobs
    assert set(cache_status(result).values()) == {"miss"}
    started = step_times(instance, result.run_id, DagsterEventType.STEP_START)
    ended = step_times(instance, result.run_id, DagsterEventType.STEP_SUCCESS)
    launched = step_times(instance, result.run_id, DagsterEventType.STEP_WORKER_STARTING)
    registry, store = Registry(project_env["store"]), Store(project_env["store"])
    config = registry.config(key)
    for name in CONFIG_ASSETS:
        fields = finished_job(on_slurm, jobs[name])
        assert fields["JobState"] == "COMPLETED", (name, fields)
        gpus = fields.get("TresPerNode") == "gres:gpu:1"  # what the job asked for
        assert gpus == (name in TRAININGS), (name, fields)
        # The result was written by the job's process, not this one.
        assert store.verify(*entry_address(name, config)).manifest["pid"] != os.getpid()
    # The classifier and the reference density (both need only the dataset) were queued at
    # once; Slurm ran every training alone on the node's GPU.
    queued = ("classifier", "reference_density")
    assert max(launched[name] for name in queued) < min(ended[name] for name in queued)
    spans = sorted((started[name], ended[name]) for name in TRAININGS)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, spans
    pool = instance.event_log_storage.get_concurrency_info("gpu")
    assert not pool.claimed_slots

    # Another explanation seed: only paths and metrics compute; the rest are hits, no jobs.
    other = register(
        "slurm_b", {**FAST_OVERRIDES, "generative_model.training.seed": 5, "explanation.seed": 7}
    )
    second = materialize_partition(other, "*explanation_metrics")
    assert second.success
    assert set(slurm_jobs(instance, second.run_id)) == {
        "counterfactual_paths",
        "explanation_metrics",
    }
    status = cache_status(second)
    assert {name for name, value in status.items() if value == "miss"} == {
        "counterfactual_paths",
        "explanation_metrics",
    }
    again = materialize_partition(other, "*explanation_metrics")
    assert again.success and slurm_jobs(instance, again.run_id) == {}
    assert set(cache_status(again).values()) == {"hit"}


def study_path(directory: Path, name: str, seeds: list[int], slurm: dict[str, Any]) -> Path:
    """A study whose members share their models and differ in the explanation seed."""
    write_config(directory, "base", FAST_OVERRIDES)
    path = directory / f"{name}.yaml"
    study = {
        "name": name,
        "base": ["base.yaml"],
        "seeds": {"keys": ["explanation.seed"], "values": seeds},
        "report": {"rows": ["dataset"], "columns": ["explainer"]},
        "slurm": slurm,
    }
    path.write_text(yaml.safe_dump({"study": study}))
    return path


@pytest.mark.integration
@needs_slurm
@pytest.mark.filterwarnings("ignore:Using variable_values and operation_name:DeprecationWarning")
def test_a_study_launched_over_graphql_runs_its_shards_as_one_job_array(
    on_slurm: SlurmCluster, project_env: dict[str, Path], tmp_path: Path
) -> None:
    """As from the UI's launchpad: the webserver and the daemon launch the study's run, whose
    two shards run as one job array; every member reaches Dagster and MLflow."""
    from mlflow.tracking import MlflowClient

    # The study file's own Slurm settings: shards without a GPU, so both could run at once...
    path = study_path(
        project_env["experiments"], "arrayed", list(range(1, 9)), {"training_gpus": 0}
    )
    key = register_study(project_env, path)
    run_config = {
        "ops": {"study_members": {"ops": {"plan_study_members": {"config": {"shards": 2}}}}},
        "execution": {"config": {"array_concurrency": 1}},  # ...but this launch says one
    }
    with services(tmp_path / "logs", service_env()) as stack:
        client = start_dagster(stack)
        run_id = client.submit_job_execution(
            "study", run_config=run_config, tags={"dagster/partition": key}
        )
        wait_until(
            lambda: client.get_run_status(run_id).value in ("SUCCESS", "FAILURE", "CANCELED"),
            360,
            f"run {run_id}",
            stack.logs,
            interval=1.0,
        )
    instance = DagsterInstance.get()
    assert instance.get_run_by_id(run_id).status == DagsterRunStatus.SUCCESS
    jobs = slurm_jobs(instance, run_id)
    shards = sorted(job for step, job in jobs.items() if step.startswith(SHARD))
    array = shards[0].split("_")[0]
    assert shards == [f"{array}_0", f"{array}_1"], jobs
    for job in shards:
        fields = finished_job(on_slurm, job)
        assert fields["ArrayJobId"] == array and fields["JobState"] == "COMPLETED", fields
        assert fields["ArrayTaskThrottle"] == "1", fields
        assert "gpu" not in fields.get("TresPerNode", ""), fields
    registry, store = Registry(project_env["store"]), Store(project_env["store"])
    record = registry.study(key)
    assert len(record.member_keys) == 8
    # Every member is reported to Dagster with its store key as data version, and in MLflow.
    for member in record.member_keys:
        records = instance.fetch_materializations(
            AssetRecordsFilter(AssetKey("explanation_metrics"), asset_partitions=[member]), limit=1
        ).records
        assert records, member
        _, store_key = entry_address("explanation_metrics", registry.config(member))
        assert records[0].asset_materialization.tags["dagster/data_version"] == store_key
        assert store.lookup("explanation_metrics", store_key) is not None
    mlflow = MlflowClient(tracking_uri=f"sqlite:///{project_env['store'] / 'mlflow.db'}")
    experiment = mlflow.get_experiment_by_name("tabs_assets")
    parents = mlflow.search_runs(
        [experiment.experiment_id], "tags.`tabs_assets.role` = 'partition'", max_results=100
    )
    tracked = {run.data.tags["tabs_assets.partition_key"] for run in parents}
    assert set(record.member_keys) <= tracked


def processes_mentioning(path: Path) -> list[str]:
    """Command lines of living processes that name ``path`` (or a file below it)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if entry.name.isdigit() and str(path) in command:
            found.append(command)
    return found


def tabs_assets(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "tabs-assets"), *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


@pytest.mark.integration
@needs_slurm
def test_a_cancelled_shard_fails_its_step_and_the_rerun_computes_only_what_is_missing(
    on_slurm: SlurmCluster, project_env: dict[str, Path]
) -> None:
    # Members slow enough (every test point, long paths) to cancel the shard between two.
    path = study_path(project_env["experiments"], "cancelled", list(range(1, 7)), {})
    base = project_env["experiments"] / "base.yaml"
    base.write_text(
        yaml.safe_dump(
            {
                **yaml.safe_load(base.read_text()),
                "explanation": {"max_points": 600},
                "explainer": {"n_steps": 40},
            }
        )
    )
    key = register_study(project_env, path)
    registry, store = Registry(project_env["store"]), Store(project_env["store"])
    members = registry.study(key).member_keys
    addresses = {m: entry_address("explanation_metrics", registry.config(m)) for m in members}

    def stored() -> set[str]:
        return {m for m, address in addresses.items() if store.entry_path(*address).is_dir()}

    first = tabs_assets("study", "run", str(path))
    instance = DagsterInstance.get()
    wait_until(lambda: len(stored()) >= 2, 400, "two stored members")
    [run] = instance.get_runs(limit=1)
    [job] = [j for step, j in slurm_jobs(instance, run.run_id).items() if step.startswith(SHARD)]
    on_slurm.run("scancel", job)
    output, _ = first.communicate(timeout=120)
    assert first.returncode != 0, output
    # The step's failure names the job and Slurm's verdict, in the UI and on the terminal.
    assert f"Slurm job {job} ended CANCELLED" in output, output[-3000:]
    assert "Traceback" not in output
    failures = events(instance, run.run_id, DagsterEventType.STEP_FAILURE)
    [failure] = [r.dagster_event.step_failure_data.error.message for r in failures]
    assert failure.startswith(f"Step {SHARD}[shard_0] failed health check: Slurm job {job} ended ")
    assert "CANCELLED" in failure
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE
    done = stored()
    assert 2 <= len(done) < len(members)
    assert_store_is_valid(store)
    # Nothing of the job lives on (Dagster's log-capturing `tail`s of the step included).
    wait_until(lambda: not processes_mentioning(project_env["dagster_home"]), 30, "job's end")

    rerun = run_study(key)
    assert rerun.success
    computed = {
        e.materialization.partition
        for e in rerun.get_asset_materialization_events()
        if e.materialization.asset_key.path[-1] == "explanation_metrics"
    }
    assert computed == set(members) - done
    assert not instance.event_log_storage.get_concurrency_info("gpu").claimed_slots


@pytest.mark.integration
@needs_slurm
def test_terminating_the_run_cancels_its_slurm_jobs(
    on_slurm: SlurmCluster, register, project_env: dict[str, Path]
) -> None:
    key = register(
        "terminated",
        {
            **FAST_OVERRIDES,
            "classifier.training.max_epochs": 200,
            "classifier.training.patience": 200,
        },
    )
    run = tabs_assets("materialize", key, "--select", "*classifier")
    instance = DagsterInstance.get()

    def classifier_job() -> str | None:
        runs = instance.get_runs(limit=1)
        job = slurm_jobs(instance, runs[0].run_id).get("classifier") if runs else None
        return job if job and job_fields(on_slurm, job)["JobState"] == "RUNNING" else None

    job = wait_until(classifier_job, 300, "the classifier's job to run")
    os.killpg(run.pid, signal.SIGINT)  # Ctrl-C: what the UI's "terminate" sends a run
    output, _ = run.communicate(timeout=120)
    assert run.returncode != 0, output[-3000:]
    wait_until(
        lambda: job_fields(on_slurm, job)["JobState"] == "CANCELLED", 30, "the job cancelled"
    )
    [terminated] = instance.get_runs(limit=1)
    messages = [r.user_message for r in instance.all_logs(terminated.run_id)]
    assert f"Slurm job {job} of classifier cancelled" in messages, output[-3000:]
    config = Registry(project_env["store"]).config(key)
    assert Store(project_env["store"]).lookup(*entry_address("classifier", config)) is None


@pytest.mark.integration
@needs_slurm
def test_a_bad_partition_is_refused_with_one_clear_line(
    on_slurm: SlurmCluster, project_env: dict[str, Path]
) -> None:
    path = write_config(
        project_env["experiments"], "nowhere", {**FAST_OVERRIDES, "slurm.partition": "nope"}
    )
    registered = subprocess.run(
        [str(BIN / "tabs-assets"), "register", str(path)], capture_output=True, text=True
    )
    key = registered.stdout.split()[1]
    completed = subprocess.run(
        [str(BIN / "tabs-assets"), "materialize", key, "--select", "dataset"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 2
    lines = [line for line in completed.stderr.splitlines() if line.startswith("dataset: ")]
    assert lines == [
        "dataset: Slurm refused the job of step dataset: Batch job submission failed: Invalid "
        f"partition name specified. Check partition='nope' (from the slurm section of config "
        f"{key})"
    ], completed.stderr[-3000:]
    assert "Traceback" not in completed.stdout + completed.stderr
