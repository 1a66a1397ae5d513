"""Time per epoch of the project's training (``fit_module``) vs a plain PyTorch loop (same run).

Both sides train the same model on the same batches (the same ``TensorBatches``: same batch size,
seeded in-memory shuffles) with the same Adam optimiser, and both run a full validation pass each
epoch. Early stopping is effectively off (huge patience), so every run lasts ``--epochs`` epochs.
The two sides alternate for ``--rounds`` rounds (so load from other processes hits both alike);
the first epoch of every run is a warm-up and is not counted; the median of the rest is reported.

It also measures the loop's own cost with a module that costs next to nothing (a Linear(2, 1)
on 8 rows a batch) at 20 and 100 batches an epoch: the difference to the same plain loop is the
overhead, split into a part per optimisation step and a part per epoch.

    PYTHONPATH=. python benchmarks/train_loop.py [--epochs 10] [--rounds 4] [--threads N]
"""

import argparse
import itertools
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import nn

from tabs_assets.config.datasets import CakeOnSeaConfig
from tabs_assets.config.models import (
    ClassifierConfig,
    NiceConfig,
    TrainingConfig,
    resolve_batch_size,
)
from tabs_assets.science.datasets.cake_on_sea import make_cake_on_sea
from tabs_assets.science.datasets.prepared import PreparedDataset, prepare_dataset
from tabs_assets.science.models.data import evaluation_batches, training_batches
from tabs_assets.science.models.trained import build_module
from tabs_assets.science.models.training import (
    fit_module,
    train_classifier,
    train_generative_model,
)
from tabs_assets.science.models.training_modules import Batch, EpochMeanModule

DEFAULT_OUTPUT = Path(__file__).parent / "results" / "train_loop.json"
NO_EARLY_STOP = 10**6
NULL_ROWS = 8
"""Rows of each batch the overhead probe's model sees: its compute is next to nothing."""


Stamp = tuple[float, float]


def _now() -> Stamp:
    """(wall, process CPU) seconds: CPU time is the steadier figure on a shared machine."""
    return time.perf_counter(), time.process_time()


