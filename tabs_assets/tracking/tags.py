"""The tags that say what a run is (a partition's parent run, an asset's child run), which
store entry it holds and where it is in Dagster."""

TAG_PREFIX = "tabs_assets."
ROLE_TAG = f"{TAG_PREFIX}role"
ROLE_PARTITION = "partition"
ROLE_ASSET = "asset"
PARTITION_KEY_TAG = f"{TAG_PREFIX}partition_key"
ASSET_TAG = f"{TAG_PREFIX}asset"
STORE_KEY_TAG = f"{TAG_PREFIX}store_key"
STUDY_TAG = f"{TAG_PREFIX}study"
DAGSTER_RUN_TAG = f"{TAG_PREFIX}dagster_run_url"
DAGSTER_ASSET_TAG = f"{TAG_PREFIX}dagster_asset_url"
RUN_NAME_TAG = "mlflow.runName"  # MLflow's own: setting it renames an existing run
NOTE_TAG = "mlflow.note.content"  # the run page's description (markdown)
