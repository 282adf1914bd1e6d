"""Small combinational building blocks shared by the cores."""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Signal, Value


def tree_sum(values: list, m=None, name: str = "sum") -> Value:
    """Balanced adder tree.

    Expression depth stays logarithmic; with a module ``m``, every few levels
    the partial sums are named comb signals, because Python's compiler (used
    by the Amaranth simulator) rejects very deeply nested expressions.
    """
    return staged_tree_sum(values, lambda partial, level: partial, m, name)


def staged_tree_sum(values: list, at_level, m=None, name: str = "sum") -> Value:
    """`tree_sum` whose partial sums after each level (1, 2, ...) pass through `at_level(values,
    level)`, which may put them through registers. Every sixth level of partial sums the callback
    left as they were are named signals (see `tree_sum`)."""
    values = list(values)
    if not values:
        return Const(0, 1)
    level = 0
    while len(values) > 1:
        values = _tree_level(values, lambda a, b: a + b)
        level += 1
        staged = at_level(values, level)
        if staged is values and m is not None and level % 6 == 0 and len(values) > 1:
            named = [Signal(Value.cast(v).shape(), name=f"{name}_l{level}_{i}") for i, v in enumerate(values)]
            m.d.comb += [n.eq(v) for n, v in zip(named, values)]
            staged = named
        values = staged
    return values[0]


def _tree_level(values: list, add) -> list:
    """One level of `tree_sum`: neighbours added in pairs, an odd last value passed on."""
    paired = [add(values[i], values[i + 1]) for i in range(0, len(values) - 1, 2)]
    return paired + values[len(paired) * 2:]


def tree_sum_bits(count: int, width: int) -> int:
    """Output bits of the adders `tree_sum` builds for `count` values of `width` bits (each sum is
    one bit wider than its wider operand), for the resource estimate."""
    widths, bits = [width] * count, 0
    while len(widths) > 1:
        summed = _tree_level(widths, lambda a, b: max(a, b) + 1)
        bits += sum(summed[:len(widths) // 2])
        widths = summed
    return bits


def resized(value, shape) -> Value:
    """`value` as `shape` (truncated, or extended by its own signedness), as assigning it to a
    signal of that shape would make it: for an expression used where it is loaded, unnamed."""
    value = Value.cast(value)
    if len(value) < shape.width:
        value = Cat(value, (value[-1] if value.shape().signed else Const(0, 1)).replicate(shape.width - len(value)))
    value = value[:shape.width]
    return value.as_signed() if shape.signed else value


def lanes(word: Value, width: int, count: int) -> list[Value]:
    """Split a packed word into `count` elements of `width` bits, element 0 in the LSBs."""
    return [word[i * width:(i + 1) * width] for i in range(count)]


def pack_ints(values, width: int) -> int:
    """Pack integer codes (already unsigned) into one word, element 0 in the LSBs."""
    word = 0
    for i, value in enumerate(values):
        word |= (int(value) & ((1 << width) - 1)) << (i * width)
    return word


def pack_fields(fields) -> list[int]:
    """ROM words from (codes [word, element], bits) fields: each word's fields side by side, the
    first in the LSBs (the layout `LayerSpec.rom_fields` describes)."""
    words = []
    for rows in zip(*(codes for codes, _ in fields)):
        word, shift = 0, 0
        for row, (_, bits) in zip(rows, fields):
            word |= pack_ints(row, bits) << shift
            shift += len(row) * bits
        words.append(word)
    return words


def element_value(code: Value, qtype) -> Value:
    """Signed value of one wire element (bipolar: bit 1 is +1, bit 0 is -1)."""
    if qtype.bipolar:
        return Mux(code[0], 1, -1)
    return code.as_signed() if qtype.signed else code.as_unsigned()


def lane_product(m, x_code: Value, w_code: Value, spec, name: str) -> Signal:
    """One input element times one weight, as a named signal marked for where the layer's
    multiplier style (`graph.multipliers`) puts it: `use_dsp` is Vivado's attribute; Yosys
    infers a DSP48 for a wide enough `*` by itself. A "lut" product a DSP would take is a sum of
    shifted partial products, so that neither tool can put it in a DSP."""
    from .bitplane import add_plane, bit_planes, plane_bit

    x = element_value(x_code, spec.input_type)
    dsp = spec.multipliers == "dsp"
    if dsp or not spec.products().dsp_capable:
        value = x * element_value(w_code, spec.weight_type)
    else:
        value = 0
        for plane in bit_planes(spec.weight_type):
            value = add_plane(value, Mux(plane_bit(w_code, plane), x, 0) << plane.shift, plane)
    product = Signal(Value.cast(value).shape(), name=name, attrs={"use_dsp": "yes" if dsp else "no"})
    m.d.comb += product.eq(value)
    return product


def nested_counters(m, enable: Value, limits, names) -> list[Signal]:
    """Counters that step like an odometer (the last one fastest) each cycle `enable` is high:
    e.g. (row, column, channel group) for the beats of an image."""
    counters = [Signal(range(max(limit, 2)), name=name) for limit, name in zip(limits, names)]
    carry = Const(1, 1)
    with m.If(enable):
        for counter, limit in zip(reversed(counters), reversed(limits)):
            at_end = counter == limit - 1
            with m.If(carry):
                m.d.sync += counter.eq(Mux(at_end, 0, counter + 1))
            carry = carry & at_end
    return counters


def address_bits(count: int) -> int:
    """Bits of a value that counts 0 .. count-1 (none for a count of 1)."""
    return (int(count) - 1).bit_length()


def counter_bits(*limits: int) -> int:
    """Flip-flops of counters that count to each limit (a resource-estimate feature)."""
    return sum(max(1, address_bits(n)) for n in limits)


def constant_product_bits(constant: int, width: int) -> int:
    """Adder bits of `x * constant` kept to `width` bits (a resource-estimate feature): x shifted
    to each set bit of the constant, each shift after the lowest added over the bits from its
    position up."""
    positions = [bit for bit in range(constant.bit_length()) if constant >> bit & 1]
    return sum(max(0, width - bit) for bit in positions[1:])
