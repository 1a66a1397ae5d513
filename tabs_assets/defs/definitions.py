"""The Dagster code location. Loading it imports no torch, lightning or mlflow."""

from dagster import Definitions, define_asset_job

from tabs_assets import settings
from tabs_assets.defs.assets.dataset import dataset
from tabs_assets.defs.assets.explanations import (
    counterfactual_paths,
    explanation_metrics,
)
from tabs_assets.defs.assets.models import (
    classifier,
    generative_model,
    reference_density,
)
from tabs_assets.defs.assets.plots import plots
from tabs_assets.defs.assets.study_members import study_members
from tabs_assets.defs.assets.study_report import study_report, study_table
from tabs_assets.defs.executors import selected_executor
from tabs_assets.defs.io_manager import StoreIOManager
from tabs_assets.defs.resources import StoreResource, TrackingResource
from tabs_assets.defs.sensors import experiments_sensor

# `dagster asset materialize` in a terminal without DAGSTER_HOME: a message, not a traceback.
settings.exit_if_dagster_cli_without_home()
settings.check()  # a bad TABS_ASSETS_* value: one clear error when the code location loads

CONFIG_ASSETS = [
    dataset,
    classifier,
    generative_model,
    reference_density,
    counterfactual_paths,
    explanation_metrics,
    plots,
]

config_graph_job = define_asset_job(
    "config_graph",
    selection=[a.key for a in CONFIG_ASSETS],
    description="Everything of one config partition, from the dataset to the plots.",
)

STUDY_ASSETS = [study_members, study_table, study_report]

study_job = define_asset_job(
    "study",
    selection=[a.key for a in STUDY_ASSETS],
    description="A whole study: its missing member configs, then the table and the report.",
)

store = StoreResource()

defs = Definitions(
    assets=[*CONFIG_ASSETS, *STUDY_ASSETS],
    jobs=[config_graph_job, study_job],
    sensors=[experiments_sensor],
    resources={
        "store": store,
        "tracking": TrackingResource(),
        "store_io_manager": StoreIOManager(store=store),
    },
    executor=selected_executor(),
)
