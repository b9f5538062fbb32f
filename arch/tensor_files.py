"""Model inputs from tensor files: .npy (a single-input model) or .npz (arrays named after
the inputs), the files `verdigris run` reads and calibration data comes in. Here, in arch/,
because whatever runs a Program (the API, the CLI, a board's host) reads its inputs without
the compiler.
"""

from __future__ import annotations

import logging
import zipfile
import zlib
from pathlib import Path
from tokenize import TokenError

import numpy as np

__all__ = ["read_named_arrays"]

logger = logging.getLogger(__name__)

# What np.load raises on a damaged file: besides I/O and value errors, a damaged .npy header
# fails in numpy's header parser (tokenize, ast) and a damaged .npz member in zlib.
_UNREADABLE = (
    OSError,
    ValueError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    SyntaxError,
    TokenError,
)
# The first bytes of a .npy file and of a .npz (zip) archive.
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def read_named_arrays(
    path: str | Path, names: list[str], error: type[Exception], what: str
) -> dict[str, np.ndarray]:
    """Arrays for the model inputs `names` from .npy (a single-input model) or .npz (arrays
    named after the inputs). A single-input model also takes an .npz holding one array of
    another name, and arrays beyond the inputs are ignored; both are logged as warnings, so
    the user hears what was used. Problems raise `error` with a message naming the file
    (`what` says what the file is for)."""
    path = Path(path)
    if path.is_dir():
        raise error(f"{path}: is a directory; give the {what} file (.npy or .npz)")
    if not path.is_file():
        raise error(f"{path}: no such {what} file")
    with path.open("rb") as stream:
        head = stream.read(len(_NPY_MAGIC))
    if not head.startswith((_NPY_MAGIC, _ZIP_MAGIC)):
        raise error(f"{path}: not a .npy or .npz file (save arrays with numpy.save or savez)")
    try:
        # Our own handle: np.load leaves the file open when a damaged .npy fails to parse.
        with path.open("rb") as stream:
            data = np.load(stream, allow_pickle=False)
            if isinstance(data, np.ndarray):
                arrays = {"": data}
            else:
                with data:
                    arrays = {key: data[key] for key in data.files}
    except _UNREADABLE as problem:
        raise error(f"{path}: not a readable .npy/.npz file: {problem}") from None
    if "" in arrays:
        if len(names) != 1:
            raise error(
                f"{path}: one array, but the model has inputs {names}; use an .npz with "
                "arrays named after the inputs"
            )
        return {names[0]: arrays[""]}
    if len(arrays) == 1 and len(names) == 1 and names[0] not in arrays:
        (only,) = arrays
        logger.warning("%s: using array '%s' for input '%s'", path, only, names[0])
        return {names[0]: arrays[only]}
    missing = [name for name in names if name not in arrays]
    if missing:
        raise error(
            f"{path}: has arrays {sorted(arrays)}, but the model's inputs are {names}; "
            f"name the arrays after the inputs (missing: {missing})"
        )
    extra = sorted(set(arrays) - set(names))
    if extra:
        logger.warning("%s: ignoring array(s) %s, which are not model inputs", path, extra)
    return {name: arrays[name] for name in names}
