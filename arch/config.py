"""AccelConfig: the one description of an accelerator instance.

The hardware generator, the compiler and every simulator read the same AccelConfig, so one
TOML file fixes the array size, the memories and the timing-relevant widths for all of them.
Named presets live in arch/presets/*.toml; users can pass their own file.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

__all__ = ["PRESETS", "AccelConfig", "ConfigError", "load_config"]

PRESETS_DIR = Path(__file__).parent / "presets"
PRESETS = tuple(sorted(p.stem for p in PRESETS_DIR.glob("*.toml")))


class ConfigError(ValueError):
    """An accelerator configuration that cannot be built or used."""


@dataclass(frozen=True)
class AccelConfig:
    """An accelerator instance. Sizes are in rows of the named buffer:

    - input buffer: rows of `rows` int8 activations (one array input vector per row);
    - weight buffer: rows of `cols` int8 weights (`rows` buffer rows make one weight tile);
    - accumulator: rows of `cols` int32 partial sums;
    - requant table: rows of `cols` entries (bias, multiplier, shift) for the store path.
    """

    name: str
    rows: int
    cols: int
    operand_bits: int = 8
    acc_bits: int = 32
    dataflow: str = "ws"
    inp_rows: int = 1024
    wgt_rows: int = 512
    acc_rows: int = 1024
    req_rows: int = 32
    main_memory_bytes: int = 262144
    instruction_capacity: int = 8192
    dma_bytes: int = 8
    queue_depth: int = 8

    def __post_init__(self):
        problems = []

        def need(condition: bool, message: str) -> None:
            if not condition:
                problems.append(message)

        for field in fields(self):
            value = getattr(self, field.name)
            expected = str if field.name in ("name", "dataflow") else int
            if not isinstance(value, expected) or isinstance(value, bool):
                raise ConfigError(
                    f"config {self.name!r}: {field.name} must be {expected.__name__}, not {value!r}"
                )
        need(
            self.rows == self.cols,
            f"rows ({self.rows}) must equal cols ({self.cols}): only square arrays are supported",
        )
        need(self.rows in (2, 4, 8, 16, 32), f"rows must be 2, 4, 8, 16 or 32, not {self.rows}")
        need(self.operand_bits == 8, f"operand_bits must be 8 (int8), not {self.operand_bits}")
        need(self.acc_bits == 32, f"acc_bits must be 32, not {self.acc_bits}")
        need(self.dataflow in ("ws", "os"), f"dataflow must be 'ws' or 'os', not {self.dataflow!r}")
        for name in ("inp_rows", "wgt_rows", "acc_rows", "req_rows"):
            value = getattr(self, name)
            need(
                value >= 2 and value & (value - 1) == 0 and value <= 65536,
                f"{name} must be a power of two from 2 to 65536, not {value}",
            )
        need(
            self.wgt_rows >= 2 * self.rows,
            f"wgt_rows ({self.wgt_rows}) must hold two weight tiles ({2 * self.rows} rows)",
        )
        need(
            self.dma_bytes in (1, 2, 4, 8, 16, 32, 64),
            f"dma_bytes must be a power of two from 1 to 64, not {self.dma_bytes}",
        )
        need(
            self.dma_bytes > 0
            and self.main_memory_bytes % self.dma_bytes == 0
            and 1024 <= self.main_memory_bytes <= 2**24,
            f"main_memory_bytes must be a multiple of dma_bytes from 1 KiB to 16 MiB, not "
            f"{self.main_memory_bytes}",
        )
        need(
            1 <= self.instruction_capacity <= 2**20,
            f"instruction_capacity must be 1 to 2**20, not {self.instruction_capacity}",
        )
        need(2 <= self.queue_depth <= 64, f"queue_depth must be 2 to 64, not {self.queue_depth}")
        if problems:
            raise ConfigError(f"config {self.name!r}: " + "; ".join(problems))

    @property
    def dim(self) -> int:
        """The array's side (rows == cols): the vector width of every buffer."""
        return self.rows

    @property
    def pe_count(self) -> int:
        return self.rows * self.cols

    def to_dict(self) -> dict:
        return asdict(self)

    def to_toml(self) -> str:
        lines = []
        for key, value in self.to_dict().items():
            # A JSON string is a valid TOML basic string, escapes included.
            text = json.dumps(value) if isinstance(value, str) else str(value)
            lines.append(f"{key} = {text}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "config") -> AccelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {unknown}; known keys: {sorted(known)}")
        missing = [k for k in ("name", "rows", "cols") if k not in data]
        if missing:
            raise ConfigError(f"{source}: missing key(s) {missing}")
        return cls(**data)


def load_config(name_or_path: str | Path) -> AccelConfig:
    """A preset by name (tiny, default, large) or a TOML file by path."""
    text_name = str(name_or_path)
    if text_name in PRESETS:
        path = PRESETS_DIR / f"{text_name}.toml"
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(
                f"{text_name}: neither a preset ({', '.join(PRESETS)}) nor a TOML file"
            )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return AccelConfig.from_dict(data, source=str(path))
