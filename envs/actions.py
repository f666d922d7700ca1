"""Validation of slate actions against a ``MultiDiscrete([M] * k)`` space, single or batched."""

from __future__ import annotations

import reprlib

import numpy as np
from numba import njit


def check_slates(action: object, num_candidates: int, slate_size: int, num_envs: int | None) -> np.ndarray:
    """Return ``action`` as an int64 array ``(num_envs, k)`` (``(1, k)`` for a single env).

    Raises ``ValueError`` naming the action and the expected space on a wrong shape, dtype or range;
    for a batch, the message also names the first offending sub-environment. The range is checked
    before the cast to int64, so an unsigned or float entry too large for int64 is named as given.
    """
    expected = (slate_size,) if num_envs is None else (num_envs, slate_size)
    if isinstance(action, np.ndarray) and action.dtype == np.int64 and action.shape == expected:
        slates = action.reshape(-1, slate_size)  # a view, also of a sliced batch
        if _within(slates, num_candidates):  # the common case, checked in one pass
            return slates
    space = f"MultiDiscrete([{num_candidates}] * {slate_size})"
    try:
        array = np.asarray(action)
    except ValueError:  # ragged nested sequences
        raise ValueError(
            f"action {reprlib.repr(action)} is not a rectangular array; expected shape {expected} for {space}"
        ) from None
    if array.shape != expected:
        raise ValueError(f"action {_show(array)} has shape {array.shape}; expected {expected} for {space}")
    if array.dtype.kind not in "iu" and not _integral_floats(array):
        raise ValueError(f"action {_show(array)} has dtype {array.dtype}; expected integers for {space}")
    array = array.reshape(-1, slate_size)
    if array.min() < 0 or array.max() >= num_candidates:
        row, col = np.argwhere((array < 0) | (array >= num_candidates))[0]
        where = "" if num_envs is None else f" in sub-env {row}"
        raise ValueError(
            f"action {_show(array[row])}{where} has entry {array[row, col]} at position {col}; "
            f"expected values in [0, {num_candidates - 1}] for {space}"
        )
    return array.astype(np.int64, copy=False)


def _integral_floats(array: np.ndarray) -> bool:
    return array.dtype.kind == "f" and bool(np.all(np.isfinite(array) & (array == np.round(array))))


def _show(array: np.ndarray) -> str:
    return np.array2string(array, threshold=20, separator=",") if array.size else "[]"


@njit(cache=True)
def _within(slates, num_candidates):
    """Whether every entry of ``slates`` ``(n, k)`` is in ``[0, num_candidates)``."""
    for row in range(slates.shape[0]):
        for j in range(slates.shape[1]):
            if slates[row, j] < 0 or slates[row, j] >= num_candidates:
                return False
    return True
