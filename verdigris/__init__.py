"""Verdigris: energy-efficient quantized inference on an open systolic-array accelerator."""

__version__ = "0.1.0"
