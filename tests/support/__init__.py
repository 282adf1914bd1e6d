"""What the tests share and the package does not: seeded model generators (MLPs, conv nets, the
FINN-ONNX dialect), the Amaranth stream testbench, and the cocotb runner."""
