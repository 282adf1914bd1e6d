"""What the stub's parts share: its error, Tcl argument parsing, Verilog ports and the AXI
interfaces Vivado infers from them, and the packaged core's component file."""
from __future__ import annotations

import re
from pathlib import Path
from xml.etree import ElementTree

AXI_MASTER = ("awaddr", "awlen", "awvalid", "awready", "wdata", "wlast", "wvalid", "wready", "bresp", "bvalid",
              "bready", "araddr", "arlen", "arvalid", "arready", "rdata", "rresp", "rlast", "rvalid", "rready")
AXI_LITE = ("awaddr", "awvalid", "awready", "wdata", "wstrb", "wvalid", "wready", "bresp", "bvalid", "bready",
            "araddr", "arvalid", "arready", "rdata", "rresp", "rvalid", "rready")


class StubError(Exception):
    pass


def verilog_ports(text: str, module: str) -> dict[str, str]:
    """Port name -> 'input'/'output' of `module` in Verilog text."""
    match = re.search(rf"^module {re.escape(module)}\s*\((.*?)^endmodule", text, re.S | re.M)
    if not match:
        raise StubError(f"module {module} is not in the Verilog sources")
    return {name: direction for direction, name in
            re.findall(r"^\s*(input|output)\s+(?:\[[^\]]+\]\s*)?(\w+)\s*;", match.group(1), re.M)}


def infer_interfaces(ports: dict[str, str]) -> dict[str, str]:
    """AXI interfaces by port-name prefix, as ipx::package_project infers them: name -> mode."""
    interfaces = {}
    for prefix in {name.rsplit("_", 1)[0] for name in ports if "_" in name}:
        signals = {name[len(prefix) + 1:] for name in ports if name.startswith(prefix + "_")}
        if set(AXI_LITE) - {"wstrb"} <= signals:
            full = set(AXI_MASTER) <= signals
            mode = "master" if ports[f"{prefix}_awaddr"] == "output" else "slave"
            interfaces[prefix] = f"{mode}:{'aximm' if full else 'aximm-lite'}"
        elif {"tdata", "tvalid", "tready"} <= signals:
            interfaces[prefix] = f"{'slave' if ports[prefix + '_tdata'] == 'input' else 'master'}:axis"
    return interfaces



def split_list(value: str) -> list[str]:
    import tkinter

    return list(tkinter.Tcl().splitlist(value)) if value else []


def options(args, valued, flags) -> dict:
    opts, positional, items = {}, [], list(args)
    while items:
        item = items.pop(0)
        if item in valued:
            opts[item] = items.pop(0)
        elif item in flags:
            opts[item] = True
        elif item.startswith("-") and item not in valued:
            raise StubError(f"unknown option {item}")
        else:
            positional.append(item)
    opts["positional"] = positional
    return opts


def write_component(path: Path, core: dict) -> None:
    root = ElementTree.Element("component", vlnv=f"{core['vendor']}:{core['library']}:{core['name']}:{core['version']}")
    for name, direction in core["ports"].items():
        ElementTree.SubElement(root, "port", name=name, direction=direction)
    for name, mode in core["interfaces"].items():
        ElementTree.SubElement(root, "interface", name=name, mode=mode)
    for name, reg in core["registers"].items():
        ElementTree.SubElement(root, "register", name=name, offset=str(reg["address_offset"]), size=str(reg.get("size", 32)))
    ElementTree.ElementTree(root).write(path)


def read_component(path: Path) -> dict:
    root = ElementTree.parse(path).getroot()
    vlnv = root.get("vlnv")
    return {"vlnv": vlnv, "name": vlnv.split(":")[2],
            "ports": {p.get("name"): p.get("direction") for p in root.iter("port")},
            "interfaces": {i.get("name"): i.get("mode") for i in root.iter("interface")},
            "registers": {r.get("name"): (int(r.get("offset")), int(r.get("size"))) for r in root.iter("register")}}
