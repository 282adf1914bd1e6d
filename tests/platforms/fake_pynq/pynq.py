"""A stand-in for the `pynq` package whose registers and memory are a running simulation.

Only what finn-rtl's driver uses: `Overlay(path)` with its IP as an attribute (`read`/`write` of
32-bit registers), and `allocate(shape, dtype, target=None)` giving arrays with a
`physical_address` and `sync_to_device`/`sync_from_device`. The cocotb bench calls `attach`
with blocking register accessors (cocotb `resume` wrappers) and the simulated memory, and runs
the driver in a `bridge` thread, so every register access is an AXI4-Lite transaction in
simulation and every buffer lives in the AXI RAM model the shell reads and writes.
"""
import numpy as np

_backend = None


class _Backend:
    def __init__(self, read, write, memory, ip_name, base, offset):
        self.read, self.write, self.memory, self.ip_name = read, write, memory, ip_name
        self.next_address = base + offset  # buffers start `offset` bytes into a page, as tests choose
        self.allocated = []


def attach(read, write, memory, ip_name, registers, base=0x10000, offset=0):
    """Serve registers through `read(offset)`/`write(offset, value)`; buffers in `memory`
    (an object with `read(address, length)` and `write(address, data)`)."""
    global _backend
    _backend = _Backend(read, write, memory, ip_name, base, offset)
    _backend.registers = registers
    return _backend


class DefaultIP:
    def read(self, offset):
        return _backend.read(offset)

    def write(self, offset, value):
        if isinstance(value, (bytes, bytearray)):  # pynq's MMIO writes bytes as consecutive registers
            for index, word in enumerate(np.frombuffer(value, dtype="<u4")):
                _backend.write(offset + 4 * index, int(word))
            return
        _backend.write(offset, int(value))

    def start(self, *args):
        """The Alveo kernel call: arguments in kernel.xml order (input, output, frames) written
        to their registers as XRT does, then ap_start."""
        registers = _backend.registers
        for (low, high), arg in zip(((registers["INPUT_LO"], registers["INPUT_HI"]),
                                     (registers["OUTPUT_LO"], registers["OUTPUT_HI"])), args):
            address = arg.device_address
            self.write(low, address & 0xFFFFFFFF)
            self.write(high, address >> 32)
        self.write(registers["FRAMES"], args[2])
        self.write(registers["CTRL"], 1)
        return WaitHandle(self)


class WaitHandle:
    def __init__(self, ip):
        self.ip, self._done = ip, False

    @property
    def done(self):
        # ap_done clears on read: remember it, as XRT does
        self._done = self._done or bool(self.ip.read(_backend.registers["CTRL"]) & 2)
        return self._done

    def wait(self):
        while not self.done:
            pass


class Overlay:
    def __init__(self, bitfile, *args, **kwargs):
        self.bitfile = bitfile
        setattr(self, _backend.ip_name, DefaultIP())


class PynqBuffer(np.ndarray):
    def sync_to_device(self):
        _backend.memory.write(self.physical_address, np.ascontiguousarray(self).tobytes())

    def sync_from_device(self):
        data = _backend.memory.read(self.physical_address, self.nbytes)
        self[...] = np.frombuffer(data, dtype=self.dtype).reshape(self.shape)

    flush, invalidate = sync_to_device, sync_from_device


def allocate(shape, dtype=np.uint32, target=None, **kwargs):
    buffer = np.zeros(shape, dtype=dtype).view(PynqBuffer)
    buffer.physical_address = buffer.device_address = _backend.next_address
    _backend.allocated.append(buffer)
    # The next buffer starts on the same offset into a later page.
    pages = -(-(buffer.nbytes + 1) // 4096)
    _backend.next_address += pages * 4096
    return buffer
