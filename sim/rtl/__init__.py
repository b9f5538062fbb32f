"""RTL simulation: Verilog generated from hw/, built with Verilator, driven by cocotb."""
