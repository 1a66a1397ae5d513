"""tabs_assets.store.entries: atomic writes, checksums, locks, permissions, gc's boundaries."""

import errno
import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tabs_assets.cli.main import main
from tabs_assets.files import TEMP_PREFIX
from tabs_assets.store.entries import MANIFEST, Store
from tabs_assets.store.errors import CorruptEntryError, LockTimeoutError, StoreError
from tabs_assets.store.gc import gc_apply, gc_plan
from tabs_assets.store.key_locks import LOCK_DIR
from tabs_assets_tests.conftest import text_payload


def test_write_then_lookup_returns_verified_entry(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("thing", "k1", text_payload("hello"), {"a": 1}, {"code_version": "1"})
    entry = store.lookup("thing", "k1")
    assert entry is not None
    assert (entry.path / "payload.txt").read_text() == "hello"
    assert entry.manifest["files"]["payload.txt"]["size"] == 5
    assert entry.manifest["code_version"] == "1"
    assert (entry.path / "config.yaml").read_text() == "a: 1\n"


def test_corrupt_payload_is_detected_and_removed(tmp_path: Path) -> None:
    store = Store(tmp_path)
    entry = store.write("thing", "k1", text_payload("hello"), {}, {})
    (entry.path / "payload.txt").write_text("jello")  # same size, different bytes
    with pytest.raises(CorruptEntryError, match=r"payload\.txt"):
        store.verify("thing", "k1")
    assert store.lookup("thing", "k1") is None
    assert not entry.path.exists()


def test_entry_without_manifest_is_never_used(tmp_path: Path) -> None:
    store = Store(tmp_path)
    entry = store.write("thing", "k1", text_payload("x"), {}, {})
    (entry.path / MANIFEST).unlink()
    assert store.lookup("thing", "k1") is None


def test_failed_save_leaves_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path)

    def explode(directory: Path) -> None:
        (directory / "half.bin").write_bytes(b"partial")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.write("thing", "k1", explode, {}, {})
    assert store.lookup("thing", "k1") is None
    assert list((tmp_path / "thing").iterdir()) == []


KILLED_WRITER = """
import sys, time
from pathlib import Path
from tabs_assets.store.entries import Store

def save(directory: Path) -> None:
    (directory / "big.bin").write_bytes(b"x" * 1000)
    print("writing", flush=True)
    time.sleep(60)  # killed here, mid-write

Store(sys.argv[1]).write("thing", "k1", save, {}, {})
"""


