"""What an upload's bytes are, before they are read as CSV: a binary format named by its signature, and
gzip-compressed uploads (``.csv.gz``) decompressed as a stream.

Pure: no AWS. Decompression is bounded: at most ``chunk_bytes`` of output per step, so a small upload
that inflates enormously is stopped by the tier's size limit as the CSV bytes are counted, never
materialised.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator
from typing import Final

# The longest signature below; the validator holds this many first bytes before it decides.
SNIFF_BYTES: Final = 16
# A NUL byte this early means binary (CSV text never holds one; UTF-16 without a BOM does, too).
NUL_WINDOW: Final = 4096
GZIP_MAGIC: Final = b"\x1f\x8b"
_OUTPUT_STEP: Final = 256 * 1024

# (signature, what the file is, what to do instead); checked in this order.
SIGNATURES: Final[tuple[tuple[bytes, str], ...]] = (
    (GZIP_MAGIC, "gzip-compressed data; upload it with a name ending in .csv.gz, or uncompressed as .csv"),
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook is one); export the sheet as CSV UTF-8"),
    (b"PK\x05\x06", "an empty zip archive; export the sheet as CSV UTF-8"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Office file (an Excel .xls?); export it as CSV UTF-8"),
    (b"BZh", "bzip2-compressed data; only gzip (.csv.gz) or plain CSV is accepted"),
    (b"\xfd7zXZ\x00", "xz-compressed data; only gzip (.csv.gz) or plain CSV is accepted"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data; only gzip (.csv.gz) or plain CSV is accepted"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive; only gzip (.csv.gz) or plain CSV is accepted"),
    (b"PAR1", "a Parquet file; upload CSV"),
    (b"ARROW1", "an Arrow/Feather file; upload CSV"),
    (b"SQLite format 3\x00", "an SQLite database; upload CSV"),
    (b"%PDF-", "a PDF document; upload CSV"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image; upload CSV"),
    (b"\xff\xd8\xff", "a JPEG image; upload CSV"),
)  # fmt: skip


class ContentError(Exception):
    """The bytes cannot be read as the upload says they are; ``reason`` is for the tenant."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Signatures that are printable text could begin a CSV header ("PAR1,PAR2"): they name a format only
# when what follows within NUL_WINDOW is not text (a control byte, or bytes that are not UTF-8), as in
# those binary formats.
_CONTROL_BYTES: Final = re.compile(rb"[\x00-\x08\x0e-\x1f]")


def binary_format(head: bytes) -> str | None:
    """Why the file is not CSV text, when its first bytes say so (``head``: at least ``SNIFF_BYTES``
    of them, or the whole file), else None."""
    for signature, description in SIGNATURES:
        textual = all(0x20 <= byte < 0x7F for byte in signature)
        if head.startswith(signature) and (not textual or _not_text(head[:NUL_WINDOW])):
            return f"the file is {description}"
    nul = head.find(b"\x00", 0, NUL_WINDOW)
    if nul >= 0:
        return (
            f"the file holds a NUL byte at byte offset {nul}: it is a binary file (or UTF-16 text without "
            "a byte order mark), not CSV text; save it as CSV UTF-8"
        )
    return None


def _not_text(head: bytes) -> bool:
    if _CONTROL_BYTES.search(head) is not None:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start < len(head) - 3  # not merely a character cut at the window's end
    return False


def gunzip(chunks: Iterable[bytes], *, step: int = _OUTPUT_STEP) -> Iterator[bytes]:
    """The decompressed bytes of gzip data given as chunks (several members are read one after another,
    as ``gzip -d`` does). Raises ContentError when it is not gzip, is corrupt or ends early."""
    decompressor = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    read = 0  # compressed bytes taken so far
    in_member = False  # a member was begun and its end not seen yet
    for chunk in chunks:
        if not chunk:
            continue
        if read == 0 and not chunk.startswith(GZIP_MAGIC[: len(chunk)]):
            raise ContentError(_not_gzip(chunk))
        read += len(chunk)
        data = chunk
        while data:
            in_member = True
            try:
                out = decompressor.decompress(data, step)
            except zlib.error as error:
                raise ContentError(
                    f"the gzip data is corrupt ({error}); it was read up to byte {read} of the upload"
                ) from error
            if out:
                yield out
            if decompressor.eof:
                # Another member may follow (as `cat a.gz b.gz` makes); the next decompressor judges it.
                data, in_member = decompressor.unused_data, False
                decompressor = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
            else:
                data = decompressor.unconsumed_tail
    if in_member:
        raise ContentError(
            f"the gzip data ends after {read} bytes, before the end of its compressed stream: "
            "the upload is truncated (upload it again)"
        )


def _not_gzip(head: bytes) -> str:
    found = binary_format(head[:SNIFF_BYTES])
    what = found.removeprefix("the file is ") if found else "not gzip (it looks like plain text)"
    return f"the file name ends in .csv.gz but the content is {what}; name a plain CSV file .csv"
