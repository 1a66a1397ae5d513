"""Op tags the executors read: which steps train, and their Celery queue."""

from tabs_assets import settings

# The op tag dagster-celery reads to pick a step's Celery queue (dagster_celery.tags).
CELERY_QUEUE_TAG = "dagster-celery/queue"


# Marks the steps that train (training assets, study shards): the Slurm executor gives their
# jobs a GPU each.
TRAINING_TAG = "tabs_assets/training"


def training_op_tags() -> dict[str, str]:
    """Op tags of the training steps: the training mark, and their Celery queue when
    $TABS_ASSETS_TRAINING_QUEUE is set (workers on GPU machines listen on it with ``-q``);
    otherwise the default queue."""
    queue = settings.training_queue()
    return {TRAINING_TAG: "true", **({CELERY_QUEUE_TAG: queue} if queue else {})}
