"""The accelerator in Amaranth HDL: every block is a `wiring.Component`."""
