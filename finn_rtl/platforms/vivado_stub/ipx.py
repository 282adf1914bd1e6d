"""The IP-packaging half of the Vivado stub: ipx:: commands and Vitis' package_xo."""
from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

from .common import StubError, infer_interfaces, options, read_component, write_component


class IpPackaging:
    """ipx::package_project infers AXI interfaces from the top's port names; the rest of the
    packaging script must name those interfaces, give each a clock, and lay registers inside
    the address block without overlap."""

    CORE_OBJECTS = ("core", "busif", "register", "block", "busparam", "memmap")

    def set_core_property(self, kind: str, name: str, key: str, value: str, target: str) -> None:
        self.core.setdefault("properties", {})[(target, key)] = value
        if kind == "busif" and key == "slave_memory_map_ref":
            if self.core["interfaces"].get(name, "").split(":")[0] != "slave":
                raise StubError(f"memory map on {name}, which is not an AXI slave interface")
            self.core["memory_map_of"] = name
        if kind == "register":
            self.core["registers"][name][key] = int(value, 0)
        if kind == "block" and key == "range":
            self.core["range"] = int(value, 0)
        if kind == "busparam" and key == "value" and name.endswith("ASSOCIATED_BUSIF"):
            if value not in self.core["interfaces"]:
                raise StubError(f"ASSOCIATED_BUSIF {value} is not an interface of the core")

    def update_ip_catalog(self, *args):
        for repo in self.repo_paths:
            for component in repo.glob("**/component.xml"):
                core = read_component(component)
                self.catalog[core["vlnv"]] = core

    def package_project(self, *args):
        opts = options(args, ("-root_dir", "-vendor", "-library", "-taxonomy"), ("-import_files", "-set_current"))
        if self.top is None:
            raise StubError("ipx::package_project without a top module")
        ports = self.top_ports
        self.core = {"root": Path(opts["-root_dir"]), "vendor": opts["-vendor"], "library": opts["-library"],
                     "name": self.top, "version": "1.0", "ports": ports, "interfaces": infer_interfaces(ports),
                     "clocks": {}, "registers": {}, "range": 0, "properties": {}}
        return "core:"

    def infer_bus_interface(self, port, vlnv, core):
        if port not in self.core["ports"]:
            raise StubError(f"ipx::infer_bus_interface: {port} is not a port of {self.core['name']}")
        kind = vlnv.split(":")[2].removesuffix("_rtl")
        self.core["interfaces"][port] = kind
        return f"busif:{port}"

    def associate_bus_interfaces(self, *args):
        opts = options(args, ("-busif", "-clock", "-reset"), ())
        clock = opts["-clock"]
        if self.core["interfaces"].get(clock) != "clock":
            raise StubError(f"ipx::associate_bus_interfaces: {clock} is not a clock interface")
        if "-busif" in opts:
            if opts["-busif"] not in self.core["interfaces"]:
                raise StubError(f"ipx::associate_bus_interfaces: no bus interface {opts['-busif']} "
                                f"(the core has {sorted(self.core['interfaces'])})")
            self.core["clocks"][opts["-busif"]] = clock
        if "-reset" in opts:
            if self.core["interfaces"].get(opts["-reset"]) != "reset":
                raise StubError(f"ipx::associate_bus_interfaces: {opts['-reset']} is not a reset interface")
            self.core["clocks"][opts["-reset"]] = clock

    def get_bus_interfaces(self, name, *args):
        if name not in self.core["interfaces"]:
            raise StubError(f"ipx::get_bus_interfaces: no interface {name}")
        return f"busif:{name}"

    def add_bus_parameter(self, name, busif):
        return f"busparam:{busif}/{name}"


    add_register_parameter = add_bus_parameter

    def add_memory_map(self, name, core):
        return f"memmap:{name}"

    def add_address_block(self, name, memmap):
        return f"block:{name}"

    def add_register(self, name, block):
        if name in self.core["registers"]:
            raise StubError(f"register {name} added twice")
        self.core["registers"][name] = {}
        return f"register:{name}"

    def get_registers(self, name, *args):
        if name not in self.core["registers"]:
            raise StubError(f"ipx::get_registers: no register {name}")
        return f"register:{name}"

    def check_integrity(self, *args):
        core = self.core
        for name, kind in core["interfaces"].items():
            if kind.startswith(("master", "slave")) and name not in core["clocks"]:
                raise StubError(f"bus interface {name} has no associated clock")
        if any(kind.startswith("slave:aximm") for kind in core["interfaces"].values()) and not core.get("memory_map_of"):
            raise StubError("no AXI slave interface references the register memory map")
        spans = sorted((r["address_offset"], r["address_offset"] + r.get("size", 32) // 8, name)
                       for name, r in core["registers"].items())
        for (start, end, name), following in zip(spans, spans[1:] + [(None, None, None)]):
            if end > core["range"]:
                raise StubError(f"register {name} at {start:#x} lies outside the {core['range']}-byte block")
            if following[0] is not None and following[0] < end:
                raise StubError(f"registers {name} and {following[2]} overlap")
        if "-kernel" in args:
            props = {key: value for (target, key), value in core["properties"].items() if target == "core:"}
            if props.get("sdx_kernel") != "true" or "ap_clk" not in core["ports"] or "ap_rst_n" not in core["ports"]:
                raise StubError("a Vitis kernel needs sdx_kernel true and ap_clk/ap_rst_n ports")

    def save_core(self, core):
        self.check_integrity()
        root = self.core["root"]
        root.mkdir(parents=True, exist_ok=True)
        write_component(root / "component.xml", self.core)
        self.stage.add("packaged")

    def package_xo(self, *args):
        opts = options(args, ("-xo_path", "-kernel_name", "-ip_directory", "-kernel_xml"), ("-force",))
        component = Path(opts["-ip_directory"], "component.xml")
        if not component.is_file():
            raise StubError(f"package_xo: no packaged IP in {opts['-ip_directory']}")
        core = read_component(component)
        if core["name"] != opts["-kernel_name"]:
            raise StubError(f"package_xo: the IP is {core['name']}, not {opts['-kernel_name']}")
        kernel = ElementTree.parse(opts["-kernel_xml"]).getroot().find("kernel")
        if kernel.get("vlnv") != core["vlnv"]:
            raise StubError(f"kernel.xml names {kernel.get('vlnv')}, the IP is {core['vlnv']}")
        ports = {port.get("name") for port in kernel.iter("port")}
        for port in ports:
            if port not in core["interfaces"]:
                raise StubError(f"kernel.xml port {port} is not an interface of the IP")
        offsets = {offset for offset, _ in core["registers"].values()}
        for arg in kernel.iter("arg"):
            if arg.get("port") not in ports or int(arg.get("offset"), 16) not in offsets:
                raise StubError(f"kernel.xml argument {arg.get('name')} matches no register of the IP")
        Path(opts["-xo_path"]).write_text("stub xo\n")
