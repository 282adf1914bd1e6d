"""Matrix-vector-threshold unit (MVTU), folded by PE and SIMD.

Each cycle the unit takes SIMD input elements and SIMD weights for each of PE
output channels. An input vector arrives once (neuron fold 0) and is kept in
an input buffer for the other MH/PE neuron folds. Beat order:

* input beat ``sf`` carries elements ``sf*SIMD .. sf*SIMD+SIMD-1``;
* output beat ``nf`` carries channels ``nf*PE .. nf*PE+PE-1``;
  element 0 of a beat sits in the least significant bits.

Pipeline (one global stall: everything advances when the output register can
take a result, so backpressure never loses or duplicates data):

  issue -> [buffer/weight ROM read] -> [dot products, registered] -> accumulate
        -> [threshold ROM read] -> threshold compare -> output register

Dot products: with enough lanes (`uses_bit_planes`), on bit planes (`bitplane`):
input words are re-packed plane by plane as they arrive (into the input buffer,
which every later neuron fold reads), weights are stored plane by plane in the
ROM, and one carry-save compressor per PE sums plane-pair popcounts. With fewer
lanes the plane words would be a few bits wide, so each lane is multiplied and
an adder tree sums the products. Both operands bipolar: the dot product is an
XNOR-popcount; the accumulator counts agreements ``pc`` and thresholds are
translated from ``dot = 2*pc - MW``.
"""
from __future__ import annotations

import numpy as np
from amaranth import Array, Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..graph.memory import BLOCK_STYLES
from ..graph.specs import MVTUSpec
from ..graph.weight_map import WritableMemory
from .arith import (address_bits, counter_bits, element_value, lane_product, lanes, nested_counters, pack_fields,
                    staged_tree_sum, tree_sum_bits)
from .memories import banked_rom_read, layer_memory, rom_banks
from .weight_port import weight_port_signature, window_bits, write_words
from .bitplane import (agreement_terms, bit_planes, chunks, dot_product_terms, pack_planes, planar,
                       plane_bit, popcount_terms)
from .pipelining import BRAM_OUT_NS, DSP_CASCADE_NS, DSP_MULTIPLY_NS, adder_ns, counter_ns, lut_level_ns, mux_levels, stage_cuts, stage_delays
from .popcount import CountPipeline, pipelined_popcount, popcount_structure
from .threshold import register_output, threshold_features, threshold_path_ns, threshold_register_bits, threshold_stage


# Bit planes cost one popcount per plane pair, lanes one multiply-add per lane. Measured in
# Verilator (instructions per cycle, one PE, with the popcount leaf): 16 lanes of 2x2 bits 944 on
# planes against 1195 on lanes, 8 lanes 921 against 1000, 4 lanes a tie; 16 lanes of 4x4 bits
# 1185 against 1250; CNV's first layer (3 lanes of 8-bit pixels, 16 plane pairs) 2.5x slower
# on planes.
BIT_PLANE_MIN_SIMD = 8


def uses_bit_planes(spec: MVTUSpec) -> bool:
    pairs = 1 if spec.binary_xnor else len(bit_planes(spec.input_type)) * len(bit_planes(spec.weight_type))
    return spec.simd >= max(BIT_PLANE_MIN_SIMD, pairs)


def uses_weight_planes(spec: MVTUSpec) -> bool:
    """Lanes of unsigned inputs with one- or two-plane weights: per weight plane, sum the inputs
    it selects, an unsigned adder tree. The hardware is the partial products a LUT multiplier
    has; a simulator skips the multiplier's sign extension per lane. Measured in Verilator,
    instructions per cycle: CNV's first layer (16 PEs, 3 lanes of UINT8 x INT2) 2556 -> 2371;
    INT4 inputs lose (1460 -> 1881), so signed inputs keep the multipliers, except where a `*`
    would be a DSP48 and the layer's products are LUTs (`graph.multipliers`)."""
    x = spec.input_type
    if spec.binary_xnor or spec.multipliers == "dsp":
        return False
    if spec.products().dsp_capable:
        return True
    return not (x.signed or x.bipolar) and len(bit_planes(spec.weight_type)) <= 2


