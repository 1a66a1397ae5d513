"""Dynamic partitions: one per registered config, one per registered study."""

from collections.abc import Iterable

from dagster import DagsterInstance, DynamicPartitionsDefinition

from tabs_assets.registry.registration import Registered

config_partitions = DynamicPartitionsDefinition(name="configs")
study_partitions = DynamicPartitionsDefinition(name="studies")


def add_partitions(instance: DagsterInstance, registered: Registered) -> None:
    """Idempotently add the partitions of what was registered."""
    for definition, keys in (
        (config_partitions, registered.configs),
        (study_partitions, registered.studies),
    ):
        missing = [
            k for k in dict.fromkeys(keys) if not instance.has_dynamic_partition(definition.name, k)
        ]
        if missing:
            instance.add_dynamic_partitions(definition.name, missing)


def remove_partitions(
    instance: DagsterInstance, configs: Iterable[str], studies: Iterable[str]
) -> None:
    """Remove the partitions of what was unregistered (absent ones are skipped)."""
    for definition, keys in ((config_partitions, configs), (study_partitions, studies)):
        for key in keys:
            if instance.has_dynamic_partition(definition.name, key):
                instance.delete_dynamic_partition(definition.name, key)
