"""Dagster's SQLite event log with real batch writes (the event log of dagster.yaml's instance).

Dagster batches the events it is told belong together (``DagsterEventBatchMetadata``, enabled by
``$DAGSTER_EVENT_BATCH_SIZE``) and hands them to ``EventLogStorage.store_event_batch``. The SQLite
storage inherits the base class's loop: one connection and one committed (fsynced) transaction
per event and shard, ~14 ms per materialization here. A study shard reports hundreds of member
materializations and check evaluations; this storage writes each batch in one transaction per
shard. It is written here because Dagster's OSS SQLite storage has no batch path; the storage is
otherwise Dagster's own, so an instance without it reads the same files.
"""

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from dagster import EventLogEntry, Field, StringSource
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import _event_logs_directory
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool


class BatchingSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage whose ``store_event_batch`` commits once per shard.

    ``base_dir`` defaults to Dagster's own place for the event logs, ``$DAGSTER_HOME/history/runs``
    (dagster.yaml's instance, instance.py, gives it ``.dagster_home/history/runs``).
    """

    def __init__(self, base_dir: str | None = None, inst_data: Any = None) -> None:
        self._batch = threading.local()  # before the parent's init, which already connects
        home = os.environ.get("DAGSTER_HOME", ".")
        super().__init__(base_dir or _event_logs_directory(home), inst_data=inst_data)

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(
        cls, inst_data: Any, config_value: dict[str, Any]
    ) -> "BatchingSqliteEventLogStorage":
        return cls(inst_data=inst_data, **config_value)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        connections = getattr(self._batch, "connections", None)
        if connections is None:
            with super()._connect(shard) as conn:
                yield conn
            return
        if shard not in connections:
            connections[shard] = self._batch.stack.enter_context(self._transaction(shard))
        yield connections[shard]

    @contextmanager
    def _transaction(self, shard: str) -> Iterator[Connection]:
        """The parent's ``_connect`` without its lock: the batch holds the lock throughout."""
        engine = create_engine(
            self.conn_string_for_shard(shard),
            poolclass=NullPool,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        )
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        try:
            with engine.connect() as conn, conn.begin():
                yield conn
        finally:
            engine.dispose()

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Every event of the batch in one transaction per shard (a failure rolls all back and
        Dagster stores the events one by one)."""
        with self._db_lock, ExitStack() as stack:
            self._batch.connections, self._batch.stack = {}, stack
            try:
                for event in events:
                    self.store_event(event)
            finally:
                self._batch.connections = None