def _deltas(stamps: list[Stamp]) -> list[Stamp]:
    return [(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(stamps)]


def _project_epoch_times(train: Callable[..., object]) -> list[Stamp]:
    """Time between successive epoch-end callbacks (epoch 1 onwards: train + validation)."""
    stamps: list[Stamp] = []
    train(on_epoch_end=lambda _row: stamps.append(_now()))
    return _deltas(stamps)


def _plain_epoch_times(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
    data: PreparedDataset,
    training: TrainingConfig,
    epochs: int,
) -> list[Stamp]:
    """The same work, bare: Adam over the same batches, then a validation pass."""
    torch.manual_seed(training.seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=training.learning_rate)
    train_batches = training_batches(data, training)
    val_batches = evaluation_batches(data, "val")
    stamps = [_now()]
    for _ in range(epochs):
        model.train()
        for x, y in train_batches:
            optimiser.zero_grad()
            loss = loss_fn(model, x, y)
            loss.backward()
            optimiser.step()
        model.eval()
        with torch.inference_mode():
            val_loss = sum(float(loss_fn(model, x, y)) * len(x) for x, y in val_batches)
        assert val_loss == val_loss  # consumed, as the project's early stopping does
        stamps.append(_now())
    return _deltas(stamps)[1:]


def _classifier_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(model(x), y)


def _nice_loss(model: nn.Module, x: torch.Tensor, _y: torch.Tensor) -> torch.Tensor:
    return model.nll(x)


class _NullModule(EpochMeanModule):
    """Next to no compute: what is left of an epoch is the loop's own work."""

    def training_loss(self, batch: Batch) -> torch.Tensor:
        return self.model(batch[0][:NULL_ROWS]).mean()

    def validation_metrics(self, batch: Batch) -> dict[str, torch.Tensor]:
        value = self.model(batch[0][:NULL_ROWS]).mean()
        return {"loss": value, "accuracy": value}  # two metrics, as the classifier logs


def _null_loss(model: nn.Module, x: torch.Tensor, _y: torch.Tensor) -> torch.Tensor:
    return model(x[:NULL_ROWS]).mean()


def loop_overhead(data: PreparedDataset, epochs: int, rounds: int) -> dict[str, float]:
    """Milliseconds ``fit_module`` adds per optimisation step and per epoch (median CPU time)."""
    n_train = len(data.split_indices["train"])
    overhead = {}
    for steps in (20, 100):
        batch_size = resolve_batch_size(n_train, None) if steps == 20 else -(-n_train // steps)
        training = TrainingConfig(
            max_epochs=epochs, patience=NO_EARLY_STOP, accelerator="cpu", batch_size=batch_size
        )
        project: list[Stamp] = []
        plain: list[Stamp] = []
        for _ in range(rounds):
            module = _NullModule(nn.Linear(2, 1), 1e-3)
            project += _project_epoch_times(partial(fit_module, module, data, training))
            plain += _plain_epoch_times(nn.Linear(2, 1), _null_loss, data, training, epochs)
        overhead[steps] = statistics.median(t[1] for t in project) - statistics.median(
            t[1] for t in plain
        )
    per_step = (overhead[100] - overhead[20]) / 80
    return {"ms_per_step": 1000 * per_step, "ms_per_epoch": 1000 * (overhead[20] - 20 * per_step)}


def run(data: PreparedDataset, epochs: int, rounds: int) -> list[dict[str, object]]:
    training = TrainingConfig(max_epochs=epochs, patience=NO_EARLY_STOP, accelerator="cpu")
    classifier = ClassifierConfig(training=training)
    nice = NiceConfig(training=training)
    base = {"input_dim": data.input_dim, "n_classes": data.n_classes}
    cases = [
        (
            "classifier",
            lambda **kw: train_classifier(data, classifier, **kw),
            lambda: build_module("classifier", {**classifier.model_dump(), **base}),
            _classifier_loss,
        ),
        (
            "nice",
            lambda **kw: train_generative_model(data, nice, **kw),
            lambda: build_module("nice", {**nice.model_dump(), **base}),
            _nice_loss,
        ),
    ]
    rows = []
    for name, project_train, make_plain_model, loss_fn in cases:
        project_times: list[Stamp] = []
        plain_times: list[Stamp] = []
        for _ in range(rounds):
            project_times += _project_epoch_times(project_train)
            plain_model = make_plain_model()
            plain_times += _plain_epoch_times(plain_model, loss_fn, data, training, epochs)
        project = statistics.median(t[0] for t in project_times)
        plain = statistics.median(t[0] for t in plain_times)
        project_cpu = statistics.median(t[1] for t in project_times)
        plain_cpu = statistics.median(t[1] for t in plain_times)
        rows.append(
            {
                "model": name,
                "project_s_per_epoch": project,
                "plain_s_per_epoch": plain,
                "ratio": project / plain,
                "project_cpu_s_per_epoch": project_cpu,
                "plain_cpu_s_per_epoch": plain_cpu,
                "cpu_ratio": project_cpu / plain_cpu,
                "epochs_timed_per_side": len(project_times),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's)"
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    dataset = CakeOnSeaConfig()
    data = prepare_dataset(make_cake_on_sea(dataset), dataset.split)
    rows = run(data, args.epochs, args.rounds)
    overhead = loop_overhead(data, args.epochs, args.rounds)
    print(f"{'model':<12}{'project s/epoch':>17}{'plain s/epoch':>15}{'ratio':>8}{'cpu ratio':>11}")
    for row in rows:
        print(
            f"{row['model']:<12}{row['project_s_per_epoch']:>17.4f}"
            f"{row['plain_s_per_epoch']:>15.4f}{row['ratio']:>8.2f}{row['cpu_ratio']:>11.2f}"
        )
    print(
        f"fit_module overhead (near-zero model, CPU): {overhead['ms_per_step']:.3f} ms a step "
        f"+ {overhead['ms_per_epoch']:.2f} ms an epoch"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "train_loop",
        "dataset": "cake_on_sea (default)",
        "epochs_per_run": args.epochs,
        "rounds": args.rounds,
        "statistic": "median s/epoch (wall and process CPU) over all rounds, first epoch of "
        "each run excluded",
        "epoch_includes": "training batches + a full validation pass",
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "processor": platform.processor(),
        "rows": rows,
        "loop_overhead": overhead,
    }
    args.output.write_text(json.dumps(result, indent=2))
    print(f"saved {args.output}")


if __name__ == "__main__":
    main()
