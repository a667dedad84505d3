"""The CLIP byte-level BPE tokenizer (49408 tokens, context 77) that ImageBind's text side uses.

The merges file ``bpe_simple_vocab_16e6.txt.gz`` ships inside the PyPI wheel ``open_clip_torch``;
``fetch_clip_vocab`` extracts it from that wheel (downloaded with ``pip download --no-deps``, so
open_clip and its CUDA-bound dependencies are never installed). Lookup order for the file:
``$MARSSEP_CLIP_VOCAB``, then ``~/.cache/marssep/bpe_simple_vocab_16e6.txt.gz``.
"""

from __future__ import annotations

import functools
import gzip
import html
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import ftfy
import regex
import torch

VOCAB_NAME = "bpe_simple_vocab_16e6.txt.gz"
OPEN_CLIP_WHEEL = "open_clip_torch==3.3.0"
START, END = "<|startoftext|>", "<|endoftext|>"
_PATTERN = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)


def default_vocab_path() -> Path:
    env = os.environ.get("MARSSEP_CLIP_VOCAB")
    return Path(env) if env else Path.home() / ".cache" / "marssep" / VOCAB_NAME


def fetch_clip_vocab(dest: Path | None = None) -> Path:
    """Put the CLIP merges file at ``dest`` (default path above), taking it from the PyPI wheel."""
    dest = dest or default_vocab_path()
    if dest.is_file():
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, OPEN_CLIP_WHEEL],
            check=True,
        )
        wheel = next(Path(tmp).glob("open_clip_torch-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(f"open_clip/{VOCAB_NAME}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(dest)
    return dest


@functools.lru_cache
def _byte_alphabet() -> dict[int, str]:
    """Map every byte to a printable unicode character (printable Latin-1 bytes map to themselves,
    the others to 256, 257, ...). The dict's order is the vocabulary order: printable bytes first."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [byte for byte in range(256) if byte not in printable]
    mapping = {byte: chr(byte) for byte in printable}
    mapping.update({byte: chr(256 + n) for n, byte in enumerate(others)})
    return mapping


def _clean(text: str) -> str:
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return regex.sub(r"\s+", " ", text).strip().lower()


class ClipTokenizer:
    """``tokenizer(["a dog barking"])`` -> ``(1, 77)`` int64 ids: start, BPE tokens, end, zeros."""

    def __init__(self, vocab_path: Path | None = None, context_length: int = 77):
        path = vocab_path or default_vocab_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: CLIP BPE merges file missing; run 'marssep encoders fetch-vocab' "
                "(scripts/install.sh does) or set MARSSEP_CLIP_VOCAB"
            )
        lines = gzip.open(path, "rt", encoding="utf-8").read().split("\n")
        merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
        symbols = list(_byte_alphabet().values())
        vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + [START, END]
        self.encoder = {token: index for index, token in enumerate(vocab)}
        self.decoder = {index: token for token, index in self.encoder.items()}
        self.ranks = {merge: rank for rank, merge in enumerate(merges)}
        self.context_length = context_length
        self.start_id, self.end_id = self.encoder[START], self.encoder[END]
        self._cache: dict[str, list[str]] = {}

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def _bpe(self, word: str) -> list[str]:
        if word in self._cache:
            return self._cache[word]
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            pairs = {(parts[i], parts[i + 1]) for i in range(len(parts) - 1)}
            best = min(pairs, key=lambda pair: self.ranks.get(pair, float("inf")))
            if best not in self.ranks:
                break
            merged, i = [], 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        self._cache[word] = parts
        return parts

    def encode(self, text: str) -> list[int]:
        alphabet = _byte_alphabet()
        ids = []
        for piece in _PATTERN.findall(_clean(text)):
            word = "".join(alphabet[b] for b in piece.encode("utf-8"))
            ids.extend(self.encoder[token] for token in self._bpe(word))
        return ids

    def __call__(self, texts: list[str] | str) -> torch.Tensor:
        texts = [texts] if isinstance(texts, str) else texts
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [self.start_id, *self.encode(text), self.end_id]
            if len(ids) > self.context_length:  # truncate, keeping the end token last
                ids = ids[: self.context_length - 1] + [self.end_id]
            out[row, : len(ids)] = torch.tensor(ids)
        return out
