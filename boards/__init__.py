"""ECP5 boards: the boards the toolkit knows (`catalog`) and flashing a bitstream onto one
(`flash`). Not built yet: the SoC top with its UART bridge, the bitstream build and the host
runtime over serial.
"""
