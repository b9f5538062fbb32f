"""The contract shared by compiler, hardware, executors and boards, each fact once:

- config.py: AccelConfig, the one description of an accelerator instance;
- isa.py: the instruction encoding, token topology, flag bits and buffer widths;
- timing.py, cycle_model.py: the cycle model (timing constants, each instruction's events);
- arithmetic.py: wrap-around and the requantizer, as every executor computes them;
- memory.py: the main-memory image;
- program.py, host_steps.py: the Program (.vgp) and its typed host side;
- tensor_files.py: input tensors from .npy/.npz files;
- activity.py, counters.py: the Activity record (per layer) and the counters it comes from;
- host_port.py: how a host runs a Program on the core (docs/host-port.md).
"""
