"""MLflow tracking: one parent run per config partition, a child run per asset that did work.

Our own (dagster-mlflow knows one run per Dagster run, not partitions), and free of Dagster:
``defs.resources.TrackingResource`` wraps ``tracker.MlflowTracker``. mlflow is imported only
when something is logged, never at definitions load time. A tracking failure never loses a
result: the caller stores first and reports the failure.

Parent runs are the comparison table: each carries the whole flattened config as params (batch
sizes as used), the headline metrics of its children, its studies as tags and links to Dagster.
Child runs start when the compute started and end when it was logged. Writes to a SQLite store
are serialised by a file lock that is given up after ``$TABS_ASSETS_MLFLOW_LOCK_TIMEOUT`` seconds
(default 30): the run then goes on untracked, and the entry is tracked the next time it is read
(``recovery``), as is any entry whose MLflow run went missing.
"""
