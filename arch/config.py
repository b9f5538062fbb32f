"""AccelConfig: the one description of an accelerator instance.

The hardware generator, the compiler and every simulator read the same AccelConfig, so one
TOML file fixes the array size, the memories and the timing-relevant widths for all of them.
Named presets live in arch/presets/*.toml; users can pass their own file. docs/config.md
describes every key: its meaning, unit, allowed values and default.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

from verdigris.arch.isa import LUT_ENTRIES, MAIN_ADDRESS_BITS, MAX_LUT_TABLES, OPERAND_WIDTHS

__all__ = [
    "MAX_CLOCK_MHZ",
    "PRESETS",
    "REQUIRED_KEYS",
    "AccelConfig",
    "ConfigError",
    "load_config",
    "read_named_toml",
]

PRESETS_DIR = Path(__file__).parent / "presets"
PRESETS = tuple(sorted(p.stem for p in PRESETS_DIR.glob("*.toml")))

# A config file must give these keys. Every other key may be left out and then takes its
# AccelConfig default, which is the `default` preset's value: a small file such as
# `name = "mine"`, `rows = 4`, `cols = 4` describes a 4x4 array with default memories.
# docs/config.md lists every key with its default; tests/arch/test_config.py checks both.
REQUIRED_KEYS = ("name", "rows", "cols")
_DOCS = "docs/config.md"
_TEXT_KEYS = ("name", "dataflow")  # strings
_NUMBER_KEYS = ("clock_mhz",)  # an int or a float; every other key is an int
# The highest clock a config may give, in MHz: far above what an FPGA reaches, low enough to
# catch a value given in Hz or kHz.
MAX_CLOCK_MHZ = 1000


class ConfigError(ValueError):
    """An accelerator configuration that cannot be built or used."""


@dataclass(frozen=True)
class AccelConfig:
    """An accelerator instance. Sizes are in rows of the named buffer:

    - input buffer: rows of `rows` int8 activations (one array input vector per row);
    - weight buffer: rows of `cols` int8 weights (`rows` buffer rows make one weight tile);
    - accumulator: rows of `cols` int32 partial sums;
    - requant table: rows of `cols` entries (bias, multiplier, shift) for the store path;
    - lookup tables: rows of `cols` int8, LUT_ENTRIES rows per table, for the store path.

    `clock_mhz` is the clock the design is meant to run at: it turns cycles into time
    (`seconds`) and changes nothing else.
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
    lut_rows: int = 1024
    main_memory_bytes: int = 262144
    instruction_capacity: int = 8192
    dma_bytes: int = 8
    queue_depth: int = 8
    clock_mhz: float = 50

    def __post_init__(self):
        _validate(_values(self), f"config {self.name!r}")

    @property
    def dim(self) -> int:
        """The array's side (rows == cols): the vector width of every buffer."""
        return self.rows

    @property
    def pe_count(self) -> int:
        return self.rows * self.cols

    def seconds(self, cycles: int) -> float:
        """The time `cycles` clock cycles take at `clock_mhz`, in seconds."""
        return cycles / (self.clock_mhz * 1e6)

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
        """The config a table of keys describes (a parsed TOML file, a program's header).

        `source` starts every error message: the file's path, for a file. Unknown keys and
        missing required keys (REQUIRED_KEYS) are errors; other missing keys take their
        defaults. Raises ConfigError naming each key at fault and what it allows.
        """
        if not isinstance(data, dict):
            raise ConfigError(
                f"{source}: a config is a table of keys, not {type(data).__name__} ({_DOCS})"
            )
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {unknown}; known keys: {sorted(known)} ({_DOCS})"
            )
        missing = [key for key in REQUIRED_KEYS if key not in data]
        if missing:
            raise ConfigError(
                f"{source}: missing key(s) {missing}: {', '.join(REQUIRED_KEYS[:-1])} and "
                f"{REQUIRED_KEYS[-1]} are required; the other keys default to the 'default' "
                f"preset's values ({_DOCS})"
            )
        # In field order, so that the first mistyped key reported is the first in the docs.
        defaults = _defaults()
        values = {key: data[key] if key in data else defaults[key] for key in known}
        # Validate here too, so that errors name `source` (the file) rather than the config's
        # `name`; the constructor then validates again, which is cheap.
        _validate(values, source)
        return cls(**values)


def _values(config: AccelConfig) -> dict:
    """Every field of `config` by name (shallow, unlike asdict: no copies)."""
    return {f.name: getattr(config, f.name) for f in fields(config)}


def _defaults() -> dict:
    """The AccelConfig default of every key that has one (all but REQUIRED_KEYS)."""
    return {f.name: f.default for f in fields(AccelConfig) if f.default is not MISSING}


def _type_problem(key: str, value: object) -> str | None:
    """Why `value` has the wrong type for `key`, or None. A bool is never an int."""
    if key in _NUMBER_KEYS:
        expected, name = (int, float), "int or float"
    else:
        expected = str if key in _TEXT_KEYS else int
        name = expected.__name__
    if isinstance(value, expected) and not isinstance(value, bool):
        return None
    return f"{key} must be {name}, not {value!r}"


