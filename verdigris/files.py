"""Checks on the files a user names, made before any work starts, so that a long run never
ends in a path error and no user file is overwritten by mistake.

Every check raises `UserFileError` with a message that names the path and what to do.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "UserFileError",
    "check_input_file",
    "check_output_file",
    "check_output_folder",
    "has_suffix",
]


class UserFileError(ValueError):
    """A path given by the user that cannot be read or written as asked."""


def has_suffix(path: str | Path, *suffixes: str) -> bool:
    """Whether `path` ends in one of `suffixes`, ignoring case (`LENET.VGP` is a program)."""
    return Path(path).suffix.lower() in suffixes


def check_input_file(path: str | Path, what: str) -> Path:
    """`path` as an existing regular file, or an error saying what it is instead."""
    path = Path(path)
    if path.is_dir():
        raise UserFileError(f"{path}: is a directory; give the {what} file")
    if not path.is_file():
        raise UserFileError(f"{path}: no such {what} file")
    return path


def _same_file(path: Path, other: Path) -> bool:
    try:
        return path.resolve() == other.resolve() or (
            path.exists() and other.exists() and path.samefile(other)
        )
    except OSError:
        return False


def _check_parent(path: Path) -> None:
    """The nearest existing ancestor of `path` must be a folder (missing folders are made
    when the file is written)."""
    for ancestor in path.absolute().parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise UserFileError(f"{path}: {ancestor} is a file, not a folder")
            return


def check_output_file(
    path: str | Path, suffixes: tuple[str, ...], what: str, *, protect: Iterable[Path] = ()
) -> Path:
    """`path` as a file that may be written: a name ending in one of `suffixes` (any case),
    not a folder, not one of the files in `protect` (the inputs of the same command), and
    under a folder (or a path where folders can be made)."""
    path = Path(path)
    if path.is_dir():
        raise UserFileError(f"{path}: is a directory; give a file name ending in {suffixes[0]}")
    if not has_suffix(path, *suffixes):
        names = " or ".join(suffixes)
        raise UserFileError(f"{path}: the {what} must be a {names} file; choose such a name")
    for other in protect:
        if _same_file(path, Path(other)):
            raise UserFileError(
                f"{path}: refusing to overwrite an input file of this command; choose another name"
            )
    _check_parent(path)
    return path


def check_output_folder(path: str | Path, what: str) -> Path:
    """`path` as a folder that exists or can be made."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserFileError(f"{path}: is a file; the {what} must be a folder")
    _check_parent(path)
    return path
