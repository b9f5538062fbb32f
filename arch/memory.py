"""Main memory as every executor and block driver holds it: a uint8 image of
`main_memory_bytes`, read and written in `dma_bytes`-wide words."""

from __future__ import annotations

import numpy as np

from verdigris.arch.config import AccelConfig

__all__ = ["check_memory_image", "main_memory_words"]


def main_memory_words(config: AccelConfig) -> int:
    """Words of main memory (the DMA's address space)."""
    return config.main_memory_bytes // config.dma_bytes


def check_memory_image(config: AccelConfig, memory: np.ndarray) -> np.ndarray:
    """`memory` as a main-memory image of `config`; ValueError naming what is wrong when it
    is not a uint8 array of exactly `main_memory_bytes`."""
    memory = np.asarray(memory)
    if memory.dtype != np.uint8 or memory.shape != (config.main_memory_bytes,):
        raise ValueError(
            f"main memory must be a uint8 array of {config.main_memory_bytes} bytes, not "
            f"{memory.dtype} {memory.shape}"
        )
    return memory
