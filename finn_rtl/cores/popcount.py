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
from amaranth.back import rtlil
from amaranth.hdl import Cat, ClockSignal, Const, Instance, Signal, Value, unsigned


class VerilogLeaves:
    """Passed as the `platform` of a Verilog conversion: collects the leaf modules that the
    design instantiates, by module name (one module per distinct leaf)."""

    def __init__(self):
        self.modules: dict[str, str] = {}


def _field_bits_mask(bits: int, field: int, width: int) -> int:
    """Ones in the low `bits` of every `field`-bit field of a width-bit word."""
    mask = 0
    for start in range(0, width, field):
        mask |= ((1 << bits) - 1) << start
    return mask & ((1 << width) - 1)


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


# -- the leaf's levels -----------------------------------------------------------------------
# A level is a list of operations on P-bit words, each ("swar", dest, source, field) or ("add",
# dest, a, shift_a, mask_a, b, shift_b, mask_b): (a << shift_a) & mask_a plus the same of b (b
# None: a alone); `live` after a level names the words the next level reads. Verilog and Amaranth are both generated from these levels, so the
# simulated and the synthesized leaf are one structure.

@dataclass(frozen=True)
class Level:
    operations: tuple
    live: tuple[str, ...]
    cost_ns: float


def leaf_levels(plan: CountPlan) -> list[Level]:
    """SWAR levels on every word alone; the shifted words added in pairs (a tree of two-input
    adders, one level each); SWAR levels on the merged word. Each level's delay is the model's
    (`pipelining`) for the carry chains synthesis builds, measured with every level registered:
    7-series paths of 1.44, 2.00, 2.06 ns for fields of 1, 2, 4 bits, 2.19 and 2.30 for the
    merge of four 64-bit words in 8-bit fields, 2.31 and 2.42 for merged fields of 8 and 16."""
    from .pipelining import adder_ns, swar_level_ns

    names = [f"x{i}" for i in range(len(plan.widths))]
    shifts = list(plan.shifts)
    levels = []
    for k, field in enumerate(plan.term_levels(), start=1):
        targets = [f"t{i}_{k}" for i in range(len(names))]
        levels.append(Level(tuple(("swar", t, n, field) for t, n in zip(targets, names)), tuple(targets),
                            swar_level_ns(field)))
        names = targets
    # The largest value a field of each word holds: a field of F bits counts at most F bits. The
    # merge masks every operand to the bits its fields can use: a real AND, which keeps
    # synthesis from fusing the merge with the adders before it into one multi-operand adder
    # (whose carry chain runs across the whole word), and drops the bits that are always 0.
    F = plan.merge_field
    largest = [min(F, width) for width in plan.widths]

    def field_mask(value: int) -> int:
        return _field_bits_mask(min(F, value.bit_length()), F, plan.word)

    depth = 0
    while len(names) > 1 or shifts[0]:
        depth += 1
        operations, targets, sums = [], [], []
        for i in range(0, len(names), 2):
            target = f"m{depth}_{i // 2}"
            a = (names[i], shifts[i], field_mask(largest[i] << shifts[i]))
            total = largest[i] << shifts[i]
            if i + 1 < len(names):
                b = (names[i + 1], shifts[i + 1], field_mask(largest[i + 1] << shifts[i + 1]))
                total += largest[i + 1] << shifts[i + 1]
            else:
                b = (None, 0, 0)
            operations.append(("add", target, *a, *b))
            targets.append(target)
            sums.append(total)
        # fields of F bits never carry into each other, and synthesis keeps each chain in its field
        levels.append(Level(tuple(operations), tuple(targets), adder_ns(F)))
        names, shifts, largest = targets, [0] * len(targets), sums
    for k, field in enumerate(plan.merged_levels(), start=1):
        # a merged field holds at most the count: its chain is no longer than the count's bits
        levels.append(Level((("swar", f"f{k}", names[0], field),), (f"f{k}",),
                            swar_level_ns(min(field, plan.count_bits))))
        names = [f"f{k}"]
    return levels


