"""Weighted population counts as Verilog leaf modules that simulate fast and map to adder trees.

``weighted_popcount`` sums ``2^shift * popcount(word)`` over words (the bit-plane terms of a
dot product). Full adders on whole words first reduce every weight to at most two words
(`carry_save`); then it adds neighbouring bit fields of doubling width (SWAR: fields of 1, 2,
4, ... bits, ``(x & m) + ((x >> f) & m)`` per level), in two phases:

* each word alone, until its fields are F bits wide and hold at most F;
* then the words shifted by their weights are added into one word, field by field, which is
  exact because F is chosen so that F * sum(2^shift) < 2^F (no field overflows into the next),
  and that word's fields are added up to a single count.

For the four 64-bit terms of a 2-bit x 2-bit dot product this is 4 x 3 + 3 levels instead of
4 x 6 for separate counts. A level is four word operations in Verilator. Written in Amaranth,
the same expressions do not reach Verilog in that form: Amaranth folds an AND with a constant
into one assignment per bit field, and Verilator then rebuilds every word field by field
(measured: 34k instructions per cycle for an MVTU with 16 PEs of 64 lanes, against 20k for a
bit-level compressor). So the emitted design instantiates `finn_rtl_popcount_*` modules whose
text this module writes and `convert` appends to the design; Amaranth's own simulator, which
cannot run a Verilog instance, gets the same levels as Amaranth expressions.

In synthesis every level is an adder whose operands are zero in the upper half of every
field, so no carry crosses a field: an adder tree, the structure HLS gives a popcount loop.
Yosys maps a 64-bit count to 120 LUTs and 38 CARRY4 (a bit-level full-adder compressor: 85
LUTs and 2 CARRY4).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from amaranth.back import verilog
from amaranth.hdl import Cat, ClockSignal, Const, Instance, Signal, Value, unsigned


class VerilogLeaves:
    """Passed as the `platform` of a Verilog conversion: collects the leaf modules that the
    design instantiates, by module name (one module per distinct leaf)."""

    def __init__(self):
        self.modules: dict[str, str] = {}


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _mask(field: int, width: int) -> int:
    """Ones in the lower half of every 2*field-bit group of a width-bit word."""
    mask = 0
    for start in range(0, width, 2 * field):
        mask |= ((1 << field) - 1) << start
    return mask


@dataclass(frozen=True)
class CountPlan:
    widths: tuple[int, ...]
    shifts: tuple[int, ...]

    @property
    def weight_sum(self) -> int:
        return sum(1 << s for s in self.shifts)

    @property
    def merge_field(self) -> int:
        """F: the field width at which the shifted words are added without overflow."""
        field = 1
        while field * self.weight_sum >= 1 << field:
            field *= 2
        return field

    @property
    def word(self) -> int:
        """P: the padded word width (a power of two, at least two bits, at least F)."""
        return max(2, _pow2_at_least(max(self.widths)), self.merge_field)

    @property
    def largest(self) -> int:
        return sum(w << s for w, s in zip(self.widths, self.shifts))

    @property
    def count_bits(self) -> int:
        return max(1, self.largest.bit_length())

    def term_levels(self) -> list[int]:
        """Field widths of the levels applied to each word alone."""
        return [1 << k for k in range(self.merge_field.bit_length() - 1)]

    def merged_levels(self) -> list[int]:
        field, levels = self.merge_field, []
        while field < self.word:
            levels.append(field)
            field *= 2
        return levels

    @property
    def module_name(self) -> str:
        key = ",".join(f"{w}<<{s}" for w, s in zip(self.widths, self.shifts))
        digest = hashlib.sha256(key.encode()).hexdigest()[:10]
        return f"finn_rtl_popcount_{len(self.widths)}x{self.word}_{digest}"


def leaf_verilog(plan: CountPlan, registered: bool = False) -> str:
    """Verilog text of the plan's module: inputs x0, x1, ..., output count. `registered`: inputs
    clk and en, and count is a register loaded with the sum when en is high; the sum is then
    computed inside the clocked block, so a simulator skips it in cycles without en."""
    P = plan.word
    inputs = [f"x{i}" for i in range(len(plan.widths))]
    name = plan.module_name + ("_r" if registered else "")
    ports = ["clk", "en"] if registered else []
    lines = [f"module {name} ({', '.join(ports + inputs)}, count);"]
    if registered:
        lines += ["  input wire clk;", "  input wire en;"]
    lines += [f"  input wire [{w - 1}:0] x{i};" for i, w in enumerate(plan.widths)]
    lines.append(f"  output {'reg' if registered else 'wire'} [{plan.count_bits - 1}:0] count;")
    steps = []  # (name, expression) in order

    def level(previous: str, field: int) -> str:
        constant = f"{P}'h{_mask(field, P):x}"
        return f"({previous} & {constant}) + (({previous} >> {field}) & {constant})"

    ends = []
    for i, shift in enumerate(plan.shifts):
        previous = f"t{i}_0"
        steps.append((previous, f"x{i}"))
        for k, field in enumerate(plan.term_levels(), start=1):
            steps.append((f"t{i}_{k}", level(previous, field)))
            previous = f"t{i}_{k}"
        ends.append(f"({previous} << {shift})" if shift else previous)
    steps.append(("m0", " + ".join(ends)))
    previous = "m0"
    for k, field in enumerate(plan.merged_levels(), start=1):
        steps.append((f"m{k}", level(previous, field)))
        previous = f"m{k}"
    result = f"{previous}[{plan.count_bits - 1}:0]"
    if registered:
        lines += ["  always @(posedge clk) begin", "    if (en) begin : sum",
                  *(f"      reg [{P - 1}:0] {step};" for step, _ in steps),
                  *(f"      {step} = {expression};" for step, expression in steps),
                  f"      count <= {result};", "    end", "  end"]
    else:
        lines += [f"  wire [{P - 1}:0] {step} = {expression};" for step, expression in steps]
        lines.append(f"  assign count = {result};")
    lines += ["endmodule", ""]
    return "\n".join(lines)


def _amaranth_count(plan: CountPlan, words: list[Value]) -> Value:
    """The same levels as Amaranth expressions, for Amaranth's simulator."""
    P = plan.word

    def level(value, field):
        mask = _mask(field, P)
        return ((value & mask) + ((value >> field) & mask))[:P]

    merged = Const(0, P)
    for word, shift in zip(words, plan.shifts):
        value = Cat(word, Const(0, P - len(word)))
        for field in plan.term_levels():
            value = level(value, field)
        merged = (merged + (value << shift))[:P]
    for field in plan.merged_levels():
        merged = level(merged, field)
    return merged[:plan.count_bits]


