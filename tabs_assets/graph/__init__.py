"""The per-config asset graph without Dagster: what each node reads of a config, its upstream, its
store key, and the code in that key."""
