"""Blocks with one deliberate fault, for the tests that show a check can fail."""

from amaranth.hdl import Module
from amaranth.lib import wiring


def faulty(block_class):
    """A base class for faulty variants of `block_class` (built from an AccelConfig): each
    wraps a correct block, built from `inner_config()`, and drives the ports named in
    `TAMPERED` (as in the generated Verilog: a nested member by its path joined with "__",
    such as "control__free") through `tamper(m, inner)` instead of connecting them. As it is,
    the base class is faithful, which shows that wrapping alone changes nothing."""

    class Faulty(block_class):
        TAMPERED = frozenset()

        def inner_config(self):
            return self.config

        def tamper(self, m, inner):
            pass

        def elaborate(self, _platform):
            m = Module()
            m.submodules.inner = inner = block_class(self.inner_config())
            inner_ports = {path: port for path, _, port in inner.signature.flatten(inner)}
            for path, member, outer in self.signature.flatten(self):
                if "__".join(map(str, path)) in self.TAMPERED:
                    continue
                port = inner_ports[path]
                if member.flow is wiring.In:
                    m.d.comb += port.eq(outer)
                else:
                    m.d.comb += outer.eq(port)
            self.tamper(m, inner)
            return m

    Faulty.__name__ = Faulty.__qualname__ = f"Faulty{block_class.__name__}"
    return Faulty
