"""The verification kit: what proves the executors and the hardware against the contract.

So far it holds the ONNX reference oracle (`verify.reference`); the block models, drivers
and benches that now live in sim/ move here next (issue #10).
"""
