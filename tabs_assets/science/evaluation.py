"""Run modules for evaluation: eval mode (and a device) for the duration, then put back."""

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def _parameter_device(module: nn.Module) -> torch.device | None:
    parameter = next(iter(module.parameters()), None)
    return None if parameter is None else parameter.device


def module_device(module: nn.Module) -> torch.device:
    """The device of the module's first parameter (the CPU for a module without any)."""
    return _parameter_device(module) or torch.device("cpu")


@contextmanager
def evaluating(*modules: nn.Module | None, device: torch.device | None = None) -> Iterator[None]:
    """Eval mode (dropout and batch norm off) for the duration, on ``device`` when given.

    Afterwards every submodule's own mode is restored, and each module goes back to the device
    it was on. ``None`` entries are skipped (an optional model).
    """
    present = [module for module in modules if module is not None]
    modes = [(child, child.training) for module in present for child in module.modules()]
    # The device of each module's first parameter, read now: .to() moves parameters in place.
    devices = [(module, _parameter_device(module)) for module in present]
    for module in present:
        (module if device is None else module.to(device)).eval()
    try:
        yield
    finally:
        for child, training in modes:
            child.training = training
        for module, original in devices:
            if device is not None and original is not None and original != device:
                module.to(original)
