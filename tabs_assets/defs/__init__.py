"""The Dagster code location: assets, asset checks, the IO manager, resources, partitions, the
sensor, executors, the cache path."""