def datapath(spec: MVTUSpec) -> str:
    """How the dot products are made: bit-plane popcounts (an XNOR layer's agreements among
    them), XNOR lanes, per-weight-plane sums of the inputs, or per-lane multiplications (DSP48s
    in the "dsp" style)."""
    if spec.multipliers == "dsp":
        return "multiply"
    if uses_bit_planes(spec):
        return "planes"
    if spec.binary_xnor:
        return "xnor"
    return "weight_planes" if uses_weight_planes(spec) else "multiply"


def registers_operands(spec: MVTUSpec) -> bool:
    """A block RAM's output (weights or input buffer in block RAM, 2.45 ns from the clock, and a
    multiplexer where the memory spans several primitives) leaves too little of a cycle for
    arithmetic: the operands are registered first where the budget is short of that."""
    blocks = [name for name in ("weights", "input_buffer") if name in spec.memories()]
    if not any(spec.memory_style(name) in BLOCK_STYLES for name in blocks):
        return False
    return BRAM_OUT_NS + lut_level_ns(2) + lut_level_ns() > spec.stage_budget.logic_ns


def weight_banks(spec: MVTUSpec) -> int:
    """Memories the weight ROM is cut into (`memories.rom_banks`): where the operands are
    registered, each of its block RAM's address blocks is registered and the multiplexer among
    them is behind the register, not on the block RAM's output."""
    return len(rom_banks(spec.memories()["weights"], spec.memory_style("weights"))) if registers_operands(spec) else 1


def operand_ns(spec: MVTUSpec) -> float:
    """Delay the dot product's words have before its first adder: the AND/XNOR of the operands,
    and unless the operands are registered (`registers_operands`), the multiplexer between the
    stream word and the input buffer and a block RAM's unregistered output."""
    if registers_operands(spec):
        return lut_level_ns(1 + mux_levels(weight_banks(spec)))
    used = lut_level_ns(2 if spec.synapse_fold > 1 else 1)
    blocks = [name for name in ("weights", "input_buffer") if name in spec.memories()]
    if any(spec.memory_style(name) in BLOCK_STYLES for name in blocks):
        used += BRAM_OUT_NS
    return used


def dot_pipeline(spec: MVTUSpec) -> CountPipeline:
    """Where the bit-plane dot product of one PE has its registers at the spec's clock."""
    terms = popcount_terms(spec.simd, spec.input_type, spec.weight_type, spec.binary_xnor)
    return CountPipeline.of([(shift, len(live)) for shift, live in terms], spec.stage_budget, operand_ns(spec))