def _verilog_operation(operation, P: int) -> tuple[str, str]:
    if operation[0] == "swar":
        _, target, source, field = operation
        constant = f"{P}'h{_mask(field, P):x}"
        return target, f"({source} & {constant}) + (({source} >> {field}) & {constant})"
    _, target, a, shift_a, mask_a, b, shift_b, mask_b = operation
    terms = [f"(({a} << {shift_a}) & {P}'h{mask_a:x})"]
    if b is not None:
        terms.append(f"(({b} << {shift_b}) & {P}'h{mask_b:x})")
    return target, " + ".join(terms)


def leaf_name(plan: CountPlan, cuts: tuple[int, ...] | None = None) -> str:
    """The leaf module's name: the plan's, and where its registers are."""
    return plan.module_name + ("" if cuts is None else f"_p{'_'.join(str(c + 1) for c in cuts)}")


def leaf_verilog(plan: CountPlan, cuts: tuple[int, ...] | None = None) -> str:
    """Verilog text of the plan's module: inputs x0, x1, ..., output count. Without `cuts`,
    combinational. With `cuts` (level indices after which a register goes, ascending, -1 for
    the inputs, the last level always among them: the count register), inputs clk and en, one
    enable bit per register stage: stage k's registers load when en[k] is high, and its levels
    are computed inside the clocked block, so a simulator skips them in cycles without it."""
    P, levels = plan.word, leaf_levels(plan)
    inputs = [f"x{i}" for i in range(len(plan.widths))]
    registered = cuts is not None
    name = leaf_name(plan, cuts)
    lines = [f"module {name} ({', '.join((['clk', 'en'] if registered else []) + inputs)}, count);"]
    if registered:
        lines += ["  input wire clk;", f"  input wire [{len(cuts) - 1}:0] en;"]
    lines += [f"  input wire [{w - 1}:0] x{i};" for i, w in enumerate(plan.widths)]
    lines.append(f"  output {'reg' if registered else 'wire'} [{plan.count_bits - 1}:0] count;")
    final = levels[-1].live[0] if levels else "x0"
    result = f"{final}[{plan.count_bits - 1}:0]"
    if not registered:
        lines += [f"  wire [{P - 1}:0] p{i} = x{i};" for i in range(len(inputs))]
        rename = {f"x{i}": f"p{i}" for i in range(len(inputs))}
        for level in levels:
            for operation in level.operations:
                operation = tuple(rename.get(v, v) if isinstance(v, str) else v for v in operation)
                target, expression = _verilog_operation(operation, P)
                lines.append(f"  wire [{P - 1}:0] {target} = {expression};")
        lines.append(f"  assign count = {rename.get(final, final)}[{plan.count_bits - 1}:0];" if levels else
                     f"  assign count = p0[{plan.count_bits - 1}:0];")
        lines += ["endmodule", ""]
        return "\n".join(lines)
    # Registered stages: stage k computes levels (cuts[k-1], cuts[k]] from the registers of
    # stage k-1 (the inputs for k = 0) and registers the words live after its last level.
    bounds = [-1, *cuts]
    for k in range(len(cuts)):
        first, last = bounds[k] + 1, bounds[k + 1]
        entering = inputs if bounds[k] < 0 else list(levels[bounds[k]].live)
        stage_levels = levels[first:last + 1]
        held = list(stage_levels[-1].live) if stage_levels else entering
        last_stage = k == len(cuts) - 1
        if not last_stage:
            lines += [f"  reg [{P - 1}:0] r{k}_{word};" for word in held]
        rename = {word: f"r{k - 1}_{word}" for word in entering} if k else {}
        temporaries = [f"v_{word}" for word in entering] + \
            [f"v_{operation[1]}" for level in stage_levels for operation in level.operations]
        body = [f"      reg [{P - 1}:0] {t};" for t in temporaries]
        body += [f"      v_{word} = {rename.get(word, word)};" for word in entering]
        for level in stage_levels:
            for operation in level.operations:
                operation = tuple(f"v_{v}" if isinstance(v, str) and i in (1, 2, 5) else v
                                  for i, v in enumerate(operation))
                target, expression = _verilog_operation(operation, P)
                body.append(f"      {target} = {expression};")
        if last_stage:
            body.append(f"      count <= v_{held[0]}[{plan.count_bits - 1}:0];")
        else:
            body += [f"      r{k}_{word} <= v_{word};" for word in held]
        lines += ["  always @(posedge clk) begin", f"    if (en[{k}]) begin : stage{k}", *body, "    end", "  end"]
    lines += ["endmodule", ""]
    return "\n".join(lines)


