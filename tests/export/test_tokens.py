"""The trigger as CLIP tokenizes it, with the real BPE vocabulary from the open-clip-torch wheel."""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from faceset.export import tokens
from faceset.export.tokens import ClipBpe, check_trigger, find_bpe_file


@pytest.fixture(scope="module")
def bpe() -> ClipBpe:
    path = find_bpe_file()
    if path is None:
        pytest.skip("CLIP's BPE vocabulary ships in open-clip-torch, which is not installed")
    return ClipBpe.from_file(path)


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        # Ids verified with transformers' CLIPTokenizer (../shared/reference/trainers.md §8, §10).
        ("ohwx", [47993]),
        ("sks", [48136]),
        ("shs", [16184]),
        ("TOK", [27010]),
        ("a photo of a cat", [320, 1125, 539, 320, 2368]),
    ],
)
def test_known_token_ids(bpe: ClipBpe, text: str, ids: list[int]) -> None:
    assert bpe.encode(text) == ids


@pytest.mark.parametrize(("text", "count"), [("zwx", 2), ("p3r5on", 5), ("ohwx man", 2)])
def test_split_triggers(bpe: ClipBpe, text: str, count: int) -> None:
    assert len(bpe.encode(text)) == count


def test_rare_single_token_trigger_has_no_warning(bpe: ClipBpe) -> None:
    assert check_trigger("ohwx", bpe) == []


def test_split_trigger_warns_with_its_pieces(bpe: ClipBpe) -> None:
    (warning,) = check_trigger("zwx", bpe)

    assert "2 CLIP tokens (z + wx)" in warning


def test_common_word_trigger_warns(bpe: ClipBpe) -> None:
    (warning,) = check_trigger("banana", bpe)

    assert "common word" in warning


def test_trigger_with_a_known_meaning_warns(bpe: ClipBpe) -> None:
    (warning,) = check_trigger("sks", bpe)

    assert "rifle" in warning


def test_without_the_vocabulary_the_check_is_skipped_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tokens, "load_bpe", lambda path=None: None)

    (warning,) = check_trigger("janedoe")

    assert "open-clip-torch" in warning


def test_bpe_file_is_found_without_importing_open_clip(bpe: ClipBpe) -> None:
    # A fresh interpreter: importing open_clip would pull in torch and torchvision.
    code = (
        "import sys; from faceset.export.tokens import check_trigger;"
        " assert check_trigger('ohwx') == [], check_trigger('ohwx');"
        " assert 'open_clip' not in sys.modules and 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_matches_transformers_clip_tokenizer(bpe: ClipBpe, tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    # Build the tokenizer files from the same BPE file, as ../shared/reference/trainers.md §10.
    spec = importlib.util.find_spec("open_clip")
    assert spec is not None
    assert spec.submodule_search_locations
    pkg = Path(spec.submodule_search_locations[0])
    lines = gzip.open(pkg / "bpe_simple_vocab_16e6.txt.gz").read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (tmp_path / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n"
    )
    tok = transformers.CLIPTokenizer(
        str(tmp_path / "vocab.json"),
        str(tmp_path / "merges.txt"),
        pad_token="<|endoftext|>",
        model_max_length=77,
    )

    words = [
        "ohwx", "sks", "zwx", "p3r5on", "Jane Doe", "jnd", "photo of ohwx man, 1990s",
        "xqz", "vxl", "tk421", "o'brien", "hello-world", "mary.jane", "aaaa", "zyxw",
    ]  # fmt: skip
    for word in words:
        assert bpe.encode(word) == tok(word, add_special_tokens=False).input_ids, word


def test_the_default_trigger_needs_no_vocabulary_to_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = tokens.load_bpe()
    if real is not None:  # where the vocabulary is installed, the list is true to it
        assert all(len(real.tokens(t)) == 1 for t in tokens.KNOWN_SINGLE_TOKENS)
    monkeypatch.setattr(tokens, "load_bpe", lambda: None)  # as without open-clip-torch

    assert check_trigger("ohwx") == []
    assert "CLIP's vocabulary is not installed" in check_trigger("janedoe")[0]
