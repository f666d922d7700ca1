"""One persistence protocol for everything stateful, and one way to store it without pickle.

Every stateful part of an agent or an environment — replay, item statistics, networks, optimisers, random
generators, counters — speaks PyTorch's protocol: ``state_dict()`` returns a nested mapping whose leaves are
numpy arrays, torch tensors or JSON values (numbers, strings, booleans, None, lists), and
``load_state_dict(state)`` takes it back. :func:`write_state` stores such a mapping in a directory — arrays in
``arrays.npz``, tensors in ``tensors.safetensors``, the structure and the JSON values in ``state.json`` — and
:func:`read_state` rebuilds it; nothing is pickled, so loading a file cannot run code. Mapping keys may be
strings or integers (an optimiser's state is keyed by parameter index) and come back as they were.

>>> import tempfile, numpy as np, torch
>>> state = {"weights": torch.ones(2), "counts": np.arange(3), "seen": {0: 5, 1: [1.5, None]}}
>>> with tempfile.TemporaryDirectory() as directory:
...     write_state(directory, state)
...     back = read_state(directory)
>>> back["counts"].tolist(), back["weights"].tolist(), back["seen"]
([0, 1, 2], [1.0, 1.0], {0: 5, 1: [1.5, None]})
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors.torch import load_file, save_file

ARRAYS, TENSORS, STRUCTURE = "arrays.npz", "tensors.safetensors", "state.json"


class Stateful(Protocol):
    """What every stateful component offers."""

    def state_dict(self) -> Mapping[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> Any: ...


class GeneratorState:
    """A numpy ``Generator`` as a :class:`Stateful` component (its bit generator's state)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng

    def state_dict(self) -> dict[str, Any]:
        return {"bit_generator": self.rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["bit_generator"]


class Counters:
    """Scalar attributes of an object as a stateful component."""

    def __init__(self, owner: object, names: tuple[str, ...]) -> None:
        self.owner, self.names = owner, names

    def state_dict(self) -> dict[str, Any]:
        return {name: getattr(self.owner, name) for name in self.names}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for name in self.names:
            setattr(self.owner, name, state[name])


def write_state(directory: str | Path, state: Mapping[str, Any]) -> None:
    """Store ``state`` (see the module docstring) in ``directory`` (created if need be)."""
    arrays: dict[str, np.ndarray] = {}
    tensors: dict[str, torch.Tensor] = {}
    structure = _encode(state, arrays, tensors)
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    np.savez(path / ARRAYS, **arrays)
    save_file(tensors, path / TENSORS)  # clones: tensors that share memory are stored once each
    (path / STRUCTURE).write_text(json.dumps(structure))


def read_state(directory: str | Path, device: str | torch.device = "cpu") -> Any:
    """What :func:`write_state` stored, tensors on ``device``; arrays are read without pickle."""
    path = Path(directory)
    with np.load(path / ARRAYS, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    tensors = load_file(path / TENSORS, device=str(device))
    return _decode(json.loads((path / STRUCTURE).read_text()), arrays, tensors)


def _encode(value: Any, arrays: dict, tensors: dict) -> Any:
    if isinstance(value, torch.Tensor):
        name = str(len(tensors))
        tensors[name] = value.detach().clone().contiguous()
        return {"$tensor": name}
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError(f"cannot store an object array of shape {value.shape} without pickle; expected numbers")
        name = f"a{len(arrays)}"
        arrays[name] = value
        return {"$array": name}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        items = [(_key(k), _encode(v, arrays, tensors)) for k, v in value.items()]
        return {"$map": items}
    if isinstance(value, (list, tuple)):
        return [_encode(v, arrays, tensors) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} {value!r}; expected arrays, tensors or JSON values")


def _key(key: Any) -> list:
    if isinstance(key, bool) or not isinstance(key, (str, int, np.integer)):
        raise TypeError(f"cannot store a mapping key {key!r}; expected a string or an integer")
    return ["s", key] if isinstance(key, str) else ["i", int(key)]


def _decode(value: Any, arrays: dict, tensors: dict) -> Any:
    if isinstance(value, list):
        return [_decode(v, arrays, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "$tensor" in value:
        return tensors[value["$tensor"]]
    if "$array" in value:
        return arrays[value["$array"]]
    return {(key if tag == "s" else int(key)): _decode(v, arrays, tensors) for (tag, key), v in value["$map"]}
