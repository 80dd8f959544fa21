"""What is checked of a raw input file before it is parsed: its compression (plain text or gzip
with a ``.gz`` name), that it is UTF-8, and the sha256 that the data folder's README lists for
it. Every failure is an :class:`InputError` naming the file (and line) and what was expected."""

from __future__ import annotations

import codecs
import gzip
import hashlib
import re
from pathlib import Path


class InputError(ValueError):
    """Bad raw input. The message names the file (and line) and what was expected."""


# leading bytes of compressed files: gzip is read (with a .gz name), the others are refused
_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"PK\x03\x04": "zip",
          b"\x28\xb5\x2f\xfd": "zstd"}


def compression(path: Path) -> str | None:
    with path.open("rb") as probe:
        head = probe.read(6)
    return next((name for magic, name in _MAGIC.items() if head.startswith(magic)), None)


def check_compression(path: Path) -> None:
    """A text edge list is plain UTF-8, or gzip with a ``.gz`` name; anything else is refused."""
    kind = compression(path)
    named_gz = path.name.lower().endswith(".gz")
    if kind == "gzip" and not named_gz:
        raise InputError(f"{path}: gzip-compressed, but the name does not end in .gz; "
                         f"rename it to {path.name}.gz")
    if kind not in (None, "gzip"):
        raise InputError(f"{path}: {kind}-compressed; expected plain text or gzip (.gz): "
                         f"decompress it first")
    if named_gz and kind != "gzip":
        raise InputError(f"{path}: named .gz but not gzip-compressed; rename it without .gz")


def open_text(path: Path):
    if compression(path) == "gzip":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def raise_if_undecodable(path: Path) -> None:
    """Raise naming the line and byte offset of the first byte sequence that is not UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    opener = gzip.open if compression(path) == "gzip" else open
    offset, lines = 0, 1
    with opener(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                position = max(error.start, 0)
                line = lines + block.count(b"\n", 0, position)
                raise InputError(
                    f"{path}:{line}: byte {offset + position} ({block[position:position + 1]!r}) is not "
                    f"UTF-8; expected UTF-8 text (re-encode the file, e.g. iconv -t UTF-8)") from None
            offset += len(block)
            lines += block.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise InputError(f"{path}: ends inside a multi-byte character (byte {offset}); expected "
                             f"UTF-8 text") from None


# --- checksums -------------------------------------------------------------------------------

_README_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|[^|]*\|\s*`([0-9a-f]{64})`\s*\|", re.MULTILINE)


def expected_sha256(path: Path) -> str | None:
    """The sha256 that the README.md beside ``path`` lists for it, or None if none is listed."""
    readme = path.parent / "README.md"
    if not readme.is_file():
        return None
    for name, digest in _README_ROW.findall(readme.read_text(encoding="utf-8")):
        if name == path.name:
            return digest
    return None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path: str | Path) -> str | None:
    """Check ``path`` against its README's sha256. Returns the digest checked, None if unlisted."""
    path = Path(path)
    expected = expected_sha256(path)
    if expected is None:
        return None
    actual = sha256_of(path)
    if actual != expected:
        raise InputError(
            f"{path}: sha256 {actual} does not match {expected} listed in "
            f"{path.parent / 'README.md'}; the file is corrupt or was changed (dvc pull restores it)"
        )
    return actual
