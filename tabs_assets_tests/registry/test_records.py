"""tabs_assets.registry.records: the registry's records on disk."""

from pathlib import Path

from tabs_assets.registry.records import Registry


def test_unregister_and_liveness_delete_only_their_own_files(tmp_path: Path) -> None:
    from tabs_assets.defs.liveness import RUNS_DIR, free_dead_runs

    registry = Registry(tmp_path / "store")
    registry.configs_dir.mkdir(parents=True)
    outside = tmp_path / "store" / "notes.json"
    outside.write_text("{}")
    assert not registry.has("config", "../../notes") and not registry.remove(
        "config", "../../notes"
    )
    assert outside.is_file()

    class Instance:  # free_dead_runs must not even look at a file that is not a run's
        root_directory = str(tmp_path / "home")

    runs = tmp_path / "home" / RUNS_DIR
    runs.mkdir(parents=True)
    (runs / "my-notes.json").write_text("{}")
    (runs / "my-notes.lock").write_text("")
    (runs / "my-notes.lock.holder").write_text("{}")
    assert free_dead_runs(Instance()) == []
    assert all((runs / name).is_file() for name in ("my-notes.json", "my-notes.lock"))
