"""The compiler: ONNX frontend (frontend/), the integer IR (ir.py), quantization helpers
(quantize.py), graph passes (passes/) and the backend to Programs (backend/)."""
