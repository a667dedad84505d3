"""Read the files packed in a Qt resource bundle (``.rcc``), as some Debian packages ship their sounds.

    files = read_qt_resources(Path("explore_farm_animals.rcc"))   # {"gcompris/src/.../owl.ogg": b"..."}

The format (Qt's ``rcc`` tool, versions 1-3): a ``qres`` header with the offsets of a node tree,
a name table and a data area. Tree nodes are 14 bytes (version 1) or 22 bytes (2 and later, which
add a modification time): a name offset and flags, then either a child count and the index of the
first child (directories) or a locale and a data offset (files). Names are UTF-16BE, prefixed by
their length and a hash. File data is prefixed by its size; zlib-compressed entries (flag 1) carry
Qt's ``qCompress`` format, a 4-byte uncompressed size before the zlib stream. zstd entries (flag 4,
Qt 6) are refused: no Debian 12 package we read uses them.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

_COMPRESSED, _DIRECTORY, _COMPRESSED_ZSTD = 1, 2, 4


class QtResourceError(ValueError):
    """A file that is not a readable Qt resource bundle; the message names it."""


def read_qt_resources(path: Path) -> dict[str, bytes]:
    """``{path inside the bundle: file bytes}`` of every file in the ``.rcc`` at ``path``."""
    blob = Path(path).read_bytes()
    try:
        return _parse(blob)
    except (struct.error, zlib.error, IndexError, UnicodeDecodeError, RecursionError) as err:
        raise QtResourceError(f"{path}: corrupt Qt resource bundle ({type(err).__name__}: {err})") from err
    except QtResourceError as err:
        raise QtResourceError(f"{path}: {err}") from err


def _parse(blob: bytes) -> dict[str, bytes]:
    if blob[:4] != b"qres":
        raise QtResourceError("not a Qt resource bundle (no 'qres' magic)")
    version, tree, data, names = struct.unpack_from(">IIII", blob, 4)
    if not 1 <= version <= 3:
        raise QtResourceError(f"unsupported Qt resource format version {version}")
    node_size = 14 if version == 1 else 22

    def name_at(offset: int) -> str:
        (length,) = struct.unpack_from(">H", blob, names + offset)
        start = names + offset + 6  # after the length and the name's hash
        return blob[start : start + 2 * length].decode("utf-16-be")

    files: dict[str, bytes] = {}
    pending = [(0, "")]  # (node index, parent path); node 0 is the unnamed root directory
    while pending:
        index, parent = pending.pop()
        base = tree + index * node_size
        name_offset, flags = struct.unpack_from(">IH", blob, base)
        path = f"{parent}/{name_at(name_offset)}".lstrip("/") if index else ""
        if flags & _DIRECTORY:
            count, first = struct.unpack_from(">II", blob, base + 6)
            if first + count > (len(blob) - tree) // node_size + 1:
                raise QtResourceError(f"directory {path or '/'} points past the end of the tree")
            pending.extend((child, path) for child in range(first, first + count))
            continue
        (offset,) = struct.unpack_from(">I", blob, base + 10)
        (size,) = struct.unpack_from(">I", blob, data + offset)
        payload = blob[data + offset + 4 : data + offset + 4 + size]
        if len(payload) != size:
            raise QtResourceError(f"{path}: data runs past the end of the file")
        if flags & _COMPRESSED_ZSTD:
            raise QtResourceError(f"{path}: zstd-compressed entries are not supported")
        files[path] = zlib.decompress(payload[4:]) if flags & _COMPRESSED else payload
    return files
