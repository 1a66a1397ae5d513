"""tabs_assets.defs.assets.models: the model assets' training progress."""


def test_training_progress_says_epoch_k_of_max_and_time() -> None:
    from tabs_assets.defs.assets.models import epoch_logger

    lines: list[str] = []

    class Log:
        def info(self, message: str) -> None:
            lines.append(message)

        def warning(self, message: str) -> None:
            lines.append(message)

    epoch_logger(Log(), "classifier", 200)({"epoch": 0, "train_loss": 0.941912345})
    assert lines[0].startswith("classifier epoch 1 of 200 (")
    assert "s so far): train_loss=0.9419" in lines[0]
