"""Dynamic partitions: one per registered config, one per registered study."""

from collections.abc import Iterable

from dagster import DagsterInstance, DynamicPartitionsDefinition

from tabs_assets.registry.registration import Registered

config_partitions = DynamicPartitionsDefinition(name="configs")
study_partitions = DynamicPartitionsDefinition(name="studies")


def add_partitions(instance: DagsterInstance, registered: Registered) -> None:
    """Idempotently add the partitions of what was registered (one query per kind: a study's
    members are checked together, not one by one)."""
    for definition, keys in (
        (config_partitions, registered.configs),
        (study_partitions, registered.studies),
    ):
        existing = set(instance.get_dynamic_partitions(definition.name))
        missing = [k for k in dict.fromkeys(keys) if k not in existing]
        if missing:
            instance.add_dynamic_partitions(definition.name, missing)


def remove_partitions(
    instance: DagsterInstance, configs: Iterable[str], studies: Iterable[str]
) -> None:
    """Remove the partitions of what was unregistered (absent ones are skipped)."""
    for definition, keys in ((config_partitions, configs), (study_partitions, studies)):
        existing = set(instance.get_dynamic_partitions(definition.name))
        for key in dict.fromkeys(keys):
            if key in existing:
                instance.delete_dynamic_partition(definition.name, key)
