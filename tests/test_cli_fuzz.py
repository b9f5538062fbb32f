"""Property test of the command line (issue #9): random bytes, truncated files and random
arrays of every dtype and shape given to `compile`, `inspect` and `run` on every backend get
a typed one-line error or a correct result, never a traceback, and nothing is written
outside the output path."""

import contextlib
import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from verdigris.cli import main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
LENET = EXAMPLES / "models" / "lenet_qdq.onnx"
SAMPLES = EXAMPLES / "digits_samples.npy"

DTYPES = st.one_of(
    hnp.boolean_dtypes(),
    hnp.integer_dtypes(),
    hnp.unsigned_integer_dtypes(),
    hnp.floating_dtypes(),
    hnp.complex_number_dtypes(),
)
ANY_ARRAY = hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=3))
# Images of the model's shape, with every float value: NaN, infinities, huge, subnormal.
IMAGES = hnp.arrays(
    np.float32,
    st.tuples(st.integers(1, 3), st.just(1), st.just(8), st.just(8)),
    elements=st.floats(width=32, allow_nan=True, allow_infinity=True),
)
NUMERIC_IMAGES = hnp.arrays(
    np.float32,
    st.tuples(st.integers(1, 2), st.just(1), st.just(8), st.just(8)),
    elements=st.floats(width=32, allow_nan=False),  # infinities and float32's extremes too
)


class _Files(dict):
    """The valid files by kind, and a folder for the examples; a short repr keeps
    hypothesis' reports readable."""

    def __repr__(self) -> str:
        return "<valid onnx, vgp and npy files>"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The valid files that the random ones are cut from."""
    folder = tmp_path_factory.mktemp("valid")
    program = folder / "lenet.vgp"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["compile", str(LENET), "-o", str(program)]) == 0
    return _Files(
        onnx=LENET.read_bytes(),
        vgp=program.read_bytes(),
        npy=SAMPLES.read_bytes(),
        base=tmp_path_factory.mktemp("examples"),
    )


def _verdigris(folder: Path, *arguments: str) -> tuple[int, str, str]:
    """Run the CLI in-process in `folder`; its exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(arguments))
    finally:
        os.chdir(cwd)
    return code, out.getvalue(), err.getvalue()


def _check(folder: Path, *arguments: str, output: str | None = None) -> tuple[int, str]:
    before = {p: p.read_bytes() for p in folder.iterdir()}
    code, out, err = _verdigris(folder, *arguments)
    assert code in (0, 2), (arguments, code, err)
    assert "Traceback" not in err and "internal error" not in err, err
    if code == 2:
        errors = [line for line in err.splitlines() if ": error: " in line]
        assert len(errors) == 1, err
    after = {p: p.read_bytes() for p in folder.iterdir()}
    written = {p for p in after if before.get(p) != after[p]}
    assert written <= {folder / output} if output else not written, written
    return code, out


def _folder(files) -> Path:
    """A fresh folder for one example, under pytest's temporary folder (removed with it)."""
    return Path(tempfile.mkdtemp(prefix="example-", dir=files["base"]))


FUZZ = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(
    kind=st.sampled_from(["onnx", "vgp", "npy"]),
    damage=st.sampled_from(["random", "truncate", "flip"]),
    blob=st.binary(max_size=200),
    where=st.floats(0, 1, exclude_max=True),
)
def test_random_and_truncated_files(files, kind, damage, blob, where):
    valid = files[kind]
    cut = int(where * len(valid))
    content = {
        "random": blob,
        "truncate": valid[:cut],
        "flip": valid[:cut] + bytes([valid[cut] ^ 0xFF]) + valid[cut + 1 :],
    }[damage]
    folder = _folder(files)
    (folder / "model.onnx").write_bytes(files["onnx"])
    (folder / "x.npy").write_bytes(files["npy"])
    name = {"onnx": "model.onnx", "vgp": "p.vgp", "npy": "x.npy"}[kind]
    (folder / name).write_bytes(content)
    if kind == "npy":
        for backend in ("golden", "isasim"):
            _check(folder, "run", "model.onnx", "--input", "x.npy", "--backend", backend)
    else:
        _check(folder, "inspect", name)
        _check(folder, "run", name, "--input", "x.npy", "--backend", "isasim")
    if kind == "onnx":
        _check(folder, "compile", name, "-o", "out.vgp", output="out.vgp")


@FUZZ
@given(array=ANY_ARRAY, backend=st.sampled_from(["golden", "isasim", "rtl"]))
def test_random_arrays_are_refused_alike_on_every_backend(files, array, backend):
    folder = _folder(files)
    (folder / "model.onnx").write_bytes(files["onnx"])
    (folder / "p.vgp").write_bytes(files["vgp"])
    np.save(folder / "x.npy", array)
    model = "model.onnx" if backend == "golden" else "p.vgp"
    # No random array of another shape or of a non-float type fits LeNet's float input, so
    # every one is refused (before the RTL core would be built).
    code, _ = _check(folder, "run", model, "--input", "x.npy", "--backend", backend)
    assert code == 2


@FUZZ
@given(images=IMAGES)
def test_images_with_any_float_value_agree_between_golden_and_isasim(files, images):
    folder = _folder(files)
    (folder / "model.onnx").write_bytes(files["onnx"])
    (folder / "p.vgp").write_bytes(files["vgp"])
    np.save(folder / "x.npy", images)
    golden, _ = _check(
        folder, "run", "model.onnx", "--input", "x.npy", "--output", "g.npy", output="g.npy"
    )
    simulated, _ = _check(
        folder,
        "run",
        "p.vgp",
        "--input",
        "x.npy",
        "--backend",
        "isasim",
        "--raw",
        "--output",
        "s.npy",
        output="s.npy",
    )
    assert golden == simulated
    if golden == 0:  # NaN is refused alike; every other value saturates alike
        _check(
            folder,
            "run",
            "model.onnx",
            "--input",
            "x.npy",
            "--raw",
            "--output",
            "r.npy",
            output="r.npy",
        )
        np.testing.assert_array_equal(np.load(folder / "r.npy"), np.load(folder / "s.npy"))


@pytest.fixture(scope="module")
def rtl_cache(rtl_build_root):
    """The CLI finds the session's Verilator builds through VERDIGRIS_BUILD_DIR."""
    if rtl_build_root is None:
        yield
        return
    os.environ["VERDIGRIS_BUILD_DIR"] = str(rtl_build_root)
    yield
    del os.environ["VERDIGRIS_BUILD_DIR"]


@pytest.mark.verilator
@pytest.mark.usefixtures("rtl_cache")
@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(images=NUMERIC_IMAGES)
def test_images_with_extreme_values_are_bit_exact_on_the_rtl(files, images):
    folder = _folder(files)
    (folder / "p.vgp").write_bytes(files["vgp"])
    np.save(folder / "x.npy", images)
    for backend in ("isasim", "rtl"):
        code, _ = _check(
            folder,
            "run",
            "p.vgp",
            "--input",
            "x.npy",
            "--backend",
            backend,
            "--raw",
            "--output",
            f"{backend}.npy",
            output=f"{backend}.npy",
        )
        assert code == 0
    np.testing.assert_array_equal(np.load(folder / "isasim.npy"), np.load(folder / "rtl.npy"))
