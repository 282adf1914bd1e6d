"""`finn-rtl deploy`: from a build directory to everything a board needs.

Writes the shell's Verilog, the host driver and its JSON description, and (see vivado.py) the
Vivado/Vitis scripts that package the IP and build the bitfile or xclbin.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .boards import AlveoBoard, Board
from .host import check_host_input, driver_description
from .shell import shell_verilog

DRIVER = Path(__file__).with_name("driver.py")


def design_id(accelerator_verilog: str) -> int:
    """The first 32 bits of the accelerator Verilog's SHA-256: the driver checks it on the board."""
    return int(hashlib.sha256(accelerator_verilog.encode()).hexdigest()[:8], 16)


@dataclass(frozen=True)
class ShellFiles:
    out_dir: Path
    kernel: str  # the shell's module name
    verilog: Path
    description: Path
    driver: Path
    description_data: dict


def write_shell(b, out_dir, word_bytes: int, *, clock_mhz: float, platform: str, base_name: str,
                memory_bank: str | None = None, check_inputs: np.ndarray | None = None) -> ShellFiles:
    """Shell Verilog, driver and driver description for build `b` in `out_dir`. The description
    is named `<base_name>.json`, beside the `<base_name>.bit`/`.xclbin` the driver will load."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    kernel = f"{b.network.name}_shell"
    ident = design_id(b.verilog)
    # Vivado names a block-design cell after the IP with a _0 suffix; Vitis names compute units _1.
    ip_name = f"{kernel}_1" if platform == "alveo" else f"{kernel}_0"
    desc = driver_description(b, word_bytes, design_id=ident, ip_name=ip_name, platform=platform,
                              clock_mhz=clock_mhz, memory_bank=memory_bank)
    from ..flow import random_inputs

    samples = random_inputs(b, 256, seed=7)
    check_host_input(b, desc, samples if check_inputs is None else np.concatenate([samples, check_inputs]))
    verilog = out / f"{kernel}.v"
    verilog.write_text(shell_verilog(b.network, word_bytes, ident, name=kernel))
    description = out / f"{base_name}.json"
    description.write_text(json.dumps(desc, indent=1) + "\n")
    driver = out / "driver.py"
    shutil.copyfile(DRIVER, driver)
    return ShellFiles(out, kernel, verilog, description, driver, desc)


def board_platform(board: Board) -> str:
    return "alveo" if isinstance(board, AlveoBoard) else "zynq"
