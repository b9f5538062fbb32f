"""The layer tracker (boards/tracker.py) in Amaranth's simulator, on counter traces made up
cycle by cycle: the host's snapshots from its records equal the C++ harness's rule (in each
cycle, every boundary the completion counters reach takes that cycle's counters), for
boundaries far apart, in one cycle and in consecutive cycles; a third record while two wait
is reported lost."""

import random

from amaranth.sim import Simulator

from verdigris.arch.counters import ACTIVITY_COUNTERS, COMPLETION_COUNTERS, COUNTERS
from verdigris.arch.host_port import boundary_reached, snapshots_from_records
from verdigris.arch.serial_link import RECORD_WORDS
from verdigris.boards.tracker import LayerTracker

SHAPES = {
    name: 48 if name.endswith("bytes") or name.startswith("macs") else 32 for name in COUNTERS
}
MAX_TARGETS = 8
NEVER = (2**32 - 1,) * 4


def _trace(steps):
    """Counters per cycle: the completion counts advance by `steps` (a list of 4-tuples of
    increments, one per cycle); every activity counter is a different function of the cycle."""
    counts, trace = [0, 0, 0, 0], []
    for cycle, step in enumerate(steps):
        counts = [c + s for c, s in zip(counts, step, strict=True)]
        load, compute, nops, store = counts
        values = {name: (i + 1) * cycle + i for i, name in enumerate(ACTIVITY_COUNTERS)}
        values |= dict(zip(COMPLETION_COUNTERS, (load, compute + nops, nops, store), strict=True))
        trace.append(values)
    return trace


def _expected(trace, targets):
    """The harness's snapshots: in each cycle, every next boundary reached takes its counters."""
    snapshots, taken = [], 0
    for values in trace:
        while taken < len(targets) and boundary_reached(values, targets[taken]):
            snapshots.append(values)
            taken += 1
    return snapshots


def _run(trace, targets):
    dut = LayerTracker(SHAPES, max_targets=MAX_TARGETS)
    out = {}

    async def bench(ctx):
        for i, target in enumerate([*targets, NEVER]):
            ctx.set(dut.target_addr, i)
            ctx.set(dut.target_data, sum(v << (32 * j) for j, v in enumerate(target)))
            ctx.set(dut.target_we, 1)
            await ctx.tick()
        ctx.set(dut.target_we, 0)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for values in trace:  # cycle 0, 1, ... of the run
            for name, value in values.items():
                ctx.set(getattr(dut, name), value)
            await ctx.tick()
        ctx.set(dut.done, 1)
        for _ in range(3 * len(COUNTERS)):  # the records drain
            await ctx.tick()
        out["records"], out["overrun"] = ctx.get(dut.records), ctx.get(dut.overrun)
        records = []
        for r in range(out["records"]):
            words = []
            for i in range(len(COUNTERS)):
                ctx.set(dut.record_addr, r * RECORD_WORDS + i)
                await ctx.tick()
                words.append(ctx.get(dut.record_data))
            records.append(dict(zip(COUNTERS, words, strict=True)))
        out["list"] = records

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out


def _check(steps, targets):
    trace = _trace(steps)
    got = _run(trace, targets)
    assert not got["overrun"]
    assert got["records"] == len(targets)
    snapshots = snapshots_from_records(targets, trace[-1], got["list"])
    assert snapshots == _expected(trace, targets)


def test_boundaries_far_apart():
    steps = [(1, 0, 0, 0)] * 40 + [(0, 1, 0, 0)] * 60 + [(0, 0, 0, 1)] * 80
    _check(steps, [(10, 0, 0, 0), (40, 30, 0, 0), (40, 60, 0, 50)])


def test_two_boundaries_in_one_cycle_and_one_the_cycle_after():
    """An empty layer: its boundary is reached in the cycle of the one before. The tracker
    records them in consecutive cycles; the host finds the cycle each was reached in."""
    steps = [(1, 0, 0, 0)] * 30 + [(0, 0, 0, 1)] * 100
    # 20 loads: reached in cycle 19 (both), store 1: cycle 30; store 2: cycle 31.
    targets = [(20, 0, 0, 0), (20, 0, 0, 0), (30, 0, 0, 1), (30, 0, 0, 2)]
    trace = _trace(steps)
    got = _run(trace, targets)
    assert got["overrun"]  # the fourth record came while two waited: lost, and said so
    _check(steps, targets[:2])
    _check(steps, targets[2:])


def test_random_traces():
    rng = random.Random(5)
    for _ in range(3):
        steps = [tuple(int(rng.random() < 0.3) for _ in range(4)) for _ in range(300)]
        trace = _trace(steps)
        # Targets at cycles at least 2 * len(COUNTERS) apart (no overrun), some repeated.
        cycles = sorted(rng.sample(range(0, 300, 2 * len(COUNTERS)), 3))
        targets = []
        for cycle in cycles:
            values = trace[cycle]
            target = tuple(values[name] for name in COMPLETION_COUNTERS)
            targets += [target] * rng.choice((1, 2))
        _check(steps, targets[: MAX_TARGETS - 1])
