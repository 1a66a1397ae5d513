"""Dynamic partitions: one per registered config, one per registered study."""

from dagster import DynamicPartitionsDefinition

config_partitions = DynamicPartitionsDefinition(name="configs")
study_partitions = DynamicPartitionsDefinition(name="studies")
