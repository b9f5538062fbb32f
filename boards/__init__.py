"""ECP5 boards: SoC top with UART bridge, bitstream build, flashing, host runtime.

Not built yet.
"""
