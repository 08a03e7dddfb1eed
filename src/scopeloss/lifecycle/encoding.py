"""Checkpoint contents as data: NumPy arrays as marked tensors and back, so that
``torch.load(weights_only=True)`` reads every checkpoint."""

from __future__ import annotations

import os
from typing import Any



def to_data(obj: Any) -> Any:
    """``obj`` with every NumPy array as a tensor (marked, for ``from_data``) and every NumPy
    scalar as a Python number: what ``torch.load(weights_only=True)`` reads back."""
    import numpy as np
    import torch

    if isinstance(obj, dict):
        return {k: to_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_data(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return {_NDARRAY: torch.from_numpy(np.ascontiguousarray(obj).copy())}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def from_data(obj: Any) -> Any:
    """The inverse of ``to_data``."""
    if isinstance(obj, dict):
        if len(obj) == 1 and _NDARRAY in obj:
            return obj[_NDARRAY].numpy()
        return {k: from_data(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(from_data(v) for v in obj)
    return obj


_NDARRAY = "__ndarray__"
