"""The run executor, chosen per deployment by $TABS_ASSETS_EXECUTOR.

The Celery executor takes its broker and result backend from $TABS_ASSETS_CELERY_BROKER and
$TABS_ASSETS_CELERY_BACKEND (default: Redis on 127.0.0.1), read when the definitions load; the
workers read the same variables through ``deploy/celery.yaml``. dagster_celery is imported only
when the Celery executor is selected, so loading the definitions stays fast.
"""

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

from tabs_assets import settings


def selected_executor(name: str | None = None) -> ExecutorDefinition:
    """in_process: steps in the run's process (cached reruns cost least); multiprocess: a
    process per step; celery: steps on Celery workers (needs a broker, see the README);
    slurm: computing steps as Slurm jobs (see slurm.py and the README)."""
    name = name or settings.executor_name()
    if name == "in_process":
        return in_process_executor
    if name == "multiprocess":
        return multiprocess_executor
    if name == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(
            {"broker": settings.celery_broker(), "backend": settings.celery_backend()},
            name="celery",
        )
    if name == "slurm":
        from tabs_assets.defs.slurm.executor import slurm_executor

        return slurm_executor
    raise ValueError(
        f"${settings.EXECUTOR_ENV}={name!r}: choose in_process, multiprocess, celery or slurm"
    )
