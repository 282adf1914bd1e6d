"""AXI4 memory masters that move whole buffers: a reader (memory -> stream) and a writer
(stream -> memory).

Both issue INCR bursts of at most `max_burst_beats(word_bytes)` beats that never cross a 4 KiB
boundary, and keep several bursts in flight:

* the reader requests a burst only when its data FIFO has room for every beat it has requested,
  so RREADY never falls and a slow consumer never blocks the interconnect;
* the writer requests a burst only when its data FIFO already holds the whole burst, so WVALID
  never falls inside a burst, and sends W beats without waiting for AWREADY.

An error response (RRESP/BRESP not OKAY) sets the sticky `error` output; the transfer still runs
to its end (a read returns its beats regardless), so an error never hangs the shell.
Port names are the AXI signal names, so the shell can expose them as `m_axi_gmem_<name>`.
"""
from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..cores.fifo import StreamFIFO

ADDR_BITS = 64
COUNT_BITS = 48  # words per run: frames (32 bits) times words per frame
PAGE = 4096


def max_burst_beats(word_bytes: int) -> int:
    return min(256, PAGE // word_bytes)


def read_channel_members(data_bits: int) -> dict:
    """The read address and read data channels, as seen by the master."""
    return {
        "arid": Out(1), "araddr": Out(ADDR_BITS), "arlen": Out(8), "arsize": Out(3), "arburst": Out(2),
        "arlock": Out(1), "arcache": Out(4), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
        "rid": In(1), "rdata": In(data_bits), "rresp": In(2), "rlast": In(1), "rvalid": In(1), "rready": Out(1),
    }


def write_channel_members(data_bits: int) -> dict:
    """The write address, write data and write response channels, as seen by the master."""
    return {
        "awid": Out(1), "awaddr": Out(ADDR_BITS), "awlen": Out(8), "awsize": Out(3), "awburst": Out(2),
        "awlock": Out(1), "awcache": Out(4), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_bits), "wstrb": Out(data_bits // 8), "wlast": Out(1), "wvalid": Out(1),
        "wready": In(1), "bid": In(1), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
    }


def forward_ports(m: Module, outer, prefix: str, inner, members: dict) -> None:
    """Connect `inner`'s AXI ports to `outer`'s ports of the same names behind `prefix`."""
    for name, member in members.items():
        port, sub = getattr(outer, prefix + name), getattr(inner, name)
        m.d.comb += port.eq(sub) if member.flow == Out else sub.eq(port)


class _Mover(wiring.Component):
    """What the reader and the writer share: a run's start, base address, word count and the
    next burst's address and length."""

    def __init__(self, word_bytes: int, axi_members: dict, data: dict, fifo_words: int):
        self.word_bytes = word_bytes
        self.max_burst = max_burst_beats(word_bytes)
        self.fifo_words = fifo_words
        super().__init__({
            **axi_members, **data,
            "start": In(1), "address": In(ADDR_BITS), "words": In(COUNT_BITS),
            "busy": Out(1), "error": Out(1), "moved": Out(COUNT_BITS),
        })

    def burst_planner(self, m: Module, address: Signal, to_request: Signal, changed) -> tuple[Signal, Signal]:
        """The next burst's length (the words left, at most the largest burst, up to the page end)
        and whether a burst may be issued on it. The length is a register computed from the
        address and the words left of the cycle before, and the mover registers whether its FIFO
        allows a burst of that length: the page arithmetic, the comparison with a 48-bit count and
        the FIFO's did not fit in front of the issue decision and its 64-bit adders (measured: 77
        MHz on 7-series). Two stages: the page end's limit and the count's low bits, then the length.
        For three cycles after they `changed` (an issue, a start) the registers are stale and no
        burst is issued; bursts are long enough for that to cost nothing."""
        shift = (self.word_bytes - 1).bit_length()
        to_page_end = (PAGE - address[:12]) >> shift
        low = self.max_burst.bit_length()
        limit, words, few = Signal(range(self.max_burst + 1)), Signal(low), Signal()
        length, settling, more = Signal(range(self.max_burst + 1)), Signal(3), Signal()
        m.d.sync += [limit.eq(Mux(to_page_end < self.max_burst, to_page_end, self.max_burst)),
                     words.eq(to_request[:low]), few.eq(to_request[low:] == 0), more.eq(to_request != 0),
                     length.eq(Mux(few & (words < limit), words, limit)),
                     settling.eq(Cat(changed, settling[:2]))]
        return length, (settling == 0) & more

    def register_busy(self, m: Module, busy) -> None:
        """`busy` as a register, a cycle behind (the shell's done decision was 4 LUT levels
        behind 48-bit zero tests); a start sets it at once, so no run looks finished as it starts."""
        m.d.sync += self.busy.eq(Mux(self.start, self.words != 0, busy))

    def address_fields(self, m: Module, prefix: str) -> None:
        m.d.comb += [getattr(self, prefix + "size").eq((self.word_bytes - 1).bit_length()),
                     getattr(self, prefix + "burst").eq(1),  # INCR
                     getattr(self, prefix + "cache").eq(0b0011)]  # normal, bufferable, non-cacheable


class ReadMaster(_Mover):
    """Reads `words` memory words from `address` into the `data` stream."""

    def __init__(self, word_bytes: int):
        burst = max_burst_beats(word_bytes)
        super().__init__(word_bytes, read_channel_members(8 * word_bytes),
                         {"data": Out(stream.Signature(unsigned(8 * word_bytes)))}, 2 * burst)

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer = buffer = StreamFIFO(8 * self.word_bytes, self.fifo_words, style="block")
        wiring.connect(m, buffer.m, wiring.flipped(self.data))
        address = Signal(ADDR_BITS)
        to_request, to_receive, received = Signal(COUNT_BITS), Signal(COUNT_BITS), Signal(COUNT_BITS)
        reserved = Signal(range(self.fifo_words + 1))  # FIFO places promised to requested beats
        issue = Signal()
        length, plannable = self.burst_planner(m, address, to_request, issue | self.start)
        self.address_fields(m, "ar")
        m.d.comb += self.moved.eq(received)
        self.register_busy(m, to_receive != 0)

        fits = Signal()  # the FIFO has room for the burst (a cycle behind: places are only freed)
        m.d.sync += fits.eq(reserved + length <= self.fifo_words)
        m.d.comb += issue.eq(~self.arvalid & plannable & fits)
        popped = buffer.m.valid & buffer.m.ready
        m.d.sync += reserved.eq(reserved + Mux(issue, length, 0) - popped)
        with m.If(self.arvalid & self.arready):
            m.d.sync += self.arvalid.eq(0)
        with m.If(issue):
            m.d.sync += [self.arvalid.eq(1), self.araddr.eq(address), self.arlen.eq(length - 1),
                         address.eq(address + length * self.word_bytes), to_request.eq(to_request - length)]

        m.d.comb += [self.rready.eq(buffer.s.ready), buffer.s.valid.eq(self.rvalid), buffer.s.payload.eq(self.rdata)]
        with m.If(self.rvalid & self.rready):
            m.d.sync += [to_receive.eq(to_receive - 1), received.eq(received + 1)]
            with m.If(self.rresp != 0):
                m.d.sync += self.error.eq(1)

        with m.If(self.start):
            m.d.sync += [address.eq(self.address), to_request.eq(self.words), to_receive.eq(self.words),
                         received.eq(0), self.error.eq(0)]
        return m


class WriteMaster(_Mover):
    """Writes `words` memory words from the `data` stream to `address`; busy until the last
    write response."""

    OUTSTANDING = 8  # bursts whose data is still to be sent

    def __init__(self, word_bytes: int):
        burst = max_burst_beats(word_bytes)
        super().__init__(word_bytes, write_channel_members(8 * word_bytes),
                         {"data": In(stream.Signature(unsigned(8 * word_bytes)))}, 2 * burst)

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer = buffer = StreamFIFO(8 * self.word_bytes, self.fifo_words, style="block")
        m.submodules.lengths = lengths = fifo.SyncFIFOBuffered(width=9, depth=self.OUTSTANDING)
        wiring.connect(m, wiring.flipped(self.data), buffer.s)
        address = Signal(ADDR_BITS)
        to_request, sent = Signal(COUNT_BITS), Signal(COUNT_BITS)
        # buffered words not yet promised to a requested burst: the W channel takes promised ones
        uncommitted = Signal(range(self.fifo_words + 1))
        open_bursts = Signal(range(self.OUTSTANDING + 2))  # requested, not yet answered on B
        issue = Signal()
        length, plannable = self.burst_planner(m, address, to_request, issue | self.start)
        self.address_fields(m, "aw")
        m.d.comb += [self.wstrb.eq(-1), self.bready.eq(1), self.moved.eq(sent)]
        self.register_busy(m, (to_request != 0) | (open_bursts != 0))

        fits = Signal()  # the FIFO holds the whole burst (a cycle behind: words only arrive)
        m.d.sync += fits.eq(uncommitted >= length)
        m.d.comb += issue.eq(~self.awvalid & plannable & lengths.w_rdy & fits)
        w_taken = self.wvalid & self.wready
        answered = self.bvalid & self.bready
        pushed = buffer.s.valid & buffer.s.ready
        m.d.sync += [uncommitted.eq(uncommitted + pushed - Mux(issue, length, 0)),
                     open_bursts.eq(open_bursts + issue - answered)]
        m.d.comb += [lengths.w_en.eq(issue), lengths.w_data.eq(length)]
        with m.If(self.awvalid & self.awready):
            m.d.sync += self.awvalid.eq(0)
        with m.If(issue):
            m.d.sync += [self.awvalid.eq(1), self.awaddr.eq(address), self.awlen.eq(length - 1),
                         address.eq(address + length * self.word_bytes), to_request.eq(to_request - length)]

        # W: beats of the oldest requested burst, straight from the data FIFO.
        w_left = Signal(9)
        m.d.comb += [self.wvalid.eq((w_left != 0) & buffer.m.valid), self.wlast.eq(w_left == 1),
                     self.wdata.eq(buffer.m.payload), buffer.m.ready.eq(w_taken),
                     # the next burst's length is loaded as the current burst's last beat goes
                     lengths.r_en.eq(lengths.r_rdy & ((w_left == 0) | ((w_left == 1) & w_taken)))]
        with m.If(lengths.r_en):
            m.d.sync += w_left.eq(lengths.r_data)
        with m.Elif(w_taken):
            m.d.sync += w_left.eq(w_left - 1)
        with m.If(w_taken):
            m.d.sync += sent.eq(sent + 1)
        with m.If(answered & (self.bresp != 0)):
            m.d.sync += self.error.eq(1)

        with m.If(self.start):
            m.d.sync += [address.eq(self.address), to_request.eq(self.words), sent.eq(0), self.error.eq(0)]
        return m