def _amaranth_operation(operation, values: dict, P: int) -> Value:
    if operation[0] == "swar":
        _, _, source, field = operation
        mask = _mask(field, P)
        return ((values[source] & mask) + ((values[source] >> field) & mask))[:P]
    _, _, a, shift_a, mask_a, b, shift_b, mask_b = operation
    total = (values[a] << shift_a)[:P] & mask_a
    if b is not None:
        total = total + ((values[b] << shift_b)[:P] & mask_b)
    return total[:P]


def _amaranth_count(m, plan: CountPlan, words: list[Value], cuts, enables, name: str, domain: str) -> Value:
    """The same levels as Amaranth expressions, for Amaranth's simulator, with the same
    registers."""
    P = plan.word
    values = {f"x{i}": Cat(word, Const(0, P - len(word))) for i, word in enumerate(words)}
    levels = leaf_levels(plan)
    stage = 0
    cut_set = list(cuts or ())
    if cut_set and cut_set[0] == -1:
        values = _register(m, values, enables(0), f"{name}_in", domain)
        stage = 1
    for index, level in enumerate(levels):
        for operation in level.operations:
            values[operation[1]] = _amaranth_operation(operation, values, P)
        values = {word: values[word] for word in level.live}
        if index in cut_set and index != len(levels) - 1:
            values = _register(m, values, enables(stage), f"{name}_s{stage}", domain)
            stage += 1
    final = levels[-1].live[0] if levels else "x0"
    return values[final][:plan.count_bits]


def _register(m, values: dict, enable: Value, name: str, domain: str) -> dict:
    """The values through registers loaded with `enable`, one per word (a word sliced out of one
    wide register costs a simulator more than the register it saves)."""
    held = {}
    for word, value in values.items():
        held[word] = Signal(len(value), name=f"{name}_{word}")
        with m.If(enable):
            m.d[domain] += held[word].eq(value)
    return held


def _reduce_columns(terms: list[tuple[int, object]], width, full_adder, after_round=None) -> list[tuple[int, object]]:
    """The carry-save schedule on words of any kind, in rounds (a Wallace tree: every round is
    one full-adder level): in each round every weight's words are taken three at a time, widest
    first, and `full_adder(shift, a, b, c)` returns the (sum, carry) words of one full adder, the
    carry going to the next weight in the next round; rounds go on until no weight has three
    words. `width(word)` orders them; `after_round(round, columns)` may replace the words
    between rounds (pipeline registers)."""
    columns: dict[int, list] = {}
    for shift, word in terms:
        columns.setdefault(shift, []).append(word)
    rounds = 0
    while any(len(words) >= 3 for words in columns.values()):
        reduced: dict[int, list] = {}
        for shift in sorted(columns):
            words = sorted(columns[shift], key=width, reverse=True)
            while len(words) >= 3:
                total, carry = full_adder(shift, words.pop(0), words.pop(0), words.pop(0))
                reduced.setdefault(shift, []).append(total)
                reduced.setdefault(shift + 1, []).append(carry)
            reduced.setdefault(shift, []).extend(words)
        rounds += 1
        columns = reduced if after_round is None else after_round(rounds, reduced)
    return [(shift, word) for shift in sorted(columns) for word in columns[shift]]


def carry_save_rounds(shifts_widths: list[tuple[int, int]]) -> tuple[int, list[tuple[int, int]], list[int]]:
    """(rounds, (shift, width) of the words left, bits of the words after each round) of
    `carry_save` on words of these (shift, width)."""
    bits_after = []

    def count(round_index, columns):
        bits_after.append(sum(sum(words) for words in columns.values()))
        return columns

    left = _reduce_columns(list(shifts_widths), lambda w: w,
                           lambda shift, a, b, c: (a, b), count)
    return len(bits_after), left, bits_after


