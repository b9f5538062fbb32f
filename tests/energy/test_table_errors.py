"""A user's energy table (docs/energy.md, "Table format"): a copy of a shipped table loads;
every mistake is an EnergyTableError that names the file, the entry and what is wrong."""

import re

import pytest

from verdigris.energy import EnergyTableError, load_table
from verdigris.energy.table import TABLES_DIR

SHIPPED = (TABLES_DIR / "asic-45nm.toml").read_text()
FIRST_ENTRY = """[[entry]]
component = "multiplier"
action = "multiply"
arguments = { width = 8 }
energy = 0.2
"""


def _write(tmp_path, text):
    path = tmp_path / "mine.toml"
    path.write_text(text)
    return path


def _edit_first_entry(tmp_path, new):
    assert FIRST_ENTRY in SHIPPED
    return _write(tmp_path, SHIPPED.replace(FIRST_ENTRY, new, 1))


def test_a_users_copy_loads(tmp_path):
    path = _write(tmp_path, SHIPPED.replace('name = "asic-45nm"', 'name = "mine"'))
    table = load_table(path)
    assert table.name == "mine"
    assert table.path == str(path)
    assert table.entries == load_table("asic-45nm").entries


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            FIRST_ENTRY.replace('"multiplier"', '"multiplyer"'),
            "entry 1 (multiplyer multiply): unknown component 'multiplyer'; known: multiplier,",
        ),
        (
            FIRST_ENTRY.replace('"multiply"', '"mul"'),
            "entry 1 (multiplier mul): unknown action 'mul' of multiplier",
        ),
        (
            FIRST_ENTRY.replace("energy = 0.2", "energy = -0.2"),
            "entry 1 (multiplier multiply): energy must not be negative, not -0.2",
        ),
        (
            FIRST_ENTRY.replace("energy = 0.2", 'energy = "0.2 pJ"'),
            "entry 1 (multiplier multiply): energy must be a number, not '0.2 pJ'",
        ),
        (
            FIRST_ENTRY.replace("energy = 0.2", "energy = nan"),
            "entry 1 (multiplier multiply): energy must be a number, not nan",
        ),
        (
            FIRST_ENTRY.replace("energy = 0.2\n", ""),
            "entry 1 (multiplier multiply): energy must be a number, not None",
        ),
        (
            FIRST_ENTRY.replace("{ width = 8 }", "{ bits = 8 }"),
            "entry 1 (multiplier multiply): arguments must be exactly ['width'], not {'bits': 8}",
        ),
        (
            FIRST_ENTRY.replace("{ width = 8 }", "{ width = 0 }"),
            "entry 1 (multiplier multiply): argument width must be a positive integer, not 0",
        ),
        (
            FIRST_ENTRY + "unit = 'pJ'\n",
            "entry 1 (multiplier multiply): unknown key(s) ['unit']",
        ),
        (
            FIRST_ENTRY + "power = 1.0\n",
            "entry 1 (multiplier multiply): multiplier gives energy, not power",
        ),
    ],
)
def test_a_bad_entry_is_named(tmp_path, entry, message):
    path = _edit_first_entry(tmp_path, entry)
    with pytest.raises(EnergyTableError, match=re.escape(f"{path}: {message}")):
        load_table(path)


def test_an_entry_needs_a_source(tmp_path):
    text = SHIPPED.replace(
        'source = "Horowitz ISSCC 2014, Fig. 1.1.9: 8-bit integer multiply 0.2 pJ"\n', "", 1
    )
    path = _write(tmp_path, text)
    with pytest.raises(
        EnergyTableError,
        match=re.escape(f"{path}: entry 1 (multiplier multiply): every entry needs a source"),
    ):
        load_table(path)


def test_a_scaled_entry_needs_its_rule(tmp_path):
    path = _write(
        tmp_path,
        SHIPPED.replace(
            'rule = "quadratic in width from the 8-bit multiply: 0.2 pJ * (16/8)^2"\n', "", 1
        ),
    )
    with pytest.raises(
        EnergyTableError,
        match=re.escape(f"{path}: entry 3 (multiplier multiply): a scaled entry needs its rule"),
    ):
        load_table(path)


def test_a_missing_action_is_named(tmp_path):
    text = SHIPPED.split("# ---- control:")[0]  # drops control and static
    path = _write(tmp_path, text)
    with pytest.raises(
        EnergyTableError, match=re.escape(f"{path}: missing action: no entry for control cycle")
    ):
        load_table(path)


def test_a_repeated_entry_is_named(tmp_path):
    path = _write(tmp_path, SHIPPED + "\n" + FIRST_ENTRY + 'source = "again"\n')
    with pytest.raises(
        EnergyTableError,
        match=re.escape(f"{path}: entry 25 (multiplier multiply (width=8)) repeats entry 1"),
    ):
        load_table(path)


def test_a_width_the_table_lacks_is_named_when_used():
    table = load_table("asic-45nm")
    with pytest.raises(
        EnergyTableError,
        match=re.escape("no entry for multiplier multiply (width=3); the table has multiplier"),
    ):
        table.energy("multiplier", "multiply", width=3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("format = 1\nname = 'x'\nentry = [", "not valid TOML"),
        ('format = 2\nname = "x"\n', "format must be 1, not 2"),
        ('format = 1\nname = "x"\n', "the table has no [[entry]] tables"),
        ('format = 1\nname = ""\n', "name must be a non-empty string, not ''"),
        ('format = 1\nname = "x"\nunits = "pJ"\n', "unknown key(s) ['units']"),
    ],
)
def test_a_bad_file_is_named(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(EnergyTableError, match=re.escape(f"{path}: {message}")):
        load_table(path)


def test_neither_a_shipped_table_nor_a_file():
    with pytest.raises(
        EnergyTableError,
        match=re.escape("nope.toml: neither a shipped table (asic-45nm, ecp5) nor a TOML file"),
    ):
        load_table("nope.toml")