def lane_levels(spec: MVTUSpec, weight_planes: bool) -> list[tuple[float, int]]:
    """(delay, register bits per PE) of each level of a lane datapath (`pipelining`): the per-lane
    terms behind the operands (a LUT level per term bit of selection, two more for a LUT
    multiplier's partial products), each level of the adder tree over the lanes, and with weight
    planes the tree over the planes' (shifted) sums and the negative plane's subtraction."""
    ib, wb = spec.input_type.bits, spec.weight_type.bits
    width = 1 if spec.binary_xnor else ib if weight_planes else ib + wb
    planes = bit_planes(spec.weight_type) if weight_planes else []
    trees = max(1, len(planes))
    dsp = spec.multipliers == "dsp"
    terms_ns = DSP_MULTIPLY_NS if dsp else lut_level_ns(2 if spec.binary_xnor or weight_planes else 3)
    # a register right behind a DSP48's product is the DSP's own (MREG/PREG): no flip-flops
    levels = [(operand_ns(spec) + terms_ns, 0 if dsp else trees * spec.simd * width)]
    count, bits = spec.simd, width
    while count > 1:
        count, bits = -(-count // 2), bits + 1
        # synthesis folds the first level's adds into the DSP48s' post-adders (PCIN to P)
        cascade = DSP_CASCADE_NS if dsp and len(levels) == 1 else 0.0
        levels.append((cascade + adder_ns(bits), trees * count * bits))
    if planes:
        positive = sum(not plane.negative for plane in planes)
        bits += wb
        while positive > 1:
            positive, bits = -(-positive // 2), bits + 1
            levels.append((adder_ns(bits), (positive + 1) * bits))
        if any(plane.negative for plane in planes):
            levels.append((adder_ns(bits + 1), bits + 1))
    return levels


def lane_cuts(spec: MVTUSpec, weight_planes: bool) -> list[int]:
    """The lane datapath's levels (`lane_levels`) after which a register goes for the spec's clock;
    the dot-product register after the last level is not among them."""
    levels = lane_levels(spec, weight_planes)
    cuts, _ = stage_cuts([delay for delay, _ in levels], spec.stage_budget)
    return [cut for cut in cuts if cut < len(levels) - 1]


def lane_stages(spec: MVTUSpec, weight_planes: bool) -> int:
    """Registers of a lane datapath: the dot-product register, and those of `lane_cuts`."""
    return len(lane_cuts(spec, weight_planes)) + 1


def path_ns(spec: MVTUSpec) -> float:
    """The slowest stage by the delay model (`pipelining`), logic and routing: the weight address
    counter, a block RAM into the operand register, the dot product's stages, the accumulator,
    the threshold stage's."""
    paths = [counter_ns(spec.neuron_fold * spec.synapse_fold)]
    if registers_operands(spec):
        paths.append(BRAM_OUT_NS)
    if datapath(spec) == "planes":
        paths.append(dot_pipeline(spec).longest_stage_ns)
    else:
        weight_planes = uses_weight_planes(spec)
        levels = [delay for delay, _ in lane_levels(spec, weight_planes)]
        cuts = lane_cuts(spec, weight_planes)
        paths.append(max(stage_delays(levels, cuts)))
    shape = accumulator_shape(spec)
    paths += [lut_level_ns() + adder_ns(shape.width), threshold_path_ns(spec, shape)]
    return max(paths)


def dot_stages(spec: MVTUSpec, bit_planes: bool | None = None, weight_planes: bool | None = None) -> int:
    """Registers between the operands and the accumulator: the operand register where there is
    one, then the pipelined popcount's stages on bit planes, `lane_stages` on lanes."""
    planes = datapath(spec) == "planes" if bit_planes is None else bit_planes
    if planes:
        return registers_operands(spec) + dot_pipeline(spec).stages
    weight_planes = uses_weight_planes(spec) if weight_planes is None else weight_planes and not spec.binary_xnor
    return registers_operands(spec) + lane_stages(spec, weight_planes)


def pipeline_register_bits(spec: MVTUSpec) -> int:
    """Flip-flops the clock's pipeline registers add to a unit (a resource-estimate feature, a
    flip-flop per bit): the operand register, the dot product's stages before its register
    (per PE), the tags beside them, the lane terms' register and registered comparisons."""
    ib, wb = spec.input_type.bits, spec.weight_type.bits
    banks = weight_banks(spec)
    bits = (banks * spec.pe * spec.simd * wb + spec.simd * ib + address_bits(banks)) if registers_operands(spec) else 0
    planes = datapath(spec) == "planes"
    if planes:
        terms = popcount_terms(spec.simd, spec.input_type, spec.weight_type, spec.binary_xnor)
        shifts_widths = [(shift, len(live)) for shift, live in terms]
        bits += spec.pe * dot_pipeline(spec).register_bits(shifts_widths)
    else:
        levels = lane_levels(spec, uses_weight_planes(spec))
        bits += spec.pe * sum(levels[cut][1] for cut in lane_cuts(spec, uses_weight_planes(spec)))
    bits += (dot_stages(spec) - 1) * (3 + counter_bits(spec.neuron_fold))
    return bits + threshold_register_bits(spec, accumulator_shape(spec))


def written_weights(spec: MVTUSpec):
    """The weight memory's place in the weight address space (`graph.weight_map`) where the
    weights are written at run time; else None. A core sees its memory's window from 0."""
    if not spec.runtime_writeable:
        return None
    shape = spec.memories()["weights"]
    return WritableMemory(spec.name, "weights", shape.depth, shape.width, 0)


def weight_words(spec: MVTUSpec, bit_planes: bool) -> list[int]:
    """The spec's weight words (`rom_fields`), or with bit planes each word's PE x SIMD weights
    re-packed plane by plane."""
    (words, bits), = spec.rom_fields("weights")  # [NF*SF, PE*SIMD] codes
    if not bit_planes:
        return pack_fields([(words, bits)])
    return [pack_planes(word.reshape(spec.pe, spec.simd), bits) for word in words]


def accumulator_shape(spec: MVTUSpec):
    bits, is_signed = spec.accumulator
    return signed(bits) if is_signed else unsigned(bits)


class MVTU(wiring.Component):
    def __init__(self, spec: MVTUSpec, bit_planes: bool | None = None, weight_planes: bool | None = None):
        self.spec = spec
        self.bit_planes = datapath(spec) == "planes" if bit_planes is None else bit_planes
        self.weight_planes = not self.bit_planes and (uses_weight_planes(spec) if weight_planes is None
                                                      else weight_planes and not spec.binary_xnor)
        self.in_width = spec.simd * spec.input_type.bits
        self.out_width = spec.pe * spec.output_type.bits
        ports = {
            "s": In(stream.Signature(unsigned(self.in_width))),
            "m": Out(stream.Signature(unsigned(self.out_width))),
        }
        self.written = written_weights(spec)
        if self.written is not None:
            ports["weights_write"] = In(weight_port_signature(window_bits(self.written)))
        super().__init__(ports)

    path_ns = staticmethod(path_ns)

    @staticmethod
    def memory_words(spec: MVTUSpec, name: str) -> list[int]:
        """The words of written memory `name` as the core (its datapath chosen from the spec) stores them."""
        assert name == "weights", "an MVTU writes its weights only"
        return weight_words(spec, datapath(spec) == "planes")

    @staticmethod
    def resource_features(spec: MVTUSpec) -> dict[str, float]:
        """What the logic grows with (memories apart), for the calibrated resource estimate."""
        pe, simd, ib = spec.pe, spec.simd, spec.input_type.bits
        acc = accumulator_shape(spec).width
        path = "xnor" if spec.binary_xnor else datapath(spec)
        dsps = spec.dsps
        if dsps:
            path = "dsp"
        thresholds = spec.thresholds_per_channel
        if path in ("xnor", "planes"):
            # One popcount per PE, its adders counted from its plan; the XNORs or ANDs before it
            # fold into its first adders (measured: 1.9 to 2.05 LUTs per lane for 64 to 784 XNOR
            # lanes). XNOR layers under BIT_PLANE_MIN_SIMD lanes sum with tree_sum instead: a few
            # lanes, counted the same way.
            dot = {}
            for codes in MVTU._rows_per_pe(spec):
                terms = popcount_terms(simd, spec.input_type, spec.weight_type, spec.binary_xnor, codes)
                for name, bits in popcount_structure(terms).items():
                    dot[f"{path}_popcount_{name}"] = dot.get(f"{path}_popcount_{name}", 0) + bits
        elif path == "dsp":
            # Each DSP48 can take one adder after its product (Yosys's `xilinx_dsp`): the tree's
            # first level, and with an odd count the adder the last product joins; the rest of
            # the tree is LUTs (none at 3 lanes, most of the unit at 256 to 784).
            width = ib + spec.weight_type.bits
            dot = {"dot_dsp": dsps, "dot_dsp_tree_bits": pe * tree_sum_bits(simd // 2, width + 1)}
        else:
            # Products (partial products per weight plane, or LUT multipliers), then adder trees
            # over the lanes: one per weight plane of input values, or one of products.
            # A product of six input bits or fewer grows with its product bits (each is a function
            # of at most six inputs), wider ones with the partial products: one term for both put
            # 3x3-bit layers 7-14% over Yosys and 4x4-bit ones 6-17% under.
            wb, planes = spec.weight_type.bits, len(bit_planes(spec.weight_type))
            if path == "multiply" and ib + wb <= 6:
                path, products = "multiply_lut6", pe * simd * (ib + wb)
            else:
                products = {"weight_planes": pe * simd * ib * planes, "multiply": pe * simd * ib * wb}[path]
            trees, width = (planes, ib) if path == "weight_planes" else (1, ib + wb)
            dot = {f"dot_{path}": products, "dot_tree_bits": pe * trees * tree_sum_bits(simd, width)}
        return {"const": 1, "dsp48": dsps, **dot, "pipeline_bits": pipeline_register_bits(spec),
                "acc_bits": pe * acc, **threshold_features(pe, thresholds, acc, spec.neuron_fold),
                "out_bits": pe * spec.output_type.bits,
                # in front of DSP48s the input register can be theirs
                "dsp_in_bits" if dsps else "in_bits": simd * ib,
                "buffer_mux_bits": simd * ib if spec.synapse_fold > 1 else 0,
                "counter_bits": counter_bits(spec.neuron_fold, spec.synapse_fold, spec.neuron_fold * spec.synapse_fold)}

    @staticmethod
    def _rows_per_pe(spec: MVTUSpec) -> list[np.ndarray]:
        """Each PE's weight codes, [row, lane]: the rows of the weight ROM it reads."""
        if spec.runtime_writeable:  # any weight may come: every lane of every plane is live
            return [None] * spec.pe
        (words, _), = spec.rom_fields("weights")
        return [words[:, pe * spec.simd:(pe + 1) * spec.simd] for pe in range(spec.pe)]

    # -- constant tables ---------------------------------------------------------
    def _weight_rom_init(self) -> list[int]:
        return weight_words(self.spec, self.bit_planes)

    # -- hardware -------------------------------------------------------------------
    def elaborate(self, platform):
        spec = self.spec
        m = Module()
        PE, SIMD, NF, SF = spec.pe, spec.simd, spec.neuron_fold, spec.synapse_fold
        ib, ob = spec.input_type.bits, spec.output_type.bits
        acc_shape = accumulator_shape(spec)

        out_valid = Signal()
        advance = Signal()
        m.d.comb += advance.eq(~out_valid | self.m.ready)
        m.d.comb += self.m.valid.eq(out_valid)

        # -- issue: walk (nf, sf); the input stream is consumed only in neuron fold 0. The memories
        # are read only where an operand is issued: an idle unit copies no weight words.
        issue = Signal()
        nf, sf = nested_counters(m, issue, (NF, SF), ("nf", "sf"))
        weight_addr, = nested_counters(m, issue, (NF * SF,), ("weight_addr",))
        from_stream = nf == 0
        m.d.comb += [
            self.s.ready.eq(advance & from_stream),
            issue.eq(advance & (~from_stream | self.s.valid)),
        ]
        # Weights written at run time start empty (`weight_port`).
        weight_words = [] if self.written is not None else self._weight_rom_init()
        targets = []
        if weight_banks(spec) > 1:
            weight_latches, weight_bank = banked_rom_read(m, spec, "weights", weight_words, weight_addr, issue,
                                                          targets)
        else:
            weight_memory = layer_memory(m, spec, "weights", weight_words)
            weight_read = weight_memory.read_port()
            m.d.comb += [weight_read.addr.eq(weight_addr), weight_read.en.eq(issue)]
            weight_latches, weight_bank = [weight_read.data], None
            targets.append((weight_memory, 0, spec.memories()["weights"].depth))
        if self.written is not None:
            write_words(m, self.weights_write, self.written, targets)

        # -- multiply-accumulate stage (operands arrive one cycle after issue)
        mac_valid, mac_first, mac_last, mac_from_stream = Signal(), Signal(), Signal(), Signal()
        mac_stream_word = Signal(self.in_width)
        mac_nf = Signal.like(nf)
        with m.If(advance):
            m.d.sync += [mac_valid.eq(issue), mac_first.eq(sf == 0), mac_last.eq(sf == SF - 1),
                         mac_from_stream.eq(from_stream), mac_nf.eq(nf)]
        # Re-packed only when a beat is taken, so a simulator does the bit shuffle once per beat.
        repack = (lambda word: planar(word, ib, SIMD)) if self.bit_planes else (lambda word: word)
        with m.If(issue & from_stream):
            m.d.sync += mac_stream_word.eq(repack(self.s.payload))
        x_word = mac_stream_word
        x_planes = [mac_stream_word[a * SIMD:(a + 1) * SIMD] for a in range(ib)]
        if SF > 1:
            # Later neuron folds read the vector's beats back from the input buffer. (With one
            # beat per vector the stream word itself is the buffer: it changes only with the next
            # vector.)
            input_buffer = layer_memory(m, spec, "input_buffer")
            buffer_read, buffer_write = input_buffer.read_port(), input_buffer.write_port()
            m.d.comb += [buffer_read.en.eq(issue), buffer_read.addr.eq(sf),
                         buffer_write.addr.eq(sf), buffer_write.data.eq(repack(self.s.payload)),
                         buffer_write.en.eq(issue & from_stream)]
            if self.bit_planes:
                # One multiplexer per compressor chunk, not per plane, so that no wide word is copied.
                x_planes = [Cat(*(Mux(mac_from_stream, new, kept) for new, kept in zip(
                                chunks(plane), chunks(buffer_read.data[a * SIMD:(a + 1) * SIMD]))))
                            for a, plane in enumerate(x_planes)]
            else:
                # A named signal: slicing an expression per lane would rebuild the whole mux per lane.
                x_word = Signal(self.in_width)
                m.d.comb += x_word.eq(Mux(mac_from_stream, mac_stream_word, buffer_read.data))
        x_lanes = None if self.bit_planes else lanes(x_word, ib, SIMD)

        # -- dot-product stages: each PE's dot product goes through `dot_stages` registers (the
        # popcount's pipeline on bit planes, placed for the spec's clock; one register on lanes),
        # stage k loaded only in cycles where it takes a beat, so a simulator skips the popcounts
        # of an idle layer; the beat's tags travel beside it
        enables: dict[int, Signal] = {}

        def stage_enable(k: int) -> Signal:
            return enables.setdefault(k, Signal(name=f"dot_en{k}"))

        weight_word = weight_latches[0]
        first_stage = int(registers_operands(spec))
        if first_stage:  # the operands registered behind the memories (`registers_operands`)
            banks = {f"weights{b}" if len(weight_latches) > 1 else "weights": latch
                     for b, latch in enumerate(weight_latches)}
            operands = {**banks, **({f"x{a}": plane for a, plane in enumerate(x_planes)}
                                    if self.bit_planes else {"x": x_word})}
            if weight_bank is not None:
                operands["weight_bank"] = weight_bank
            held = {}
            for name, value in operands.items():
                held[name] = Signal(len(value), name=f"operand_{name}")
                with m.If(stage_enable(0)):
                    m.d.sync += held[name].eq(value)
            weight_word = held["weights"] if len(banks) == 1 else Signal(len(weight_word), name="operand_weights")
            if len(banks) > 1:
                m.d.comb += weight_word.eq(Array(held[name] for name in banks)[held["weight_bank"]])
            if self.bit_planes:
                x_planes = [held[f"x{a}"] for a in range(ib)]
            else:
                x_lanes = lanes(held["x"], ib, SIMD)

        acc = [Signal(acc_shape, name=f"acc{pe}") for pe in range(PE)]
        dots, depths = [], set()
        for pe in range(PE):
            if self.bit_planes:
                dot, depth = self._plane_dot(m, x_planes, weight_word, pe, platform,
                                             lambda k: stage_enable(first_stage + k))
            else:
                cuts = lane_cuts(spec, self.weight_planes)
                depth = len(cuts) + 1

                def hold(values, name, level, stage=first_stage, cuts=cuts):
                    """The values of lane level `level`, through a register where it is cut."""
                    if level not in cuts:
                        return values
                    held = [Signal(Value.cast(v).shape(), name=f"{name}_held{i}") for i, v in enumerate(values)]
                    with m.If(stage_enable(stage + cuts.index(level))):
                        m.d.sync += [h.eq(v) for h, v in zip(held, values)]
                    return held

                value = Value.cast(self._lane_dot(m, x_lanes, weight_word, pe, hold))
                dot = Signal(value.shape(), name=f"dot{pe}")
                with m.If(stage_enable(first_stage + depth - 1)):
                    m.d.sync += dot.eq(value)
            dots.append(dot)
            depths.add(first_stage + depth)
        (depth,) = depths  # every PE's dot product has the same shape, so the same stages
        self.dot_stages = depth
        # (one register per stage for all tags: a simulator updates one signal, not four)
        tags = Cat(mac_valid, mac_first, mac_last, mac_nf)
        for k in range(depth):
            m.d.comb += stage_enable(k).eq(advance & tags[0])
            later = Signal(len(tags), name=f"dot{k}_tags")
            with m.If(advance):
                m.d.sync += later.eq(tags)
            tags = later
        dot_valid, dot_first, dot_last, dot_nf = tags[0], tags[1], tags[2], tags[3:3 + len(mac_nf)]
        # The accumulator after a vector's last beat is the threshold stage's value: it changes
        # only with the next beat, which comes no earlier than the edge where the stage (or the
        # output register) takes it. Each sum is a signal of its full width, used once: Verilator
        # then adds only with a beat (a sum cut to the register's width in its own assignment, or
        # read twice, was computed every cycle).
        for pe in range(PE):
            total = Mux(dot_first, 0, acc[pe]) + dots[pe]
            acc_next = Signal(total.shape(), name=f"acc_next{pe}")
            m.d.comb += acc_next.eq(total)
            with m.If(advance & dot_valid):
                m.d.sync += acc[pe].eq(acc_next)

        # -- threshold stage (each register loads only with a beat: an idle layer costs a
        # simulator no comparisons)
        act_valid = Signal()
        finished = dot_valid & dot_last
        with m.If(advance):
            m.d.sync += act_valid.eq(finished)
        results, act_valid = self._activations(m, acc, dot_nf, advance, finished, act_valid, acc_shape)

        out_payload = Signal(self.out_width)
        register_output(m, advance, act_valid, out_valid, out_payload, Cat(r.as_unsigned()[:ob] for r in results))
        m.d.comb += self.m.payload.eq(out_payload)
        return m

    def _plane_dot(self, m, x_planes, weight_word, pe, platform, enables):
        """The PE's dot product through the popcount's pipeline registers (`dot_pipeline`), then
        corrected by a constant; and its number of register stages."""
        spec, SIMD, wb = self.spec, self.spec.simd, self.spec.weight_type.bits
        w_planes = [weight_word[(pe * wb + b) * SIMD:(pe * wb + b + 1) * SIMD] for b in range(wb)]
        if spec.binary_xnor:
            terms, offset = agreement_terms(x_planes[0], w_planes[0]), 0
        else:
            terms, offset = dot_product_terms(m, x_planes, w_planes, spec.input_type, spec.weight_type, f"dot{pe}")
        count, stages = pipelined_popcount(m, terms, platform, f"dot{pe}", enables, spec.stage_budget,
                                           operand_ns(spec))
        return (count - offset if offset else count), stages

    def _lane_dot(self, m, x_lanes, weight_word, pe, hold):
        """The PE's dot product on lanes, level by level as `lane_levels` counts them;
        `hold(values, name, level)` puts a level's values through a register where it is cut."""
        spec, SIMD, wb = self.spec, self.spec.simd, self.spec.weight_type.bits
        row = lanes(weight_word[pe * SIMD * wb:(pe + 1) * SIMD * wb], wb, SIMD)
        if not self.weight_planes:
            if spec.binary_xnor:
                terms = [~(x[0] ^ w[0]) for x, w in zip(x_lanes, row)]
            else:
                terms = [lane_product(m, x, w, spec, f"dot{pe}_p{lane}") for lane, (x, w) in enumerate(zip(x_lanes, row))]
            return staged_tree_sum(hold(terms, f"dot{pe}_p", 0), lambda v, level: hold(v, f"dot{pe}_l{level}", level),
                                   m, f"dot{pe}")
        # Each plane's lanes summed in lockstep (the same levels), then the planes' sums.
        values = [element_value(x, spec.input_type) for x in x_lanes]
        planes = bit_planes(spec.weight_type)
        sums = []
        for plane in planes:
            name = f"dot{pe}_w{plane.bit}{int(plane.complemented)}"
            picked = hold([Mux(plane_bit(w, plane), x, 0) for x, w in zip(values, row)], name, 0)
            total = staged_tree_sum(picked, lambda v, level, name=name: hold(v, f"{name}_l{level}", level), m, name)
            sums.append(total << plane.shift)
        levels = (SIMD - 1).bit_length()  # as `lane_levels` counts the trees' levels
        positive = [total for total, plane in zip(sums, planes) if not plane.negative]
        negative = [total for total, plane in zip(sums, planes) if plane.negative]

        def beside_negative(values, level):  # the negative plane's sum keeps pace with the others
            held = hold(values + negative, f"dot{pe}_planes{level}", levels + level)
            negative[:] = held[len(values):]
            return held[:len(values)]

        total = staged_tree_sum(positive, beside_negative, m, f"dot{pe}_planes")
        if negative:  # one negative plane at most (the sign bit, or a bipolar weight's "is -1")
            last = levels + max(0, (len(positive) - 1).bit_length()) + 1
            total = hold([total - negative[0]], f"dot{pe}_signed", last)[0]
        return total

    def _activations(self, m, sums, mac_nf, advance, finished, sums_valid, acc_shape):
        """Per-PE output element values (before packing) and their valid, behind the threshold
        stage's registers (`sums`: the accumulators, holding a finished vector's sums where
        `sums_valid`; they were loaded where `advance & finished`)."""
        spec = self.spec
        if spec.thresholds is None:
            if spec.binary_xnor:
                return [(a.as_signed() * 2 - spec.mw) for a in sums], sums_valid
            return sums, sums_valid
        return threshold_stage(m, sums, mac_nf, advance, finished, sums_valid, spec=spec,
                               signs=spec.channel_sign, value_shape=acc_shape,
                               output_type=spec.output_type, out_base=spec.out_base)