def carry_save(m, terms: list[tuple[int, Value]], name: str, register_after=(), enables=None,
               domain: str = "sync") -> list[tuple[int, Value]]:
    """Fewer terms with the same weighted popcount: while a weight has three or more words,
    full adders on whole words (sum = xor, carry = majority, to the next weight) turn three of
    them into two. One LUT6_2 per three bits in hardware, five word operations in a simulator,
    against four per SWAR level per word; layers with many chunks and planes (TFC's 784-lane
    input layer: 13 chunks x 4 plane pairs) are mostly reduced here. `register_after`: rounds
    after which every word goes through a register, the i-th of them loaded when `enables(i)`."""
    serial = 0
    register_after = list(register_after)

    def full_adder(shift, a, b, c):
        nonlocal serial
        total = Signal(len(a), name=f"{name}_s{shift}_{serial}")
        carry = Signal(len(b), name=f"{name}_c{shift}_{serial}")  # needs two ones: no wider than b
        serial += 1
        m.d.comb += [total.eq(a ^ b ^ c), carry.eq(((a & b) | (c & (a ^ b)))[:len(b)])]
        return total, carry

    def register(round_index, columns):
        if round_index not in register_after:
            return columns
        stage = register_after.index(round_index)
        held = {}
        for shift, words in columns.items():
            held[shift] = list(_register(m, {f"{shift}_{i}": w for i, w in enumerate(words)}, enables(stage),
                                         f"{name}_r{round_index}_w", domain).values())
        return held

    return _reduce_columns(terms, len, full_adder, register)


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


@dataclass(frozen=True)
class CountPipeline:
    """Where a weighted popcount of words of these (shift, width) has its registers for a budget:
    after which carry-save rounds, after which leaf levels (-1: at the leaf's inputs), and how
    many register stages that is (the count register included)."""

    rounds: int
    plan: CountPlan
    round_cuts: tuple[int, ...]  # rounds (1-based) after which the words are registered
    leaf_cuts: tuple[int, ...]  # leaf levels after which the leaf registers, the last always
    longest_stage_ns: float = 0.0  # the slowest stage by the delay model (`pipelining`)

    @property
    def stages(self) -> int:
        return len(self.round_cuts) + len(self.leaf_cuts)

    def register_bits(self, shifts_widths: list[tuple[int, int]]) -> int:
        """Flip-flops of the pipeline registers before the count register (a resource-estimate
        feature): the words after each registered round, the live words after each registered
        leaf level (P bits each)."""
        _, _, after = carry_save_rounds(shifts_widths)
        bits = sum(after[c - 1] if c else sum(w for _, w in shifts_widths) for c in self.round_cuts)
        if self.plan.widths != (1,):
            levels = leaf_levels(self.plan)
            for cut in self.leaf_cuts[:-1]:
                bits += self.plan.word * (len(levels[cut].live) if cut >= 0 else len(self.plan.widths))
        return bits

    @classmethod
    def of(cls, shifts_widths: list[tuple[int, int]], budget=None, used_ns: float = 0.0) -> "CountPipeline":
        from .pipelining import lut_level_ns, stage_cuts, stage_delays

        rounds, left, _ = carry_save_rounds(shifts_widths)
        plan = CountPlan(tuple(w for _, w in left), tuple(s for s, _ in left))
        levels = [] if plan.widths == (1,) else leaf_levels(plan)
        costs = [lut_level_ns()] * rounds + [level.cost_ns for level in levels]
        cuts, _ = stage_cuts(costs, budget, used_ns)
        last = len(costs) - 1
        if last not in cuts:
            cuts.append(last)
        longest = max(stage_delays(costs, cuts, used_ns))
        # A register after the last round is the leaf's input register.
        round_cuts = tuple(c + 1 for c in cuts if 0 <= c < rounds - 1)
        leaf_cuts = tuple(c - rounds for c in cuts if c >= rounds - 1 and c >= 0) or (-1,)
        if -1 in cuts:  # a register before anything: the inputs are registered (round 0)
            round_cuts = (0, *round_cuts)
        return cls(rounds, plan, round_cuts, leaf_cuts, longest)