def _rule_problems(c: dict) -> list[str]:
    """Every rule the well-typed values `c` (all keys present) break, each naming the key,
    its value and what is allowed."""
    problems = []

    def need(condition: bool, message: str) -> None:
        if not condition:
            problems.append(message)

    need(
        c["rows"] == c["cols"],
        f"rows ({c['rows']}) must equal cols ({c['cols']}): only square arrays are supported",
    )
    need(c["rows"] in (2, 4, 8, 16, 32), f"rows must be 2, 4, 8, 16 or 32, not {c['rows']}")
    need(
        c["operand_bits"] in OPERAND_WIDTHS,
        f"operand_bits must be {', '.join(map(str, OPERAND_WIDTHS))} (the narrowest operand "
        f"width the PEs compute; 1 is binary), not {c['operand_bits']}",
    )
    need(c["acc_bits"] == 32, f"acc_bits must be 32, not {c['acc_bits']}")
    need(c["dataflow"] in ("ws", "os"), f"dataflow must be 'ws' or 'os', not {c['dataflow']!r}")
    for name in ("inp_rows", "wgt_rows", "acc_rows", "req_rows"):
        value = c[name]
        need(
            value >= 2 and value & (value - 1) == 0 and value <= 65536,
            f"{name} must be a power of two from 2 to 65536, not {value}",
        )
    need(
        c["lut_rows"] % LUT_ENTRIES == 0 and 0 <= c["lut_rows"] <= MAX_LUT_TABLES * LUT_ENTRIES,
        f"lut_rows must be a multiple of {LUT_ENTRIES} (one lookup table) from 0 to "
        f"{MAX_LUT_TABLES * LUT_ENTRIES}, not {c['lut_rows']}",
    )
    need(
        c["wgt_rows"] >= 2 * c["rows"],
        f"wgt_rows ({c['wgt_rows']}) must hold two weight tiles ({2 * c['rows']} rows)",
    )
    need(
        c["dma_bytes"] in (1, 2, 4, 8, 16, 32, 64),
        f"dma_bytes must be a power of two from 1 to 64, not {c['dma_bytes']}",
    )
    need(
        c["dma_bytes"] > 0
        and c["main_memory_bytes"] % c["dma_bytes"] == 0
        and 1024 <= c["main_memory_bytes"] <= 2**MAIN_ADDRESS_BITS,
        f"main_memory_bytes must be a multiple of dma_bytes from 1 KiB to 4 GiB, not "
        f"{c['main_memory_bytes']}",
    )
    need(
        1 <= c["instruction_capacity"] <= 2**24,
        f"instruction_capacity must be 1 to 2**24, not {c['instruction_capacity']}",
    )
    need(2 <= c["queue_depth"] <= 64, f"queue_depth must be 2 to 64, not {c['queue_depth']}")
    need(
        math.isfinite(c["clock_mhz"]) and 0 < c["clock_mhz"] <= MAX_CLOCK_MHZ,
        f"clock_mhz must be above 0 and at most {MAX_CLOCK_MHZ} (MHz), not {c['clock_mhz']}",
    )
    return problems


def _validate(values: dict, where: str) -> None:
    """Raise ConfigError(f"{where}: ...") unless `values` (every field) make a valid config.

    The first mistyped key is reported alone (the rules need well-typed values); otherwise
    every broken rule is reported at once, so one edit of a file can fix them all.
    """
    for key, value in values.items():
        problem = _type_problem(key, value)
        if problem:
            raise ConfigError(f"{where}: {problem}")
    problems = _rule_problems(values)
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))


def read_named_toml(
    name_or_path: str | Path,
    *,
    folder: Path,
    names: tuple[str, ...],
    error: type[Exception],
    kind: str,
) -> tuple[Path, dict]:
    """(path, parsed table) of a shipped TOML file by name (one of `names`, in `folder`) or
    of a TOML file by path; `error` (its message starting with the name or path) for a file
    that is missing or not UTF-8 TOML. `kind` names the shipped files in the message."""
    text_name = str(name_or_path)
    if text_name in names:
        path = folder / f"{text_name}.toml"
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise error(f"{text_name}: neither a {kind} ({', '.join(names)}) nor a TOML file")
    try:
        return path, tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as problem:
        raise error(f"{path}: not valid TOML: {problem}") from None


def load_config(name_or_path: str | Path) -> AccelConfig:
    """A preset by name (tiny, default, large, xl) or a TOML file by path (docs/config.md).

    Raises ConfigError, whose message starts with the file's path, for a file that is
    missing, not UTF-8 TOML, or not a valid config (see AccelConfig.from_dict).
    """
    path, data = read_named_toml(
        name_or_path, folder=PRESETS_DIR, names=PRESETS, error=ConfigError, kind="preset"
    )
    return AccelConfig.from_dict(data, source=str(path))
