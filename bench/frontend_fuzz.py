"""The frontend fuzz test at full size: 10,000 seeded mutants of small quantized models
(tests/compiler/test_frontend_fuzz.py) through `load_model` and `compile_model`. Prints how
many ended in each typed error or compiled, every crash (an exception that is not a typed
error) with its traceback, and the time. Exits 1 if anything crashed.

    .venv/bin/python bench/frontend_fuzz.py [COUNT] [SEED]
"""

import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests package

from tests.compiler.test_frontend_fuzz import SEED, run_fuzz


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else SEED
    logging.disable(logging.WARNING)  # onnxruntime's quantizer advice, once per seed model
    start = time.monotonic()
    counts, crashes = run_fuzz(count, seed)
    seconds = time.monotonic() - start
    print(f"{count} mutated models (seed {seed}) in {seconds:.1f} s")
    for outcome, number in counts.most_common():
        print(f"  {outcome:<28} {number:>6}")
    for index, what, report in crashes:
        print(f"\nmutant {index} ({what}): {report}")
    print(f"crashes: {len(crashes)}")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
