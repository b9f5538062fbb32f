"""Emits the instruction stream and the dependency tokens that order it.

Tokens are counted semaphores (docs/isa.md): the i-th pop on a counter is satisfied by the
i-th push on it. The emitter numbers pushes as it emits them, so a dependency is written as
"this instruction must not start before push #j on counter c has happened"; `_wait` adds
NOPs that pop the pushes in between, so counts always match. Because every pop refers to a
push emitted earlier, running the stream one instruction at a time never waits: with
in-order units and in-order fetch, the program cannot deadlock.

The counters, and which unit pushes and pops each with which flag, are
`verdigris.arch.isa.TOKEN_COUNTERS`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from verdigris.arch.isa import TOKEN_COUNTERS, Deps, Finish, Instruction, Nop, Unit

__all__ = ["Emitter", "Token"]

# Counter name (as `push` and `Token` take it) -> who pushes and pops it, with which flag.
_COUNTERS = {counter.name: counter for counter in TOKEN_COUNTERS}


@dataclass(frozen=True)
class Token:
    """Push number `number` (1-based) on `counter`."""

    counter: str
    number: int


class Emitter:
    def __init__(self):
        self.instructions: list[Instruction] = []
        self._pushed = dict.fromkeys(_COUNTERS, 0)
        self._popped = dict.fromkeys(_COUNTERS, 0)
        # Pops to attach to the next instruction of a unit.
        self._pending: dict[Unit, set[str]] = {unit: set() for unit in Unit}
        # The last instruction index per unit (to attach pushes after the fact).
        self._last: dict[Unit, int | None] = dict.fromkeys(Unit)

    # ---------------------------------------------------------------- emitting

    def emit(self, instruction: Instruction) -> int:
        unit = instruction.unit
        if self._pending[unit]:  # most instructions pop nothing: no copy for those
            flags = {name: True for name in self._flags_for_pops(unit)}
            self._pending[unit] = set()
            instruction = replace(instruction, deps=replace(instruction.deps, **flags))
        self.instructions.append(instruction)
        self._last[unit] = len(self.instructions) - 1
        return len(self.instructions) - 1

    def _flags_for_pops(self, unit: Unit) -> list[str]:
        return [_COUNTERS[counter].pop_flag for counter in self._pending[unit]]

    def push(self, counter: str) -> Token:
        """Make the last instruction of the pushing unit push on `counter`."""
        unit, flag = _COUNTERS[counter].pusher, _COUNTERS[counter].push_flag
        index = self._last[unit]
        if index is None or getattr(self.instructions[index].deps, flag):
            index = self.emit(Nop(deps=Deps(), target=unit))
        current = self.instructions[index]
        self.instructions[index] = replace(current, deps=replace(current.deps, **{flag: True}))
        self._pushed[counter] += 1
        return Token(counter, self._pushed[counter])

    def push_on_nop(self, counter: str) -> Token:
        """A NOP of the pushing unit that pushes on `counter`. Later pushes still go to
        the unit's instruction before it: a NOP completes the cycle after it starts,
        before the GEMMs before it complete, so only a release of what those GEMMs read
        may use it. (It also takes any pops still waiting for the unit; the lowering
        gives those to the computes before it.)"""
        unit = _COUNTERS[counter].pusher
        last = self._last[unit]
        self.emit(Nop(deps=Deps(), target=unit))
        token = self.push(counter)
        self._last[unit] = last
        return token

    def wait(self, token: Token | None) -> None:
        """The next instruction of the popping unit starts after `token`'s push."""
        if token is None:
            return
        unit = _COUNTERS[token.counter].popper
        counter = token.counter
        if token.number > self._pushed[counter]:
            raise AssertionError(f"waiting for {token} before it is pushed")
        while self._popped[counter] < token.number:
            if counter in self._pending[unit]:
                self.emit(Nop(deps=Deps(), target=unit))  # carries the pending pop
            self._pending[unit].add(counter)
            self._popped[counter] += 1

    def finish(self) -> list[Instruction]:
        for unit in Unit:
            if self._pending[unit]:
                self.emit(Nop(deps=Deps(), target=unit))
        self.instructions.append(Finish(deps=Deps()))
        return self.instructions

    # ---------------------------------------------------------------- helpers

    def relay_store_to_load(self, store_done: Token) -> Token:
        """Loads cannot wait on stores directly: a compute NOP waits for the store and
        pushes a token the load can wait for."""
        self.wait(store_done)
        self.emit(Nop(deps=Deps(), target=Unit.COMPUTE))
        return self.push("c2l")
