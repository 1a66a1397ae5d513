"""In-memory batching (SCIENCE.md §2): preloaded tensors, seeded shuffles, batched gathers."""

import math
from collections.abc import Iterator, Sequence

import torch

from tabs_assets.config.models import TrainingConfig, resolve_batch_size
from tabs_assets.science.datasets.prepared import PreparedDataset, SplitName

# Validation/test rows per forward pass: the whole split in one pass for every built-in data set.
EVAL_BATCH_ROWS = 65_536

Batch = tuple[torch.Tensor, ...]


class TensorBatches:
    """Batches of preloaded tensors that share their first dim.

    Each ``iter()`` is one epoch. With ``shuffle`` a seeded generator draws a permutation; with
    ``sample_weights`` it draws ``n`` rows with replacement in proportion to the weights. Every
    batch is one gather (``index_select``) per tensor, never Python indexing per row.
    """

    def __init__(
        self,
        tensors: Sequence[torch.Tensor],
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        sample_weights: torch.Tensor | None = None,
    ) -> None:
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError("TensorBatches needs tensors with the same number of rows")
        if sample_weights is not None and len(sample_weights) != len(tensors[0]):
            raise ValueError("sample_weights needs one weight per row")
        self.tensors = tuple(tensors)
        self.batch_size = batch_size
        self.shuffle = shuffle or sample_weights is not None
        self.sample_weights = None if sample_weights is None else sample_weights.double().cpu()
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def n_rows(self) -> int:
        return len(self.tensors[0])

    def _drops_last_row(self) -> bool:
        # A random 1-row tail batch would break BatchNorm in training; dropping it loses a
        # different random row each epoch, so no row is systematically left out.
        return self.shuffle and self.n_rows > 1 and self.n_rows % self.batch_size == 1

    def __len__(self) -> int:
        return math.ceil((self.n_rows - self._drops_last_row()) / self.batch_size)

    def _epoch_order(self) -> torch.Tensor | None:
        if self.sample_weights is not None:
            return torch.multinomial(
                self.sample_weights, self.n_rows, replacement=True, generator=self.generator
            )
        if self.shuffle:
            return torch.randperm(self.n_rows, generator=self.generator)
        return None

    def __iter__(self) -> Iterator[Batch]:
        # A generator function: nothing is drawn until the first batch is asked for.
        order = self._epoch_order()
        stop = self.n_rows - self._drops_last_row()
        if order is None:
            for start in range(0, stop, self.batch_size):
                yield tuple(t[start : start + self.batch_size] for t in self.tensors)
            return
        order = order[:stop].to(self.tensors[0].device)
        for chunk in order.split(self.batch_size):
            yield tuple(t.index_select(0, chunk) for t in self.tensors)


def split_tensors(
    data: PreparedDataset, split: SplitName, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised float32 features and int64 labels of one split, on ``device``."""
    features, labels = data.split_arrays(split)
    return (
        torch.as_tensor(features, dtype=torch.float32, device=device),
        torch.as_tensor(labels, dtype=torch.int64, device=device),
    )


def training_batches(
    data: PreparedDataset, training: TrainingConfig, device: torch.device | str = "cpu"
) -> TensorBatches:
    """Shuffled (or class-balanced) training batches of (features, labels)."""
    features, labels = split_tensors(data, "train", device)
    weights = torch.as_tensor(data.sample_weights) if training.balance_classes else None
    return TensorBatches(
        (features, labels),
        resolve_batch_size(len(labels), training.batch_size),
        shuffle=True,
        seed=training.seed,
        sample_weights=weights,
    )


def evaluation_batches(
    data: PreparedDataset, split: SplitName, device: torch.device | str = "cpu"
) -> TensorBatches:
    """Unshuffled (features, labels) batches of a split, for validation or testing."""
    return TensorBatches(split_tensors(data, split, device), EVAL_BATCH_ROWS)
