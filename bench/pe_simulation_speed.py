"""Cycles per second of the PE in Amaranth's simulator and under Verilator (cocotb).

Both runs drive the PE from Python once per cycle, so this measures the unit-bench path, not
the end-to-end RTL backend (which keeps Python out of the cycle loop). Both run in this one
process, so their ratio holds on a noisy machine even when the absolute numbers do not.
"""

import time

from verdigris.verify.pe import random_pe_inputs, run_pe_bench, simulate_pe

CYCLES = 20_000


def main() -> None:
    stimulus = random_pe_inputs(0, CYCLES)
    start = time.perf_counter()
    simulate_pe(stimulus)
    amaranth_rate = CYCLES / (time.perf_counter() - start)

    start = time.perf_counter()
    run_pe_bench(vectors=10)  # builds (or reuses) the model, so the next run times only the sim
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    run, failed = run_pe_bench(vectors=CYCLES)
    verilator_rate = CYCLES / (time.perf_counter() - start)
    if (run, failed) != (1, 0):
        raise SystemExit("the Verilated PE did not match its model")

    print(f"PE int8, {CYCLES} cycles driven from Python:")
    print(f"  Amaranth simulator   {amaranth_rate:10,.0f} cycles/s")
    print(f"  Verilator + cocotb   {verilator_rate:10,.0f} cycles/s  (incl. ~0.5 s start-up)")
    print(f"  ratio Verilator / Amaranth: {verilator_rate / amaranth_rate:.2f}")
    print(f"  Verilator build or cache hit: {build_s:.1f} s")


if __name__ == "__main__":
    main()
