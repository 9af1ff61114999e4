"""The trigger word as CLIP sees it: how many BPE tokens, and whether it already means something.

Stable Diffusion's text encoders use OpenAI CLIP's byte-level BPE. A trigger that is one token
trains one embedding; one that splits (``zwx`` -> ``z`` + ``wx``) spreads the identity over
pieces that also occur in other words. The vocabulary ships inside the ``open-clip-torch`` wheel
(``open_clip/bpe_simple_vocab_16e6.txt.gz``, MIT); it is found with ``importlib.util.find_spec``,
which locates the package without importing it (importing it would pull in torch).
"""

from __future__ import annotations

import functools
import gzip
import html
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
# Packages that ship the same file: open-clip-torch, then clip-anytorch.
BPE_PACKAGES = ("open_clip", "clip")
# The merges CLIP uses: the file's lines 1 .. 48,894 (49,152 ids - 256 bytes - 2 specials).
MERGES = 49152 - 256 - 2
# Ids are assigned in merge order, which follows frequency in CLIP's training text: a word with
# an id below this is common enough that the model already has a meaning for it (man 786,
# banana 8922, rifle 15354), which a person LoRA has to overwrite.
COMMON_TOKEN_ID = 20000
# Rare single tokens with a meaning that is known to leak into images.
KNOWN_MEANINGS = {
    "sks": "a rifle (Hugging Face's DreamBooth notes)",
}
# CLIP's pre-tokenizer, written with the stdlib ``re`` instead of the ``regex`` module:
# letters and digits are the same classes for ASCII; ``\p{L}`` becomes ``[^\W\d_]``.
_WORDS = re.compile(
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+",
    re.IGNORECASE,
)


@functools.cache
def _bytes_to_unicode() -> dict[int, str]:
    """Return CLIP's reversible byte -> printable character table (as in OpenAI's CLIP)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars, strict=True)}


@dataclass(frozen=True, slots=True)
class ClipBpe:
    """OpenAI CLIP's BPE: token strings to ids and merge ranks, read from the vocabulary file."""

    encoder: dict[str, int]
    ranks: dict[tuple[str, str], int]

    @classmethod
    def from_file(cls, path: Path) -> ClipBpe:
        lines = gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1 : MERGES + 1]]
        pairs = [(m[0], m[1]) for m in merges if len(m) == 2]
        if len(pairs) != MERGES:
            raise ValueError(f"{path} holds {len(pairs)} merges, not CLIP's {MERGES}")
        chars = list(_bytes_to_unicode().values())
        vocab = chars + [c + "</w>" for c in chars] + ["".join(p) for p in pairs]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        return cls({t: i for i, t in enumerate(vocab)}, {p: i for i, p in enumerate(pairs)})

    def tokens(self, text: str) -> list[str]:
        """Return the BPE token strings of ``text`` (lowercased, as CLIP does), no specials."""
        text = " ".join(html.unescape(html.unescape(text)).split()).lower()
        byte_chars = _bytes_to_unicode()
        out: list[str] = []
        for word in _WORDS.findall(text):
            out += self._merge("".join(byte_chars[b] for b in word.encode("utf-8")))
        return out

    def text_of(self, token: str) -> str:
        """Return the text a token string stands for (the byte characters decoded)."""
        decode = {c: b for b, c in _bytes_to_unicode().items()}
        data = bytes(decode[c] for c in token.removesuffix("</w>"))
        return data.decode("utf-8", errors="replace")

    def encode(self, text: str) -> list[int]:
        """Return the token ids of ``text`` without the start and end tokens."""
        return [self.encoder[t] for t in self.tokens(text)]

    def _merge(self, word: str) -> list[str]:
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            pairs = {(parts[i], parts[i + 1]) for i in range(len(parts) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, MERGES))
            if best not in self.ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return parts


KNOWN_SINGLE_TOKENS = frozenset({"ohwx"})
"""Triggers known to be one rare CLIP token (ohwx, the default, is token 47993 of OpenAI's
CLIP BPE), checked without the vocabulary installed."""


def find_bpe_file() -> Path | None:
    """Return the path of CLIP's BPE vocabulary inside an installed wheel, or None."""
    for package in BPE_PACKAGES:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            continue
        for folder in (spec and spec.submodule_search_locations) or ():
            path = Path(folder) / BPE_FILE
            if path.is_file():
                return path
    return None


@functools.cache
def load_bpe(path: Path | None = None) -> ClipBpe | None:
    """Return CLIP's tokenizer from ``path`` (default: the installed wheel's file), or None."""
    path = path or find_bpe_file()
    return ClipBpe.from_file(path) if path else None


def check_trigger(trigger: str, bpe: ClipBpe | None = None) -> list[str]:
    """Return warnings about ``trigger`` as a CLIP token; empty when it is one rare token."""
    bpe = bpe or load_bpe()
    if bpe is None and trigger in KNOWN_SINGLE_TOKENS:
        return []  # known without the vocabulary: nothing to warn about
    if bpe is None:
        return [
            "cannot check that the trigger is one CLIP token: CLIP's vocabulary is not installed"
            " (pip install --no-deps open-clip-torch)"
        ]
    tokens = bpe.tokens(trigger)
    if len(tokens) != 1:
        pieces = " + ".join(bpe.text_of(t) for t in tokens)
        return [
            f"trigger {trigger!r} is {len(tokens)} CLIP tokens ({pieces}), not one: pick a"
            " rare single token such as ohwx"
        ]
    word = bpe.text_of(tokens[0])
    if word in KNOWN_MEANINGS:
        return [f"trigger {trigger!r} already means {KNOWN_MEANINGS[word]} to the model"]
    token_id = bpe.encoder[tokens[0]]
    if token_id < COMMON_TOKEN_ID:
        return [
            f"trigger {trigger!r} is a common word to CLIP (token {token_id}): the model already"
            " has a meaning for it; a rare token such as ohwx starts cleaner"
        ]
    return []
