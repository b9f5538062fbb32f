"""Energy per inference of every shipped CNN on the `tiny` and `default` presets: µJ per
inference, the ratio to the physical floor, and the component that dominates, for both
shipped energy tables (docs/energy.md).

Each model runs on the instruction simulator on 16 images of the digits test split (real
inputs: zero-operand MACs depend on the data); the RTL reports the same Activity, so the
same energy (tests/rtl/test_layer_activity_rtl.py checks it per layer and component).
"""

import time
from pathlib import Path

import numpy as np

from verdigris.api import compile_model, energy_report_of
from verdigris.energy import load_table

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MODELS = ("lenet", "mobilenet", "resnet")
CONFIGS = ("tiny", "default")
TABLES = ("asic-45nm", "ecp5")
IMAGES = 16


def main() -> None:
    x = np.load(EXAMPLES / "digits_test.npz")["x"][:IMAGES]
    tables = {name: load_table(name) for name in TABLES}
    print(f"{IMAGES} digits test images per model, instruction simulator, 50 MHz clock")
    print(
        f"{'model':<10} {'config':<8} {'table':<10} {'µJ/inf':>8} {'/floor':>7} "
        f"{'latency µs':>10}  dominant component (share)"
    )
    start = time.perf_counter()
    for model in MODELS:
        path = EXAMPLES / "models" / f"{model}_qdq.onnx"
        for config in CONFIGS:
            program = compile_model(path, config)
            for name, table in tables.items():
                report = energy_report_of(program, {"input": x}, table=table).report
                dominant = report.dominant_component()
                share = report.energy_pj[dominant] / report.energy_pj_total
                print(
                    f"{model:<10} {config:<8} {name:<10} {report.uj_per_inference:>8.3f} "
                    f"{report.floor_ratio:>6.1f}x {report.latency_s * 1e6:>10.1f}  "
                    f"{dominant} ({share:.0%})"
                )
    print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