def pipelined_popcount(m, terms: list[tuple[int, Value]], platform, name: str, enables, budget=None,
                       used_ns: float = 0.0, domain: str = "sync") -> tuple[Value, int]:
    """Unsigned sum of ``2^shift * popcount(word)`` over `terms` of at most 64 bits each, through
    pipeline registers placed for `budget` (`pipelining.StageBudget`; None: the count register
    alone). `enables(k)` loads stage k's registers; `used_ns`: the delay the terms already have
    in their stage. Returns the count register and the number of stages."""
    terms = [(shift, Value.cast(word)) for shift, word in terms if len(Value.cast(word))]
    if not terms:
        return Const(0, 1), 0
    pipeline = CountPipeline.of([(shift, len(word)) for shift, word in terms], budget, used_ns)
    stage = 0
    if pipeline.round_cuts and pipeline.round_cuts[0] == 0:
        terms = [(shift, word) for (shift, _), word in zip(terms, _register(
            m, {str(i): word for i, (_, word) in enumerate(terms)}, enables(0), f"{name}_in", domain).values())]
        stage = 1
    round_cuts = [c for c in pipeline.round_cuts if c > 0]
    terms = carry_save(m, terms, name, round_cuts, lambda k: enables(stage + k), domain)
    stage += len(round_cuts)
    plan = pipeline.plan
    assert plan == CountPlan(tuple(len(w) for _, w in terms), tuple(s for s, _ in terms))
    count = Signal(unsigned(plan.count_bits), name=name)
    leaf_enables = [enables(stage + k) for k in range(len(pipeline.leaf_cuts))]
    if isinstance(platform, VerilogLeaves) and plan.widths != (1,):
        module = leaf_name(plan, pipeline.leaf_cuts)
        platform.modules.setdefault(module, leaf_verilog(plan, pipeline.leaf_cuts))
        ports = {f"i_x{i}": word for i, (_, word) in enumerate(terms)}
        m.submodules[name] = Instance(module, **ports, i_clk=ClockSignal(domain), i_en=Cat(*leaf_enables),
                                      o_count=count)
        return count, pipeline.stages
    if plan.widths == (1,):  # a single bit is its own count
        value = terms[0][1] << terms[0][0]
        leaf_enables = leaf_enables[-1:]
    else:
        value = _amaranth_count(m, plan, [w for _, w in terms], pipeline.leaf_cuts,
                                lambda k: leaf_enables[k], name, domain)
    with m.If(leaf_enables[-1]):
        m.d[domain] += count.eq(value)
    return count, stage + len(leaf_enables)


def weighted_popcount(m, terms: list[tuple[int, Value]], platform, name: str, enable: Value | None = None,
                      domain: str = "sync") -> Value:
    """Unsigned sum of ``2^shift * popcount(word)`` over `terms` of at most 64 bits each.
    With `enable`, the sum is a register of `domain` loaded in cycles with `enable` high."""
    if enable is not None:
        return pipelined_popcount(m, terms, platform, name, lambda k: enable, None, domain=domain)[0]
    terms = [(shift, Value.cast(word)) for shift, word in terms if len(Value.cast(word))]
    if terms:
        terms = carry_save(m, terms, name)
    if not terms:
        return Const(0, 1)
    plan = CountPlan(tuple(len(w) for _, w in terms), tuple(s for s, _ in terms))
    count = Signal(unsigned(plan.count_bits), name=name)
    if isinstance(platform, VerilogLeaves) and plan.widths != (1,):
        platform.modules.setdefault(plan.module_name, leaf_verilog(plan))
        ports = {f"i_x{i}": word for i, (_, word) in enumerate(terms)}
        m.submodules[name] = Instance(plan.module_name, **ports, o_count=count)
        return count
    value = terms[0][1] << terms[0][0] if plan.widths == (1,) else \
        _amaranth_count(m, plan, [w for _, w in terms], None, None, name, domain)
    m.d.comb += count.eq(value)
    return count


def convert(top, name: str) -> str:
    """Verilog of `top` with the text of every leaf module it instantiates."""
    from .fast_meminit import installed
    from .verilog_out import rtlil_to_verilog, wrap_long_lines

    installed()  # memory contents in one constant: MobileNet-v1 to Verilog 161 s -> 85 s
    leaves = VerilogLeaves()
    text = rtlil_to_verilog(rtlil.convert(top, name=name, platform=leaves, emit_src=False))
    return wrap_long_lines(text + "".join(leaves.modules[module] for module in sorted(leaves.modules)))
