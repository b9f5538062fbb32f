"""Executors and models: the golden model (golden.py), the instruction simulator
(isasim.py), the ONNX reference runner (reference.py), block models and the Amaranth and
Verilator harnesses (rtl/). The energy model is not built yet."""
