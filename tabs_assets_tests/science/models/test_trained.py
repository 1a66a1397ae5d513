"""tabs_assets.science.models.trained: a trained model saved and loaded."""

import pytest
import torch

from tabs_assets.config.models import (
    ClassifierConfig,
    NiceConfig,
    TrainingConfig,
)
from tabs_assets.science.datasets.prepared import PreparedDataset
from tabs_assets.science.models.trained import TrainedModel
from tabs_assets.science.models.training import (
    train_classifier,
    train_generative_model,
)
from tabs_assets_tests.science.models.conftest import states_equal

TINY = TrainingConfig(max_epochs=3, patience=100)


@pytest.mark.parametrize(
    "config", [ClassifierConfig(batch_norm=True, training=TINY), NiceConfig(training=TINY)]
)
def test_trained_model_save_load_round_trip(tiny_data: PreparedDataset, config, tmp_path) -> None:
    if isinstance(config, ClassifierConfig):
        trained = train_classifier(tiny_data, config)
    else:
        trained = train_generative_model(tiny_data, config)
    trained.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "weights.safetensors"]
    loaded = TrainedModel.load(tmp_path)
    assert loaded.kind == trained.kind and loaded.spec == trained.spec
    assert loaded.history == trained.history and loaded.best_epoch == trained.best_epoch
    assert loaded.test_metrics == trained.test_metrics
    assert states_equal(loaded.state_dict, trained.state_dict)
    x = torch.as_tensor(tiny_data.split_arrays("test")[0])
    assert torch.equal(loaded.build()(x), trained.build()(x))
