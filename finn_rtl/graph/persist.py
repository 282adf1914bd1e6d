"""The folded IR on disk: `network.json` (structure, types, folding, FIFO depths) and
`network.npz` (weights, thresholds, orders), so `finn-rtl verify`, `deploy` and friends load the
network a build made instead of streamlining the original model again.

Specs are written field by field from their dataclass definitions: a new layer kind (a `Layer`
subclass) needs nothing here.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from .datatypes import QType
from .errors import CompileError
from .network import Edge, NetworkSpec, OutputSpec
from .specs import Layer

FORMAT = 1
JSON_NAME, ARRAYS_NAME = "network.json", "network.npz"


def spec_kinds() -> dict[str, type]:
    """Every layer spec class, by name (all `Layer` subclasses that are dataclasses)."""
    kinds, todo = {}, list(Layer.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if dataclasses.is_dataclass(cls):
            kinds[cls.__name__] = cls
    return kinds


def qtype_from_name(name: str) -> QType:
    if name == "BIPOLAR":
        return QType.bipolar_type()
    signed = name.startswith("INT")
    return QType(int(name[3 if signed else 4:]), signed)


class _Encoder:
    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def value(self, value, key: str):
        if isinstance(value, QType):
            return {"qtype": str(value)}
        if isinstance(value, np.ndarray):
            self.arrays[key] = value
            return {"array": key}
        if isinstance(value, (tuple, list)):
            return [self.value(v, f"{key}.{i}") for i, v in enumerate(value)]
        if isinstance(value, (np.integer, np.floating)):
            return value.item()
        return value

    def fields(self, obj, key: str, skip=()) -> dict:
        return {f.name: self.value(getattr(obj, f.name), f"{key}.{f.name}")
                for f in dataclasses.fields(obj) if f.name not in skip}


def _decode(value, arrays):
    if isinstance(value, dict) and "qtype" in value:
        return qtype_from_name(value["qtype"])
    if isinstance(value, dict) and "array" in value:
        return arrays[value["array"]]
    if isinstance(value, list):
        return tuple(_decode(v, arrays) for v in value)
    return value


def save_network(out_dir, network: NetworkSpec, input_quantizer, input_shape) -> None:
    encoder = _Encoder()
    document = {
        "format": FORMAT,
        "network": encoder.fields(network, "network", skip=("layers", "edges", "output")),
        "layers": [{"kind": type(layer).__name__, "fields": encoder.fields(layer, f"layer{i}")}
                   for i, layer in enumerate(network.layers)],
        "edges": [dataclasses.asdict(edge) for edge in network.edges],
        "output": encoder.fields(network.output, "output"),
        "input_quantizer": encoder.fields(input_quantizer, "input_quantizer", skip=("prefix",)),
        "input_quantizer_file": "input_quantizer.onnx" if input_quantizer.prefix is not None else None,
        "input_shape": [int(d) for d in input_shape],
    }
    out = Path(out_dir)
    (out / JSON_NAME).write_text(json.dumps(document, indent=1) + "\n")
    np.savez_compressed(out / ARRAYS_NAME, **encoder.arrays)


def fixed_digest(network: NetworkSpec, input_quantizer) -> str:
    """A digest of everything a weight load at run time cannot change: the network without the
    contents of its written memories (their shapes, types and folding stay in) and the input
    quantizer. Weights built from another model load only where this digest is the same."""
    encoder = _Encoder()
    document = {
        "network": encoder.fields(network, "network", skip=("name", "notes", "layers", "edges", "output")),
        "layers": [{"kind": type(layer).__name__,
                    "fields": encoder.fields(layer, f"layer{i}", skip=("name",) + (
                        layer.WRITABLE_MEMORIES if layer.runtime_writeable else ()))}
                   for i, layer in enumerate(network.layers)],
        "edges": [dataclasses.asdict(edge) for edge in network.edges],
        "output": encoder.fields(network.output, "output"),
        "input_quantizer": encoder.fields(input_quantizer, "input_quantizer", skip=("prefix",)),
    }
    digest = hashlib.sha256(json.dumps(document, sort_keys=True, default=str).encode())
    for key in sorted(encoder.arrays):
        array = np.ascontiguousarray(encoder.arrays[key])
        digest.update(f"{key}:{array.dtype}:{array.shape}".encode())
        digest.update(array.tobytes())
    if input_quantizer.prefix is not None:
        digest.update(input_quantizer.prefix)
    return digest.hexdigest()[:16]


def load_network(build_dir):
    """(network, input quantizer, model input shape) as `save_network` wrote them."""
    from .streamline import InputQuantizer

    out = Path(build_dir)
    try:
        document = json.loads((out / JSON_NAME).read_text())
        arrays = dict(np.load(out / ARRAYS_NAME))
    except FileNotFoundError:
        raise CompileError(f"{out} has no {JSON_NAME}/{ARRAYS_NAME}: build it again with this finn-rtl") from None
    except (json.JSONDecodeError, ValueError, OSError) as exc:
        raise CompileError(f"{out}/{JSON_NAME} or {ARRAYS_NAME} is unreadable ({exc})") from None
    if document.get("format") != FORMAT:
        raise CompileError(f"{out}/{JSON_NAME} has format {document.get('format')}, this finn-rtl reads "
                           f"{FORMAT}: build it again")
    kinds = spec_kinds()
    layers = []
    for entry in document["layers"]:
        cls = kinds.get(entry["kind"])
        if cls is None:
            raise CompileError(f"{out}/{JSON_NAME}: unknown layer kind {entry['kind']}")
        layers.append(cls(**{k: _decode(v, arrays) for k, v in entry["fields"].items()}))
    fields = {k: _decode(v, arrays) for k, v in document["network"].items()}
    network = NetworkSpec(layers=tuple(layers), edges=tuple(Edge(**e) for e in document["edges"]),
                          output=OutputSpec(**{k: _decode(v, arrays) for k, v in document["output"].items()}),
                          **fields)
    quantizer = {k: _decode(v, arrays) for k, v in document["input_quantizer"].items()}
    prefix_file = document.get("input_quantizer_file")
    prefix = (out / prefix_file).read_bytes() if prefix_file else None
    return network, InputQuantizer(prefix=prefix, **quantizer), tuple(document["input_shape"])
