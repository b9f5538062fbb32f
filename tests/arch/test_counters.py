"""The counter ports (arch/counters.py) against the Activity record and the documents that
list them: docs/host-port.md's counter list is the port order, docs/isa.md's Activity table
defines every field, its event schedule covers every event counter, and the counters map
one to one onto an Activity."""

import re
from dataclasses import fields
from pathlib import Path

from verdigris.arch.activity import Activity
from verdigris.arch.counters import (
    ACTIVITY_COUNTERS,
    BYTE_COUNTERS,
    LOAD_WRITE_COUNTERS,
    activity_from_counters,
)
from verdigris.arch.cycle_model import EVENT_COUNTERS
from verdigris.arch.isa import Buffer

DOCS = Path(__file__).resolve().parents[2] / "docs"
NAME = re.compile(r"`(\w+)(?:\[unit\])?`")


def _table(document: str, header: str) -> list[str]:
    """The first column of the Markdown table under `header` in docs/`document`."""
    lines = (DOCS / document).read_text(encoding="utf-8").splitlines()
    start = lines.index(header)
    column = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        column.append(line.strip("|").split("|")[0])
    return column


def _activity_fields() -> list[str]:
    return [f.name for f in fields(Activity) if f.name != "layers"]


def test_the_host_port_document_lists_the_counters_in_port_order():
    text = (DOCS / "host-port.md").read_text(encoding="utf-8")
    paragraph = text[text.index("`ACTIVITY_COUNTERS`: ") : text.index("then per unit")]
    listed = [name for name in NAME.findall(paragraph) if not name.isupper()]
    assert listed == list(ACTIVITY_COUNTERS[: ACTIVITY_COUNTERS.index("load_busy_cycles")])


def test_the_activity_table_defines_every_field():
    defined = [
        name for cell in _table("isa.md", "| counter | meaning |") for name in NAME.findall(cell)
    ]
    assert sorted(defined) == sorted(_activity_fields())


def test_the_event_schedule_covers_every_event_counter():
    header = "| counter | instruction | cycles after the start (amount each) |"
    named = {name for cell in _table("isa.md", header) for name in NAME.findall(cell)}
    assert named == {*EVENT_COUNTERS, "zero_macs", "instruction_fetches"}


def test_every_counter_is_one_activity_field():
    values = {name: index + 1 for index, name in enumerate(ACTIVITY_COUNTERS)}
    activity = activity_from_counters(values).to_dict()
    flat = {}
    for name, value in activity.items():
        if isinstance(value, dict):
            kind = {"busy": "busy_cycles", "stall": "stall_cycles"}.get(name, name)
            flat |= {f"{unit}_{kind}": count for unit, count in value.items()}
        else:
            flat[name] = value
    assert flat == values
    assert len(activity) == len(_activity_fields())


def test_load_writes_have_a_counter_per_buffer():
    assert set(LOAD_WRITE_COUNTERS) == set(Buffer)
    assert set(LOAD_WRITE_COUNTERS.values()) <= set(BYTE_COUNTERS)
    assert "acc_write_bytes" not in LOAD_WRITE_COUNTERS.values()  # the compute unit's