def test_write_killed_midway_leaves_no_readable_entry(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "writing"
    process.send_signal(signal.SIGKILL)
    process.wait()
    store = Store(tmp_path)
    assert store.lookup("thing", "k1") is None
    assert not store.entry_path("thing", "k1").exists()
    leftovers = list((tmp_path / "thing").glob(f"{TEMP_PREFIX}*"))
    assert len(leftovers) == 1  # only a temporary directory, which gc removes
    plan = gc_plan(store, referenced=set(), asset_folders={"thing"}, min_temp_age_s=0)
    assert [item.path for item in plan.remove] == leftovers
    assert gc_apply(store, plan) == [] and not leftovers[0].exists()


def test_lock_serialises_processes(tmp_path: Path) -> None:
    store = Store(tmp_path)
    holder = """
import sys, time
from tabs_assets.store.entries import Store
with Store(sys.argv[1]).locks.hold("thing", "k1"):
    print("locked", flush=True)
    time.sleep(1.0)
"""
    process = subprocess.Popen(
        [sys.executable, "-c", holder, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "locked"
    waited = []
    started = time.perf_counter()
    with store.locks.hold("thing", "k1", on_wait=lambda: waited.append(True)):
        elapsed = time.perf_counter() - started
    process.wait()
    assert waited == [True]
    assert elapsed > 0.3


def test_update_manifest_keeps_payload_valid(tmp_path: Path) -> None:
    store = Store(tmp_path)
    entry = store.write("thing", "k1", text_payload("x"), {}, {})
    store.update_manifest(entry, mlflow_run_id="abc")
    verified = store.verify("thing", "k1")
    assert verified.manifest["mlflow_run_id"] == "abc"
    assert json.loads((entry.path / MANIFEST).read_text())["mlflow_run_id"] == "abc"


def test_gc_removes_only_unreferenced(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write("thing", "keep", text_payload("a"), {}, {})
    store.write("thing", "drop", text_payload("b"), {}, {})
    plan = gc_plan(store, {("thing", "keep")}, asset_folders={"thing"})
    assert [item.path.name for item in plan.remove] == ["drop"]
    assert store.entry_path("thing", "drop").exists()  # planning changes nothing
    gc_apply(store, plan)
    assert [e.key for e in store.entries()] == ["keep"]
    assert os.listdir(tmp_path / "thing") == ["keep"]


def test_annotate_adds_manifest_fields_read_from_the_complete_entry(tmp_path: Path) -> None:
    store = Store(tmp_path)
    seen: list[str] = []

    def annotate(directory: Path) -> dict:
        seen.append((directory / "payload.txt").read_text())
        return {"checks": {"n_files": len(json.loads((directory / MANIFEST).read_text())["files"])}}

    entry = store.write("thing", "k1", text_payload("x"), {}, {}, annotate=annotate, durable=False)
    store.sync()
    assert seen == ["x"]
    assert store.verify("thing", "k1").manifest["checks"] == {"n_files": 2}  # payload + config
    assert store.find("thing", "k1").manifest == entry.manifest


def test_find_checks_sizes_and_times_and_checksums_what_changed(tmp_path: Path) -> None:
    store = Store(tmp_path)
    entry = store.write("thing", "k1", text_payload("abc"), {}, {})
    assert store.find("thing", "k1") is not None
    (entry.path / "payload.txt").write_text("abd")  # same size, new time: checksummed, corrupt
    assert store.find("thing", "k1") is None and not entry.path.exists()
    entry = store.write("thing", "k2", text_payload("abc"), {}, {})
    (entry.path / "payload.txt").write_text("abcdef")  # another size: removed without reading
    assert store.find("thing", "k2") is None and not entry.path.exists()
    entry = store.write("thing", "k3", text_payload("abc"), {}, {})
    os.utime(entry.path / "payload.txt", (0, 0))  # copied without times, content intact
    assert store.find("thing", "k3") is not None


def test_check_locks_passes_where_locks_exclude_each_other(tmp_path: Path) -> None:
    Store(tmp_path).locks.check()
    assert not list((tmp_path / LOCK_DIR).iterdir())  # the probe file is gone


@pytest.mark.parametrize("broken", ["granted twice", "no locks"])
def test_check_locks_names_a_filesystem_without_working_locks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    def flock(handle: object, operation: int) -> None:  # what NFS with 'nolock' can do
        if broken == "no locks":
            raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", flock)
    with pytest.raises(StoreError, match="file locks do not work on the store's filesystem"):
        Store(tmp_path).locks.check()


def test_gc_never_follows_a_symlink_out_of_the_root(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "k1").mkdir(parents=True)
    (outside / "k1" / "manifest.json").write_text(json.dumps({"files": {}}))
    (outside / "precious.txt").write_text("keep me")
    root = tmp_path / "store"
    store = Store(root)
    store.write("thing", "drop", text_payload("b"), {}, {})
    (root / "linked_asset").symlink_to(outside, target_is_directory=True)
    (root / "thing" / "linked_entry").symlink_to(outside / "k1", target_is_directory=True)
    plan = gc_plan(store, set(), {"thing", "linked_asset"}, min_temp_age_s=0)
    assert [item.path.name for item in plan.remove] == ["drop"]
    assert {item.path.name for item in plan.skipped} == {"linked_asset", "linked_entry"}
    gc_apply(store, plan)
    assert (outside / "precious.txt").read_text() == "keep me" and (outside / "k1").is_dir()
    assert (root / "linked_asset").is_symlink() and (root / "thing" / "linked_entry").is_symlink()


def test_store_files_get_umask_permissions(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    def save(directory: Path) -> None:
        save_file({"w": torch.zeros(3)}, directory / "weights.safetensors")

    old = os.umask(0o022)
    try:
        entry = Store(tmp_path).write("model", "k1", save, {}, {})
    finally:
        os.umask(old)
    for path in [entry.path, *entry.path.rglob("*")]:
        expected = 0o755 if path.is_dir() else 0o644
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_read_only_or_full_store_gives_a_message_not_a_traceback(
    project_env: dict[str, Path], register: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tests may run as root (permissions ignored): the file system's refusals are faked."""
    import errno

    from tabs_assets.registry import records as registry_module
    from tabs_assets.store.errors import StoreError

    register("ro", {"dataset.kind": "sklearn", "dataset.name": "iris"})
    store = Store(project_env["store"])
    orphan = store.write("dataset", "e" * 16, text_payload("x"), {}, {})
    config_file = project_env["experiments"] / "other.yaml"
    config_file.write_text("name: other\ndataset: {kind: sklearn, name: wine}\n")

    def refuse(code: int) -> Callable[..., None]:
        def raiser(*args: Any, **kwargs: Any) -> None:
            raise OSError(code, os.strerror(code), str(args[0]) if args else "")

        return raiser

    monkeypatch.setattr(registry_module, "write_file_durably", refuse(errno.EROFS))
    result = CliRunner().invoke(main, ["register", str(config_file)])
    assert result.exit_code == 2, result.output
    assert "cannot write the registry: the file system is read-only" in result.output
    assert isinstance(result.exception, SystemExit)

    with monkeypatch.context() as patch:
        patch.setattr(os, "rename", refuse(errno.EROFS))
        gc = CliRunner().invoke(main, ["store", "gc"])
    assert gc.exit_code == 2 and "could not remove" in gc.output, gc.output
    assert "read-only" in gc.output and isinstance(gc.exception, SystemExit)
    assert orphan.path.is_dir()

    def full_disk(directory: Path) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory / "w.bin"))

    with pytest.raises(StoreError, match="the disk is full"):
        store.write("dataset", "f" * 16, full_disk, {}, {})
    assert not list((project_env["store"] / "dataset").glob(".tmp-*"))


def test_lock_timeout_names_the_holder(tmp_path: Path) -> None:
    holder = """
import sys, time
from tabs_assets.store.entries import Store
with Store(sys.argv[1]).locks.hold("thing", "k1", holder_info={"partition_key": "p-1"}):
    print("locked", flush=True)
    time.sleep(30)
"""
    process = subprocess.Popen(
        [sys.executable, "-c", holder, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout.readline().strip() == "locked"
        started = time.perf_counter()
        with (
            pytest.raises(LockTimeoutError) as caught,
            Store(tmp_path).locks.hold("thing", "k1", timeout_s=0.5),
        ):
            pass
        assert time.perf_counter() - started < 5
        message = str(caught.value)
        assert f"pid {process.pid}" in message and "p-1" in message and "k1.lock" in message
    finally:
        process.kill()
        process.wait()
