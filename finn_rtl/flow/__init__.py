"""Build and verify flows behind the CLI: model file -> build directory -> verified report.

A build directory holds:
  original.onnx          the input model, byte for byte (the golden model)
  streamlined.onnx       the integer model the hardware implements (qonnx-executable)
  input_quantizer.onnx   the host-side ops up to the first activation quantizer
  network.json/.npz      the folded network (layer specs, edges, FIFO depths): what verify,
                         deploy and the driver load, without streamlining the model again
  <name>.v               the accelerator
  folding.json           PE/SIMD per layer, same keys `--folding` accepts; layers whose lanes
                         follow a neighbour (window generators, padding, duplicates) are listed
                         with "follows" and are not foldable themselves; each layer's memory
                         styles and resType, and "fifo_styles" by edge ("A -> B")
  report.json            per-layer cycles and memories, edges (FIFOs, width converters), expected
                         II, build options, resource estimates (and synthesis), verification
  report.html            the same as one self-contained page with charts (flow/html_report.py)
"""
from ..graph.specs import FoldingError
from .build import Build, BuildOptions, BuildState, build, load_build, read_folding, synthesize_build
from .fifo_sizing import size_fifos
from .report import layer_report
from .verification import (VerificationError, check_input_shape, compare, golden_outputs, load_inputs,
                           random_inputs, verify)

__all__ = ["build", "load_build", "verify", "load_inputs", "random_inputs", "compare", "golden_outputs",
           "read_folding", "check_input_shape", "size_fifos", "layer_report", "synthesize_build", "Build",
           "BuildOptions", "BuildState", "VerificationError", "FoldingError"]
