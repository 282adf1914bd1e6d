"""The weights a build loads at run time (FINN's `runtime_writeable_weights`), as files.

`<build>/weights/` holds one `<layer>.<memory>.npy` per written memory, its register image
(`graph.weight_map`: uint32, the memory's window from its first register), and `manifest.json`:
the weight address space and the digest of everything else in the network (`fixed_digest`). The
deployed driver loads them before its first run and `Accelerator.load_weights(path)` loads those
of another build of a fine-tuned model, where the digests agree: same structure, folding, types,
thresholds and input quantizer; weights alone differ.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..cores.weight_port import memory_words
from ..graph.persist import fixed_digest
from ..graph.weight_map import WeightMap

DIRECTORY, MANIFEST = "weights", "manifest.json"
FORMAT = "finn-rtl weights 1"


def weight_file(memory) -> str:
    return f"{memory.key}.npy"


def manifest(network, input_quantizer) -> dict:
    weights = WeightMap.of(network)
    return {"format": FORMAT, "fixed_digest": fixed_digest(network, input_quantizer),
            "memories": [{**memory.describe(), "file": weight_file(memory)} for memory in weights.memories]}


def write_weight_files(out_dir, network, input_quantizer) -> Path | None:
    """The weights of `network`'s written memories in `out_dir/weights`; None when it has none."""
    weights = WeightMap.of(network)
    if not weights:
        return None
    directory = Path(out_dir) / DIRECTORY
    directory.mkdir(parents=True, exist_ok=True)
    for memory in weights.memories:
        image = memory.register_image(memory_words(network.layer(memory.layer), memory.memory))
        np.save(directory / weight_file(memory), image)
    (directory / MANIFEST).write_text(json.dumps(manifest(network, input_quantizer), indent=1) + "\n")
    return directory
