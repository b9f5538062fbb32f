"""The contract shared by compiler, hardware and simulators: AccelConfig (config.py), the
ISA (isa.py), the Program file (program.py), the Activity record (activity.py) and the
timing constants of the cycle model (timing.py)."""
