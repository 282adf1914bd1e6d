"""finn-rtl host driver for an AcceleratorShell on a PYNQ (Zynq) board or an Alveo card.

Copied unchanged next to the bitfile (or .xclbin) by `finn-rtl deploy`, together with its
description, `<bitfile stem>.json`. It needs only numpy (1.x or 2.x) and pynq:

    from driver import Accelerator
    accel = Accelerator("finn_rtl.bit")
    y = accel.execute(x)            # the model's own float input, batched; the model's output
    print(accel.throughput_test(10000))

or from a shell:  python driver.py --bitfile finn_rtl.bit --input x.npy --output y.npy

A design with weights written at run time (runtime_writeable_weights) loads the weights in
`weights/` beside the bitfile when it starts; `accel.load_weights(path)` loads those of another
build (of a fine-tuned model with the same structure) without a new bitstream.

The host does what the model does before its first activation quantizer (elementwise affine
ops and the quantizer) and after its last quantized layer (per-channel affine, argmax), in
numpy, with the same float32/float64 operations as the compiler's verification, so the results
are bit-identical to `finn-rtl verify`.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

# -- encoding ---------------------------------------------------------------------------------


def encode(values: np.ndarray, qtype: dict) -> np.ndarray:
    """Integers -> unsigned wire codes (bipolar: +1 -> 1, -1 -> 0; signed: two's complement)."""
    values = np.asarray(values, dtype=np.int64)
    if qtype["bipolar"]:
        return (values > 0).astype(np.uint64)
    return (values & ((1 << qtype["bits"]) - 1)).astype(np.uint64)


def decode(codes: np.ndarray, qtype: dict) -> np.ndarray:
    codes = np.asarray(codes, dtype=np.int64)
    if qtype["bipolar"]:
        return 2 * codes - 1
    bits = qtype["bits"]
    if qtype["signed"]:
        return np.where(codes >= 1 << (bits - 1), codes - (1 << bits), codes)
    return codes


def pack_frames(ints: np.ndarray, port: dict) -> np.ndarray:
    """Stream-order integers [n, elements] -> the input buffer, uint8 [n, frame_bytes]:
    each beat's elements little-endian in a slot of `slot_bytes`, frames padded to words."""
    layout, bits, lanes = port["layout"], port["qtype"]["bits"], port["lanes"]
    n = len(ints)
    codes = encode(ints, port["qtype"]).reshape(n, layout["beats_per_frame"], lanes)
    planes = ((codes[..., None] >> np.arange(bits, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    slot_bits = 8 * layout["slot_bytes"]
    slots = np.zeros((n, layout["beats_per_frame"], slot_bits), dtype=np.uint8)
    slots[:, :, :lanes * bits] = planes.reshape(n, layout["beats_per_frame"], lanes * bits)
    frames = np.zeros((n, 8 * layout["frame_bytes"]), dtype=np.uint8)
    frames[:, :layout["beats_per_frame"] * slot_bits] = slots.reshape(n, -1)
    return np.packbits(frames, axis=1, bitorder="little")


def unpack_frames(buffer: np.ndarray, port: dict) -> np.ndarray:
    """The output buffer, uint8 [n, frame_bytes] -> stream-order integers [n, elements]."""
    layout, bits, lanes = port["layout"], port["qtype"]["bits"], port["lanes"]
    n, beats = len(buffer), layout["beats_per_frame"]
    slot_bits = 8 * layout["slot_bytes"]
    frame_bits = np.unpackbits(np.asarray(buffer, dtype=np.uint8).reshape(n, -1), axis=1, bitorder="little")
    slots = frame_bits[:, :beats * slot_bits].reshape(n, beats, slot_bits)[:, :, :lanes * bits]
    planes = slots.reshape(n, beats, lanes, bits).astype(np.uint64)
    codes = (planes << np.arange(bits, dtype=np.uint64)).sum(axis=-1)
    return decode(codes.reshape(n, beats * lanes), port["qtype"])


# -- host-side model ops ----------------------------------------------------------------------

_ROUNDING = {
    "ROUND": np.round, "HALF_EVEN": np.round, "CEIL": np.ceil, "FLOOR": np.floor, "DOWN": np.fix,
    "UP": lambda v: np.sign(v) * np.ceil(np.abs(v)),
    "HALF_UP": lambda v: np.sign(v) * np.floor(np.abs(v) + 0.5),
}


def _constant(step: dict) -> np.ndarray:
    return np.asarray(step["value"], dtype=np.float32).reshape(step["shape"])


def run_input_steps(x: np.ndarray, steps: list) -> np.ndarray:
    """The model's ops before its first activation quantizer, in float32 as qonnx runs them."""
    y = np.asarray(x, dtype=np.float32)
    for step in steps:
        op = step["op"]
        if op == "reshape":
            y = y.reshape((len(y), *step["shape"]))
        elif op == "transpose":
            y = y.transpose(step["perm"])
        elif op in ("mul", "div", "add", "sub"):
            c = _constant(step)
            a, b = (c, y) if step.get("constant_first") else (y, c)
            y = {"mul": np.multiply, "div": np.divide, "add": np.add, "sub": np.subtract}[op](a, b)
            y = y.astype(np.float32)
        elif op == "quant":
            scale, zeropt = np.float32(step["scale"]), np.float32(step["zeropt"])
            q = (y / scale + zeropt).astype(np.float32)
            if step["bits"] == 1 and step["signed"]:
                q = np.where(q >= 0, np.float32(1), np.float32(-1))
            else:
                q = np.clip(q, np.float32(step["min"]), np.float32(step["max"]))
                q = _ROUNDING[step["rounding_mode"]](q).astype(np.float32)
            y = ((q - zeropt) * scale).astype(np.float32)
        elif op == "multithreshold":  # as qonnx: count thresholds <= value per channel, then scale and bias
            thresholds = np.asarray(step["thresholds"], dtype=np.float32).reshape(step["thresholds_shape"])
            values = np.moveaxis(y, step["channel_axis"], -1)[..., None]
            counts = np.count_nonzero(values >= thresholds, axis=-1).astype(np.float32)
            y = np.moveaxis(counts, -1, step["channel_axis"])
            y = (np.float32(step["out_scale"]) * y + np.float32(step["out_bias"])).astype(np.float32)
        elif op == "bipolar_quant":
            y = (np.where(y >= 0, np.float32(1), np.float32(-1)) * np.float32(step["scale"])).astype(np.float32)
        else:
            raise ValueError(f"unknown host step {op!r}: this driver does not match its description")
    return y


def quantize_input(x: np.ndarray, desc: dict) -> np.ndarray:
    """The model's float input [n, ...] -> the accelerator's integers [n, elements], stream order."""
    x = np.asarray(x, dtype=np.float32)
    shape = tuple(desc["shape"])
    if x.shape[1:] != shape:
        if x.shape == shape:
            x = x[None]
        else:
            raise ValueError(f"input has shape {x.shape}, the model takes [n, {', '.join(map(str, shape))}]")
    y = run_input_steps(x, desc["steps"]).reshape(len(x), -1).astype(np.float64) / desc["int_scale"]
    ints = np.round(y).astype(np.int64)
    qtype = desc["qtype"]
    lo, hi = (-1, 1) if qtype["bipolar"] else (qtype["min"], qtype["max"])
    if np.any(np.abs(ints - y) > 1e-3) or ints.min(initial=lo) < lo or ints.max(initial=hi) > hi:
        raise ValueError("input does not quantize to the accelerator's integers")
    order = desc.get("order")
    return ints if order is None else ints[:, order]


def model_output(ints: np.ndarray, desc: dict) -> np.ndarray:
    """The accelerator's integers [n, elements] (stream order) -> the model's output."""
    if desc["label_select"]:
        return ints
    order = desc.get("order")
    if order is not None:
        model_order = np.empty_like(ints)
        model_order[:, order] = ints
        ints = model_order
    values = ints.astype(np.float64) * np.asarray(desc["scale"]) + np.asarray(desc["offset"])
    if desc["host_argmax"]:
        return values.argmax(axis=-1)[..., None]
    return apply_head(desc.get("head"), values)


def apply_head(head, values: np.ndarray) -> np.ndarray:
    """Softmax, LogSoftmax or Sigmoid over the classes in float64, as finn-rtl's verification does."""
    if head is None:
        return values
    if head == "Sigmoid":
        return 1.0 / (1.0 + np.exp(-values))
    shifted = values - values.max(axis=-1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return np.exp(shifted - log_sum) if head == "Softmax" else shifted - log_sum


# -- the accelerator --------------------------------------------------------------------------

AP_START, AP_DONE = 1, 2


class AcceleratorTimeout(RuntimeError):
    pass


class Accelerator:
    """One AcceleratorShell in a loaded overlay. `bitfile`: the .bit (Zynq, with its .hwh beside
    it) or .xclbin (Alveo); `description`: the JSON (default: next to the bitfile)."""

    def __init__(self, bitfile, description=None, *, timeout: float = 10.0, max_frames: int = 4096,
                 overlay=None):
        import pynq

        self.pynq = pynq
        bitfile = Path(bitfile)
        description = Path(description) if description else bitfile.with_suffix(".json")
        self.desc = json.loads(description.read_text())
        self.reg = self.desc["registers"]
        self.timeout = timeout
        self.overlay = overlay if overlay is not None else pynq.Overlay(str(bitfile))
        self.ip = getattr(self.overlay, self.desc["ip_name"])
        design_id = self.ip.read(self.reg["DESIGN_ID"])
        if design_id != self.desc["design_id"]:
            raise RuntimeError(f"the loaded bitfile's design ID is {design_id:#010x}, the description says "
                               f"{self.desc['design_id']:#010x}: driver JSON and bitfile are from different builds")
        self.max_frames = max_frames
        self._buffers = None
        if self.desc.get("weights"):
            self.load_weights(bitfile.parent / self.desc["weights"]["directory"])

    def load_weights(self, path) -> int:
        """Write the weights in directory `path` (a build's or deployment's `weights/`) into the
        accelerator, between runs; returns the registers written. Weights of a build whose
        network differs in anything but these weights are refused."""
        spec = self.desc.get("weights")
        if not spec:
            raise ValueError("this design has no weights written at run time (build with runtime_writeable_weights)")
        path = Path(path)
        try:
            manifest = json.loads((path / "manifest.json").read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}/manifest.json: cannot read the weights' manifest ({exc})") from None
        if manifest.get("fixed_digest") != spec["fixed_digest"]:
            raise ValueError(f"{path} holds weights of a network that differs from the loaded design beyond its "
                             f"weights (structure, folding, types, thresholds or input quantizer): build a new "
                             f"bitstream for it")
        keys = ("layer", "memory", "depth", "width", "base_register", "stride")
        if [[m[k] for k in keys] for m in manifest["memories"]] != [[m[k] for k in keys] for m in spec["memories"]]:
            raise ValueError(f"{path}: the weight memories do not match the loaded design's")
        written = 0
        for memory in manifest["memories"]:
            image = np.load(path / memory["file"])
            if image.dtype != np.uint32 or image.shape != (memory["depth"] * memory["stride"],):
                raise ValueError(f"{path / memory['file']}: expected {memory['depth'] * memory['stride']} uint32 "
                                 f"registers, found {image.dtype} {image.shape}")
            self._write_registers(spec["window"] + 4 * memory["base_register"], image)
            written += len(image)
        return written

    def _write_registers(self, offset: int, values: np.ndarray) -> None:
        """Consecutive 32-bit registers: one bulk write where pynq's MMIO takes bytes, else one by one."""
        try:
            self.ip.write(offset, np.ascontiguousarray(values, dtype="<u4").tobytes())
        except (TypeError, ValueError):
            for index, value in enumerate(values.tolist()):
                self.ip.write(offset + 4 * index, value)

    # buffers are allocated once for max_frames and reused
    def _allocate(self):
        if self._buffers is None:
            kwargs = {}
            bank = self.desc.get("memory_bank")
            if bank and hasattr(self.overlay, bank):
                kwargs["target"] = getattr(self.overlay, bank)
            n = self.max_frames
            self._buffers = (
                self.pynq.allocate((n, self.desc["input"]["layout"]["frame_bytes"]), dtype=np.uint8, **kwargs),
                self.pynq.allocate((n, self.desc["output"]["layout"]["frame_bytes"]), dtype=np.uint8, **kwargs))
        return self._buffers

    @staticmethod
    def _address(buffer) -> int:
        address = getattr(buffer, "device_address", None)
        return int(buffer.physical_address if address is None else address)

    def run_packed(self, packed: np.ndarray) -> np.ndarray:
        """One kernel run on packed input frames; returns the packed output frames."""
        frames = len(packed)
        inbuf, outbuf = self._allocate()
        inbuf[:frames] = packed
        inbuf.sync_to_device()
        if self.desc["platform"] == "alveo":
            # XRT owns an Alveo kernel's registers: start it through the kernel call.
            handle = self.ip.start(inbuf, outbuf, frames)
            self._wait_until(lambda: handle.done, frames)
        else:
            self._start_by_registers(inbuf, outbuf, frames)
            self._wait_until(lambda: self.ip.read(self.reg["CTRL"]) & AP_DONE, frames)
        status = self.ip.read(self.reg["STATUS"])
        if status:
            raise RuntimeError("the accelerator reported: " + "; ".join(self._status_text(status)))
        outbuf.sync_from_device()
        return np.array(outbuf[:frames])

    def _start_by_registers(self, inbuf, outbuf, frames: int) -> None:
        write = self.ip.write
        in_addr, out_addr = self._address(inbuf), self._address(outbuf)
        write(self.reg["INPUT_LO"], in_addr & 0xFFFFFFFF)
        write(self.reg["INPUT_HI"], in_addr >> 32)
        write(self.reg["OUTPUT_LO"], out_addr & 0xFFFFFFFF)
        write(self.reg["OUTPUT_HI"], out_addr >> 32)
        write(self.reg["FRAMES"], frames)
        write(self.reg["CTRL"], AP_START)

    def _wait_until(self, finished, frames: int) -> None:
        """Poll `finished()`; on timeout raise with the status registers explained."""
        deadline = time.monotonic() + self.timeout + frames * self.desc["expected_ii_cycles"] / (
            self.desc["clock_mhz"] * 1e6)
        while not finished():
            if time.monotonic() > deadline:
                raise AcceleratorTimeout(f"no ap_done after {self.timeout:g} s:\n" + self.diagnose(frames))
            time.sleep(0.0001)

    def execute_integers(self, ints: np.ndarray) -> np.ndarray:
        """Stream-order input integers [n, elements] -> stream-order output integers."""
        inp, out = self.desc["input"], self.desc["output"]
        results = []
        for first in range(0, len(ints), self.max_frames):
            packed = pack_frames(ints[first:first + self.max_frames], inp)
            results.append(unpack_frames(self.run_packed(packed), out))
        return np.concatenate(results) if results else np.zeros((0, out["elements"]), dtype=np.int64)

    def execute(self, x: np.ndarray) -> np.ndarray:
        """The model's float input, batched [n, ...] -> the model's output [n, ...]."""
        ints = quantize_input(x, self.desc["input"])
        return model_output(self.execute_integers(ints), self.desc["output"])

    def throughput_test(self, frames: int = 1000) -> dict:
        """Run `frames` zero frames and measure with the shell's cycle counter."""
        frames = min(frames, self.max_frames)
        packed = np.zeros((frames, self.desc["input"]["layout"]["frame_bytes"]), dtype=np.uint8)
        start = time.perf_counter()
        self.run_packed(packed)
        wall = time.perf_counter() - start
        cycles = self.ip.read(self.reg["CYCLES_LO"]) | (self.ip.read(self.reg["CYCLES_HI"]) << 32)
        clock = self.desc["clock_mhz"] * 1e6
        return {"frames": frames, "cycles": cycles, "cycles_per_frame": cycles / frames,
                "expected_ii_cycles": self.desc["expected_ii_cycles"],
                "fps_at_clock": frames * clock / cycles if cycles else float("inf"),
                "clock_mhz": self.desc["clock_mhz"], "wall_seconds": wall,
                "fps_wall": frames / wall if wall else float("inf")}

    def _status_text(self, status: int) -> list:
        return [text for bit, text in self.desc["status_bits"].items() if status >> int(bit) & 1]

    def diagnose(self, frames: int) -> str:
        """Every status register, and what it means."""
        read = self.ip.read
        ctrl, status = read(self.reg["CTRL"]), read(self.reg["STATUS"])
        words_read, words_written = read(self.reg["WORDS_READ"]), read(self.reg["WORDS_WRITTEN"])
        in_words = frames * self.desc["input"]["layout"]["frame_bytes"] // self.desc["word_bytes"]
        out_words = frames * self.desc["output"]["layout"]["frame_bytes"] // self.desc["word_bytes"]
        cycles = read(self.reg["CYCLES_LO"]) | (read(self.reg["CYCLES_HI"]) << 32)
        lines = [f"CTRL={ctrl:#x} (start={ctrl & 1}, done={ctrl >> 1 & 1}, idle={ctrl >> 2 & 1})",
                 f"STATUS={status:#x}" + "".join(f"\n  {text}" for text in self._status_text(status)),
                 f"input words read {words_read} of {in_words}, output words written {words_written} "
                 f"of {out_words}, {cycles} cycles since start"]
        if ctrl & 4 and not ctrl & 1:
            lines.append("the kernel is idle: it never started (is the IP's clock running and reset released?)")
        elif words_read < in_words:
            lines.append("the shell is still reading its input: the memory does not answer read bursts "
                         "(check the input address and the memory port)")
        elif words_written < out_words:
            lines.append("all input is read but results are missing: the accelerator or the write path stalls")
        else:
            lines.append("all words were written: the memory does not acknowledge the last write bursts")
        return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run a finn-rtl accelerator on a board")
    parser.add_argument("--bitfile", required=True, help=".bit (Zynq) or .xclbin (Alveo)")
    parser.add_argument("--description", help="driver JSON (default: beside this file or the bitfile)")
    parser.add_argument("--input", help=".npy with the model's float input, batched")
    parser.add_argument("--output", default="output.npy", help="where to save the model's output")
    parser.add_argument("--throughput", type=int, metavar="N", help="measure throughput on N frames")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait beyond the expected run time")
    parser.add_argument("--batch", type=int, default=4096, help="frames per kernel run (buffer size)")
    parser.add_argument("--weights", help="load the weights in this directory (another build's weights/) first")
    args = parser.parse_args(argv)
    try:
        accel = Accelerator(args.bitfile, args.description, timeout=args.timeout, max_frames=args.batch)
        if args.weights:
            print(f"{accel.load_weights(args.weights)} weight registers written from {args.weights}")
        if args.input:
            y = accel.execute(np.load(args.input))
            np.save(args.output, y)
            print(f"{len(y)} frames -> {args.output}")
        if args.throughput:
            result = accel.throughput_test(args.throughput)
            print(f"{result['frames']} frames in {result['cycles']} cycles: {result['cycles_per_frame']:.1f} "
                  f"cycles/frame (expected {result['expected_ii_cycles']}), {result['fps_at_clock']:.0f} frames/s "
                  f"at {result['clock_mhz']:g} MHz")
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"driver: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