def _reduce_columns(terms: list[tuple[int, object]], width, full_adder) -> list[tuple[int, object]]:
    """The carry-save schedule on words of any kind: `width(word)` orders them (widest first) and
    `full_adder(shift, a, b, c)` returns the (sum, carry) words of one full adder."""
    columns: dict[int, list] = {}
    for shift, word in terms:
        columns.setdefault(shift, []).append(word)
    reduced, shift = [], min(columns)
    while any(k >= shift for k in columns):
        words = sorted(columns.pop(shift, []), key=width, reverse=True)
        while len(words) >= 3:
            a, b, c = words.pop(0), words.pop(0), words.pop(0)
            total, carry = full_adder(shift, a, b, c)
            columns.setdefault(shift + 1, []).append(carry)
            words = sorted(words + [total], key=width, reverse=True)
        reduced += [(shift, word) for word in words]
        shift += 1
    return reduced


def carry_save(m, terms: list[tuple[int, Value]], name: str) -> list[tuple[int, Value]]:
    """Fewer terms with the same weighted popcount: while a weight has three or more words,
    full adders on whole words (sum = xor, carry = majority, to the next weight) turn three of
    them into two. One LUT6_2 per three bits in hardware, five word operations in a simulator,
    against four per SWAR level per word; layers with many chunks and planes (TFC's 784-lane
    input layer: 13 chunks x 4 plane pairs) are mostly reduced here."""
    serial = 0

    def full_adder(shift, a, b, c):
        nonlocal serial
        total = Signal(len(a), name=f"{name}_s{shift}_{serial}")
        carry = Signal(len(b), name=f"{name}_c{shift}_{serial}")  # needs two ones: no wider than b
        serial += 1
        m.d.comb += [total.eq(a ^ b ^ c), carry.eq(((a & b) | (c & (a ^ b)))[:len(b)])]
        return total, carry

    return _reduce_columns(terms, len, full_adder)


