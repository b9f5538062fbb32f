"""Executors and models: golden reference, instruction simulator, RTL harnesses, energy."""
