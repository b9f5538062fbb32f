"""The shipped energy tables: every entry pinned to its source value or to the rule that
scales it (docs/energy.md, "Tables"), the SRAM interpolation, the int8 MAC against
Accelergy's 45 nm example, and the ecp5 table against a measured FPGA accelerator."""

import math
from dataclasses import replace

import pytest

from verdigris.arch.config import load_config
from verdigris.energy import TABLES, load_table
from verdigris.energy.prices import prices

KB = 1024

# Horowitz, ISSCC 2014, Fig. 1.1.9 (45 nm, 0.9 V), in pJ: the numbers the paper gives.
HOROWITZ = {
    ("multiplier", "multiply", (("width", 8),)): 0.2,
    ("multiplier", "multiply", (("width", 32),)): 3.1,
    ("adder", "add", (("width", 8),)): 0.03,
    ("adder", "add", (("width", 32),)): 0.1,
    ("sram", "read", (("capacity_bytes", 8 * KB), ("width", 64))): 10.0,
    ("sram", "read", (("capacity_bytes", 32 * KB), ("width", 64))): 20.0,
    ("sram", "read", (("capacity_bytes", 1024 * KB), ("width", 64))): 100.0,
}
DRAM_RANGE = (1300.0, 2600.0)  # pJ per 64-bit access


def _values(table):
    return {(e.component, e.action, e.arguments): e.value for e in table.entries}


def test_the_shipped_tables():
    assert TABLES == ("asic-45nm", "ecp5")
    for name in TABLES:
        table = load_table(name)
        assert table.name == name
        for entry in table.entries:
            assert entry.source.strip(), entry.label()
            assert not entry.scaled or entry.rule.strip(), entry.label()


def test_asic_45nm_given_entries_are_the_papers_numbers_and_not_scaled():
    table = load_table("asic-45nm")
    for entry in table.entries:
        key = (entry.component, entry.action, entry.arguments)
        if key in HOROWITZ:
            assert entry.value == HOROWITZ[key], entry.label()
            assert not entry.scaled, entry.label()
            assert "Horowitz ISSCC 2014" in entry.source
        else:
            assert entry.scaled, f"{entry.label()} is not in the paper: it must say scaled"


def test_asic_45nm_every_scaled_entry_follows_its_rule():
    table = load_table("asic-45nm")
    values = _values(table)
    mult8, add32 = 0.2, 0.1
    expected = {}
    for width in (1, 2, 4, 16):  # multipliers: quadratic in width from the 8-bit multiply
        expected[("multiplier", "multiply", (("width", width),))] = mult8 * (width / 8) ** 2
    for width in (1, 2, 4, 16):  # adders: linear in width from the 32-bit add
        expected[("adder", "add", (("width", width),))] = add32 * width / 32
    for capacity, energy in ((8 * KB, 10.0), (32 * KB, 20.0), (1024 * KB, 100.0)):
        # writes as reads of the same SRAM
        expected[("sram", "write", (("capacity_bytes", capacity), ("width", 64)))] = energy
    expected[("dram", "read", (("width", 64),))] = sum(DRAM_RANGE) / 2
    expected[("dram", "write", (("width", 64),))] = sum(DRAM_RANGE) / 2
    expected[("mac", "gated", (("width", 8),))] = 0.03  # zero detect ~ one 8-bit add
    expected[("register", "write", (("width", 1),))] = add32 / 32  # one adder bit slice
    expected[("control", "cycle", ())] = 10 * add32  # ten 32-bit adds per cycle
    expected[("static", "leak", ())] = 0.0  # the paper has no leakage
    assert set(expected) | set(HOROWITZ) == set(values)
    for key, value in expected.items():
        assert values[key] == pytest.approx(value, rel=1e-12), key


def test_the_width_rules_agree_with_the_papers_other_point():
    """The quadratic multiplier rule from 8 bits predicts the paper's 32-bit multiply
    within 5%; the linear adder rule from 32 bits its 8-bit add within 20%."""
    assert pytest.approx(3.1, rel=0.05) == 0.2 * (32 / 8) ** 2
    assert pytest.approx(0.03, rel=0.2) == 0.1 * 8 / 32


