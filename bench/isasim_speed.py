"""Speed of the instruction simulator on a long program: a 256x256x256 int8 GEMM on an 8x8
array, tiled as a compiler would, with double-buffered weight tiles and accumulators.

C = requant(A @ W) with A (M x K), W (K x N), per-column requant entries. A is loaded once
(32 k-tiles of 256 inp rows), each of the 32 x 32 weight tiles once; every GEMM streams all
256 rows of its k-tile, so the run is compute bound (~1024 x 264 cycles). Tokens: weight
tile j goes to wgt slot j % 2 and waits (c2l) for GEMM j-2; GEMM j waits (l2c) for its
tile; the last GEMM of column tile n hands acc half n % 2 to its STORE (c2s), which hands it
back (s2c) to the first GEMM of column tile n+2. The result is checked against numpy.
"""

import time

import numpy as np

from verdigris.arch.activity import pe_utilization
from verdigris.arch.config import AccelConfig
from verdigris.arch.isa import REQ_ENTRY, Buffer, Deps, Finish, Gemm, Instruction, Load, Store
from verdigris.compiler import ir
from verdigris.sim.golden import requantize, wrap_int32
from verdigris.sim.isasim import run_instructions

M = K = N = 256
DIM = 8
CONFIG = AccelConfig(
    name="bench",
    rows=DIM,
    cols=DIM,
    inp_rows=8192,  # all 32 k-tiles of A stay on chip
    wgt_rows=512,
    acc_rows=1024,
    req_rows=32,
    main_memory_bytes=262144,
    instruction_capacity=8192,
    dma_bytes=8,
    queue_depth=8,
)
A_ADDR, W_ADDR, REQ_ADDR, OUT_ADDR = 0, 65536, 131072, 135168
K_TILES, N_TILES = K // DIM, N // DIM
REPEATS = 3


ZERO_POINT, QMIN, QMAX = -5, -128, 127


def build_program() -> list[Instruction]:
    last_gemm = K_TILES * N_TILES - 1
    program: list[Instruction] = [
        # All requant entries: one req row (8 entries of 12 bytes) per column tile.
        Load(Deps(), Buffer.REQ, False, 0, N_TILES, DIM, REQ_ADDR, DIM * REQ_ENTRY.itemsize)
    ]
    for n in range(N_TILES):
        half = (n % 2) * M
        for k in range(K_TILES):
            j = n * K_TILES + k
            slot = (j % 2) * DIM
            if n == 0:
                program.append(Load(Deps(), Buffer.INP, False, k * M, M, DIM, A_ADDR + k * DIM, K))
            program.append(
                Load(
                    Deps(pop_next=j >= 2, push_next=True),
                    Buffer.WGT,
                    False,
                    slot,
                    DIM,
                    DIM,
                    W_ADDR + k * DIM * N + n * DIM,
                    N,
                )
            )
            program.append(
                Gemm(
                    Deps(
                        pop_prev=True,
                        pop_next=k == 0 and n >= 2,
                        push_prev=j + 2 <= last_gemm,
                        push_next=k == K_TILES - 1,
                    ),
                    True,
                    k > 0,
                    slot,
                    k * M,
                    half,
                    M,
                )
            )
        program.append(
            Store(
                Deps(pop_prev=True, push_prev=n + 2 < N_TILES),
                False,
                half,
                M,
                DIM,
                OUT_ADDR + n * DIM,
                N,
                req_row=n,
            )
        )
    program.append(Finish(Deps()))
    return program


def build_memory(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Main memory with A, W and the requant table; the expected int8 result."""
    a = rng.integers(-128, 128, (M, K), dtype=np.int8)
    w = rng.integers(-128, 128, (K, N), dtype=np.int8)
    bias = rng.integers(-(2**20), 2**20, N)
    multiplier = rng.integers(2**29, 2**31, N)
    shift = rng.integers(36, 44, N)
    records = np.zeros(N, REQ_ENTRY)
    records["bias"], records["multiplier"], records["shift"] = bias, multiplier, shift
    records["zero_point"], records["qmin"], records["qmax"] = ZERO_POINT, QMIN, QMAX
    memory = np.zeros(CONFIG.main_memory_bytes, np.uint8)
    memory[A_ADDR : A_ADDR + a.size] = a.view(np.uint8).ravel()
    memory[W_ADDR : W_ADDR + w.size] = w.view(np.uint8).ravel()
    memory[REQ_ADDR : REQ_ADDR + records.nbytes] = records.view(np.uint8)
    acc = wrap_int32(a.astype(np.int64) @ w.astype(np.int64) + bias)
    expected = requantize(acc, ir.Requant(multiplier, shift, ZERO_POINT, QMIN, QMAX), 1)
    return memory, expected


def main() -> None:
    program = build_program()
    memory, expected = build_memory(np.random.default_rng(0))
    wall = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        result, activity = run_instructions(CONFIG, program, memory)
        wall = min(wall, time.perf_counter() - start)
    got = result[OUT_ADDR : OUT_ADDR + M * N].view(np.int8).reshape(M, N)
    if not np.array_equal(got, expected):
        raise SystemExit("the simulated GEMM does not match numpy")
    print(f"isasim, {M}x{K}x{N} int8 GEMM on a {DIM}x{DIM} array (best of {REPEATS}):")
    print(f"  instructions        {len(program):10,d}")
    print(f"  simulated cycles    {activity.cycles:10,d}")
    utilization = pe_utilization(M * K * N, activity.cycles, CONFIG.pe_count)
    print(f"  PE utilization      {utilization:10.1%}")
    print(f"  wall time           {wall:10.3f} s")
    print(f"  simulated cycles/s  {activity.cycles / wall:10,.0f}")
    print(f"  instructions/s      {len(program) / wall:10,.0f}")


if __name__ == "__main__":
    main()
