"""The timing constants of the cycle model (docs/isa.md), shared by the instruction
simulator and the hardware, so that one edit changes both."""

__all__ = [
    "LOAD_OVERHEAD",
    "LUT_LATENCY",
    "STORE_OVERHEAD",
    "VECTOR_LATENCY",
    "gemm_busy",
    "gemm_latency",
]

# Cycles a LOAD transfer adds to rows * words: main-memory read latency and the last write.
LOAD_OVERHEAD = 2
# Cycles a STORE adds to rows * words: accumulator read and requantizer pipeline.
STORE_OVERHEAD = 6
# Cycles a STORE with a lookup (`lut` > 0) adds: the lookup-table read after the requantizer.
LUT_LATENCY = 1
# Cycles from a VECTOR's last busy cycle to its completion (read, operate, write).
VECTOR_LATENCY = 2


def gemm_latency(dim: int) -> int:
    """Cycles from a GEMM's last busy cycle to its completion: through the array and the
    accumulator's read-modify-write."""
    return 2 * dim + 1


def gemm_busy(dim: int, load_weights: bool, rows: int) -> int:
    """Cycles a GEMM keeps the compute unit busy: its weight phase (a row of the tile per
    cycle) if it loads weights, then one streamed row per cycle (at least 1)."""
    return max(1, (dim if load_weights else 0) + rows)