def test_int8_mac_matches_accelergys_45nm_example():
    """8-bit multiply + 32-bit accumulate = 0.3 pJ, within 10% of the int8 MAC of
    Accelergy's 45 nm example (0.315 pJ)."""
    table = load_table("asic-45nm")
    mac = table.energy("multiplier", "multiply", width=8) + table.energy("adder", "add", width=32)
    assert mac == pytest.approx(0.3)
    assert mac == pytest.approx(0.315, rel=0.10)
    assert prices(load_config("tiny"), table).mac == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("capacity", "energy_64bit"),
    [
        (8 * KB, 10.0),  # the paper's points, exactly
        (32 * KB, 20.0),
        (1024 * KB, 100.0),
        (16 * KB, 10.0 * math.sqrt(2)),  # halfway in log capacity: geometric mean
        (2 * KB, 5.0),  # below 8 KB the 8-32 KB slope: energy ~ capacity^0.5
        (512, 2.5),
        # between 32 KB and 1 MB: slope log(5)/log(32)
        (256 * KB, 20.0 * 8 ** (math.log(5) / math.log(32))),
        (4096 * KB, 100.0 * 4 ** (math.log(5) / math.log(32))),  # extended above 1 MB
    ],
)
def test_sram_energy_is_interpolated_log_log_in_capacity(capacity, energy_64bit):
    table = load_table("asic-45nm")
    for action in ("read", "write"):
        per_byte = table.memory_pj_per_byte("sram", action, capacity)
        assert per_byte == pytest.approx(energy_64bit / 8, rel=1e-12)


# The ecp5 table's assumptions (energy/tables/ecp5.toml, `derivation`), in pJ per use.
LUT, DATAPATH_LUT, FLIP_FLOP, DSP, EBR = 0.4, 0.2, 0.1, 10.0, 10.0


def test_ecp5_entries_follow_their_derivation():
    values = _values(load_table("ecp5"))
    expected = {
        ("multiplier", "multiply", (("width", 8),)): DSP,
        ("multiplier", "multiply", (("width", 16),)): DSP,
        ("multiplier", "multiply", (("width", 32),)): 4 * DSP + 64 * DATAPATH_LUT,
        ("mac", "gated", (("width", 8),)): 6 * LUT,
        ("register", "write", (("width", 1),)): FLIP_FLOP,
        ("sram", "read", (("capacity_bytes", 2304), ("width", 64))): 2 * EBR,
        ("sram", "write", (("capacity_bytes", 2304), ("width", 64))): 2 * EBR,
        ("dram", "read", (("width", 64),)): sum(DRAM_RANGE) / 2,
        ("dram", "write", (("width", 64),)): sum(DRAM_RANGE) / 2,
        ("control", "cycle", ()): (300 * LUT + 300 * FLIP_FLOP) * 0.2 + 20,
        ("static", "leak", ()): 25.0,
    }
    expected[("multiplier", "multiply", (("width", 1),))] = 2.5 * DATAPATH_LUT  # an XNOR
    for width, products in ((4, 2), (2, 4)):  # packed products share the PE's DSP
        expected[("multiplier", "multiply", (("width", width),))] = DSP / products
    for width in (1, 2, 4, 8, 16, 32):  # carry-chain adders, one LUT4 per bit
        expected[("adder", "add", (("width", width),))] = width * DATAPATH_LUT
    assert set(expected) == set(values)
    for key, value in expected.items():
        assert values[key] == pytest.approx(value, rel=1e-12), key
    assert all(entry.scaled for entry in load_table("ecp5").entries)


def test_ecp5_block_ram_energy_does_not_grow_with_capacity():
    table = load_table("ecp5")
    for capacity in (512, 2304, 64 * KB, 16 * 1024 * KB):
        assert table.memory_pj_per_byte("sram", "read", capacity) == pytest.approx(2 * EBR / 8)


# An open 16-MAC accelerator on an iCE40UP5K measured 10.58 mW at 12 MHz.
ANCHOR_PJ_PER_MAC = 10.58e-3 / 12e6 / 16 * 1e12


def test_ecp5_mac_energy_is_not_below_the_measured_fpga_accelerator():
    """The all-in energy of one MAC at full utilization on `tiny` (16 PEs, as the anchor)
    at the anchor's 12 MHz: the MAC, its registers, its share of control and of static
    power. It must not fall below the anchor (>= 55 pJ per MAC, all-in); the dynamic part
    alone must be of the anchor's order (at least a tenth of it)."""
    assert pytest.approx(55.1, abs=0.1) == ANCHOR_PJ_PER_MAC
    config = replace(load_config("tiny"), clock_mhz=12)
    p = prices(config, load_table("ecp5"))
    dynamic = p.mac + p.register_bits_per_mac * p.register_bit + p.control_cycle / config.pe_count
    static = p.static_mw * 1e3 / config.clock_mhz / config.pe_count  # pJ per PE-cycle
    assert dynamic + static >= ANCHOR_PJ_PER_MAC
    assert dynamic >= ANCHOR_PJ_PER_MAC / 10


@pytest.mark.parametrize(("dataflow", "bits"), [("ws", 16), ("os", 8)])
def test_weight_register_writes_per_dataflow(dataflow, bits):
    """A loaded weight byte is written into the shadow and, at the swap, the active
    register in ws (hw/array.py); into its bank register only in os (hw/array_os.py)."""
    config = replace(load_config("tiny"), dataflow=dataflow)
    p = prices(config, load_table("asic-45nm"))
    assert p.register_bits_per_weight_byte == bits
    assert p.register_bits_per_mac == 8 + 32
