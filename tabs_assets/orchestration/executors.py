"""The run executor, chosen per deployment by $TABS_ASSETS_EXECUTOR."""

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

from tabs_assets.orchestration import settings


def selected_executor(name: str | None = None) -> ExecutorDefinition:
    """in_process: steps in the run's process (cached reruns cost least); multiprocess: a
    process per step; celery: steps on Celery workers (needs a broker, see the README)."""
    name = name or settings.executor_name()
    if name == "in_process":
        return in_process_executor
    if name == "multiprocess":
        return multiprocess_executor
    if name == "celery":
        from dagster_celery import celery_executor

        return celery_executor
    raise ValueError(
        f"${settings.EXECUTOR_ENV}={name!r}: choose in_process, multiprocess or celery"
    )
