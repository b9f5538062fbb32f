"""The executors: the golden model (golden.py), the instruction simulator (isasim.py), the
host-op runtime every executor shares (host.py) and the Verilated RTL (rtl/: Verilator
build, C++ harness and cocotb bench of the whole core). The verification kit that proves the
blocks is in verdigris.verify."""
