"""The contract shared by compiler, hardware and simulators: AccelConfig, ISA, Program.

Not built yet (issue 4).
"""