def popcount_structure(terms: list[tuple[int, np.ndarray]]) -> dict[str, int]:
    """What `weighted_popcount` of these words builds, for the resource estimate; each word is
    (shift, live) with `live` a bool per bit, False for a bit that is constant 0 (synthesis
    propagates those). Counted: the output bits of its full adders that see two or more live
    inputs (fewer make a wire or a constant), and of its SWAR adders that add two non-empty
    fields, each sized by the largest count its field can hold."""
    terms = [(shift, np.asarray(live, dtype=bool)) for shift, live in terms if len(live)]
    if not terms:
        return {"full_adder_bits": 0, "adder_bits": 0}
    full_adder_bits = 0

    def full_adder(shift, a, b, c):  # the words as carry_save sizes them: sum len(a), carry len(b)
        nonlocal full_adder_bits
        inputs = np.zeros(len(a), dtype=int)
        for word in (a, b, c):
            inputs[:len(word)] += word
        full_adder_bits += int((inputs >= 2).sum() + (inputs[:len(b)] >= 2).sum())
        return inputs >= 1, inputs[:len(b)] >= 2

    terms = _reduce_columns(terms, len, full_adder)
    plan = CountPlan(tuple(len(live) for _, live in terms), tuple(s for s, _ in terms))
    adder_bits = 0

    def level(maxima: list[int]) -> list[int]:
        nonlocal adder_bits
        pairs = [maxima[i:i + 2] for i in range(0, len(maxima), 2)]
        adder_bits += sum(sum(pair).bit_length() for pair in pairs if all(pair))
        return [sum(pair) for pair in pairs]

    merged = [0] * plan.word  # the largest count of each field of the merged word, fields of F bits
    contributors = [0] * plan.word
    for (shift, live) in terms:
        maxima = [int(bit) for bit in live] + [0] * (plan.word - len(live))
        for _ in plan.term_levels():
            maxima = level(maxima)
        merged = [total + (value << shift) for total, value in zip(merged, maxima)]
        contributors = [count + bool(value) for count, value in zip(contributors, maxima)]
    adder_bits += sum((count - 1) * value.bit_length() for count, value in zip(contributors, merged) if count > 1)
    for _ in plan.merged_levels():
        merged = level(merged)
    return {"full_adder_bits": full_adder_bits, "adder_bits": adder_bits}


def weighted_popcount(m, terms: list[tuple[int, Value]], platform, name: str, enable: Value | None = None,
                      domain: str = "sync") -> Value:
    """Unsigned sum of ``2^shift * popcount(word)`` over `terms` of at most 64 bits each.
    With `enable`, the sum is a register of `domain` loaded in cycles with `enable` high."""
    terms = [(shift, Value.cast(word)) for shift, word in terms if len(Value.cast(word))]
    if terms:
        terms = carry_save(m, terms, name)
    if not terms:
        return Const(0, 1)
    plan = CountPlan(tuple(len(w) for _, w in terms), tuple(s for s, _ in terms))
    count = Signal(unsigned(plan.count_bits), name=name)
    if isinstance(platform, VerilogLeaves) and plan.widths != (1,):
        registered = enable is not None
        module = plan.module_name + ("_r" if registered else "")
        platform.modules.setdefault(module, leaf_verilog(plan, registered))
        ports = {f"i_x{i}": word for i, (_, word) in enumerate(terms)}
        if registered:
            ports.update(i_clk=ClockSignal(domain), i_en=enable)
        m.submodules[name] = Instance(module, **ports, o_count=count)
        return count
    # A single bit is its own count; Amaranth's simulator gets the same levels as expressions.
    value = terms[0][1] << terms[0][0] if plan.widths == (1,) else _amaranth_count(plan, [w for _, w in terms])
    if enable is None:
        m.d.comb += count.eq(value)
    else:
        with m.If(enable):
            m.d[domain] += count.eq(value)
    return count


def convert(top, name: str) -> str:
    """Verilog of `top` with the text of every leaf module it instantiates."""
    leaves = VerilogLeaves()
    text = verilog.convert(top, name=name, platform=leaves, emit_src=False)
    return text + "".join(leaves.modules[module] for module in sorted(leaves.modules))
