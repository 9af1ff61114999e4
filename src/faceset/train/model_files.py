"""Base models of the transformer families from the files already on this disk, offline.

A base model is one of:

- a diffusers folder (``model_index.json`` and one subfolder per component);
- a model id already in the Hugging Face cache (``~/.cache/huggingface/hub``; ``HF_HOME`` and
  ``HF_HUB_CACHE`` respected), read from its snapshot folder without asking the hub;
- one ``.safetensors`` file holding the diffusion model alone, in ComfyUI's (BFL's, Tongyi's,
  Qwen's) key layout or diffusers'. The text encoder, its tokenizer and the VAE come from
  ``--text-encoder``/``--vae``, else from beside the file or ComfyUI's ``models/text_encoders``
  and ``models/vae`` (Forge: ``models/text_encoder``, ``models/VAE``), else from the Hugging
  Face cache (tokenizers).

The small configs a single file lacks ship in ``train/configs/<variant>/`` (a diffusers folder
without weights or tokenizers), written from the published configs
(../shared/reference/dit-families.md section 1.1); the variant (klein 4B or 9B, ...) is the one
whose width and depth match the file's tensors. diffusers' ``from_single_file`` is always given
that folder, so it never asks the hub (reference section 6.2). Tokenizers are not shipped: they
are megabytes, and must come from the user's files.

:func:`plan` decides where every component comes from, reading file headers only (no torch), so
``faceset models`` can say whether a file is trainable; :func:`load` loads what it planned.
Every failure is one line naming the missing file and the flag that supplies it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faceset.train import families
from faceset.train.errors import BaseModelError

log = logging.getLogger(__name__)

CONFIGS = Path(__file__).parent / "configs"
"""The shipped config folders, one per variant: ``flux2-klein-4b``, ``zimage``, ..."""

_MAX_HEADER = 100 * 1024 * 1024
_PREFIXES = ("model.diffusion_model.", "diffusion_model.")
"""Prefixes of a diffusion model's keys inside a ComfyUI/A1111 checkpoint."""
_TE_DIRS = ("text_encoders", "clip", "text_encoder")
"""ComfyUI's (new and old) and Forge's folder names for text encoders, under ``models/``."""
_VAE_DIRS = ("vae", "VAE")
_MODEL_DIRS = ("diffusion_models", "unet", "checkpoints", "Stable-diffusion", "Unet")
"""Folders under ``models/`` that hold diffusion models (ComfyUI, A1111/Forge)."""

KNOWN_TEXT_ENCODERS = {
    "flux2-klein-4b": ("qwen_3_4b.safetensors",),
    "flux2-klein-9b": ("qwen_3_8b.safetensors",),
    "zimage": ("qwen_3_4b.safetensors",),
    "zimage-turbo": ("qwen_3_4b.safetensors",),
    "qwen-image": ("qwen_2.5_vl_7b.safetensors",),
    "flux1-dev": ("clip_l.safetensors", "t5xxl_fp16.safetensors", "t5xxl_fp8_e4m3fn.safetensors"),
}
"""ComfyUI's file names (Comfy-Org split_files, reference section 6.2), tried before a scan."""
KNOWN_VAES = {
    "flux2-klein-4b": ("flux2-vae.safetensors",),
    "flux2-klein-9b": ("flux2-vae.safetensors",),
    "zimage": ("ae.safetensors",),
    "zimage-turbo": ("ae.safetensors",),
    "qwen-image": ("qwen_image_vae.safetensors",),
    "flux1-dev": ("ae.safetensors",),
}

# Where a tokenizer may already be in the Hugging Face cache: (repo id, subfolder).
_CACHED_TOKENIZERS: dict[str, tuple[tuple[str, str], ...]] = {
    "qwen3": (
        ("Qwen/Qwen3-4B", ""),
        ("Qwen/Qwen3-8B", ""),
        ("black-forest-labs/FLUX.2-klein-base-4B", "tokenizer"),
        ("black-forest-labs/FLUX.2-klein-4B", "tokenizer"),
        ("black-forest-labs/FLUX.2-klein-base-9B", "tokenizer"),
        ("black-forest-labs/FLUX.2-klein-9B", "tokenizer"),
        ("Tongyi-MAI/Z-Image", "tokenizer"),
        ("Tongyi-MAI/Z-Image-Turbo", "tokenizer"),
    ),
    "qwen2_5_vl": (
        ("Qwen/Qwen-Image", "tokenizer"),
        ("Qwen/Qwen-Image-2512", "tokenizer"),
        ("Qwen/Qwen2.5-VL-7B-Instruct", ""),
    ),
    "clip_text_model": (
        ("black-forest-labs/FLUX.1-dev", "tokenizer"),
        ("openai/clip-vit-large-patch14", ""),
    ),
    "t5": (("black-forest-labs/FLUX.1-dev", "tokenizer_2"), ("google/t5-v1_1-xxl", "")),
}
_ENCODER_NAMES = {
    "qwen3": "Qwen3",
    "qwen2_5_vl": "Qwen2.5-VL",
    "clip_text_model": "CLIP-L",
    "t5": "T5-XXL",
}


# --- file headers (no torch) ----------------------------------------------------------------


def read_header(path: Path) -> dict[str, list[int]]:
    """Return the tensor shapes of a ``.safetensors`` file by name, from its header alone."""
    try:
        with path.open("rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            if size > _MAX_HEADER:
                raise ValueError
            header = json.loads(f.read(size))
    except (OSError, ValueError, struct.error):
        raise BaseModelError(f"{path} is not a readable .safetensors file") from None
    return {k: list(v.get("shape", [])) for k, v in header.items() if k != "__metadata__"}


def strip_prefix(names: Iterable[str]) -> str:
    """Return the prefix (``model.diffusion_model.``, ...) every diffusion-model key carries."""
    names = list(names)
    for prefix in _PREFIXES:
        if names and sum(n.startswith(prefix) for n in names) > len(names) // 2:
            return prefix
    return ""


@dataclass(frozen=True, slots=True)
class FileKind:
    """What a ``.safetensors`` file holds, from its tensor names and shapes."""

    role: str
    """``diffusion model``, ``text encoder``, ``vae``, ``lora`` or ``unknown``."""
    kind: str = ""
    """Text encoder: its transformers ``model_type`` (qwen3, qwen2_5_vl, clip_text_model, t5);
    VAE: ``ldm`` (FLUX.1 / FLUX.2 layout), ``flux2`` (with its BatchNorm), ``wan``,
    ``diffusers``."""
    width: int = 0
    """Text encoder: hidden size; VAE: latent channels."""


def kind_of(shapes: dict[str, list[int]]) -> FileKind:
    """Return what a file with these tensors is."""
    names = set(shapes)

    def first(*keys: str) -> list[int] | None:
        return next((shapes[k] for k in keys if k in shapes), None)

    if any("lora_" in n or ".lokr_" in n or ".hada_" in n for n in names):
        return FileKind("lora")
    qwen_norm = any(
        re.match(r"(model\.)?(language_model\.)?layers\.0\.self_attn\.q_norm", n) for n in names
    )
    embed = first(
        "model.embed_tokens.weight",
        "embed_tokens.weight",
        "model.language_model.embed_tokens.weight",
    )
    if embed is not None and len(embed) == 2:
        if any(n.startswith(("visual.", "model.visual.")) for n in names) or (
            "model.language_model.embed_tokens.weight" in names
        ):
            return FileKind("text encoder", "qwen2_5_vl", embed[1])
        return FileKind("text encoder", "qwen3" if qwen_norm else "qwen2", embed[1])
    clip = first(
        "text_model.embeddings.token_embedding.weight", "embeddings.token_embedding.weight"
    )
    if clip is not None:
        return FileKind("text encoder", "clip_text_model", clip[1])
    t5 = first("shared.weight", "encoder.embed_tokens.weight")
    if t5 is not None and any(n.startswith("encoder.block.") for n in names):
        return FileKind("text encoder", "t5", t5[1])
    vae = _vae_kind(shapes)
    if vae is not None:
        return vae
    prefix = strip_prefix(names)
    if detect_family(names, prefix) is not None:
        return FileKind("diffusion model")
    return FileKind("unknown")


def _vae_kind(shapes: dict[str, list[int]]) -> FileKind | None:
    prefix = next(
        (p for p in ("first_stage_model.", "vae.") if any(k.startswith(p) for k in shapes)), ""
    )
    names = {k[len(prefix) :] for k in shapes if k.startswith(prefix)}
    get = {k[len(prefix) :]: v for k, v in shapes.items() if k.startswith(prefix)}
    if "encoder.conv1.weight" in names and any(n.startswith("decoder.upsamples.") for n in names):
        z = get.get("conv2.weight", [0])
        return FileKind("vae", "wan", z[0])
    if "encoder.conv_in.weight" in names and "decoder.conv_in.weight" in names:
        conv_in = get["decoder.conv_in.weight"]
        latent = conv_in[1] if len(conv_in) > 1 else 0
        if len(conv_in) == 5:  # 3-D convolutions: Qwen-Image's (Wan's) VAE in diffusers' layout
            return FileKind("vae", "wan-diffusers", latent)
        diffusers = any(n.startswith("encoder.down_blocks.") for n in names)
        if "bn.running_mean" in names:
            # FLUX.2's VAE: the decoder takes the latent after post_quant_conv, 32 channels.
            return FileKind("vae", "diffusers" if diffusers else "flux2", latent)
        return FileKind("vae", "diffusers" if diffusers else "ldm", latent)
    return None


def detect_family(names: Iterable[str], prefix: str = "") -> str | None:
    """Return the transformer family of a diffusion model's key names; None: not one."""
    names = {n[len(prefix) :] for n in names if n.startswith(prefix)}

    def has(start: str) -> bool:
        return any(n.startswith(start) for n in names)

    if has("double_stream_modulation_img.") or has("transformer_blocks.0.attn.to_qkv_mlp_proj"):
        return "flux2-klein"
    if has("double_blocks.0.img_attn.qkv.") or has("transformer_blocks.0.norm1_context."):
        return "flux1"
    if has("context_refiner.") or has("cap_embedder."):
        return "zimage"
    if has("transformer_blocks.0.img_mod.") or (has("img_in.") and has("txt_norm.")):
        return "qwen-image"
    return None


def _blocks(names: set[str], *starts: str) -> int:
    found = {
        int(m.group(1))
        for n in names
        for start in starts
        if (m := re.match(re.escape(start) + r"(\d+)\.", n))
    }
    return max(found) + 1 if found else 0


def transformer_dims(family: str, shapes: dict[str, list[int]]) -> tuple[int, int, int]:
    """Return (width, blocks, single blocks) of a diffusion model's tensors (either layout)."""
    prefix = strip_prefix(shapes)
    shapes = {k[len(prefix) :]: v for k, v in shapes.items() if k.startswith(prefix)}
    names = set(shapes)
    if family == "zimage" or family == "zimage-turbo":
        width = (shapes.get("x_embedder.weight") or shapes.get("all_x_embedder.2-1.weight") or [0])[
            0
        ]
        return width, _blocks(names, "layers."), 0
    width = (shapes.get("img_in.weight") or shapes.get("x_embedder.weight") or [0])[0]
    if family == "qwen-image":
        return width, _blocks(names, "transformer_blocks."), 0
    double = _blocks(names, "double_blocks.", "transformer_blocks.")
    return width, double, _blocks(names, "single_blocks.", "single_transformer_blocks.")


def _config_dims(variant: Path) -> tuple[int, int, int]:
    config = _json(variant / "transformer" / "config.json")
    if "dim" in config:  # Z-Image
        return int(config["dim"]), int(config["n_layers"]), 0
    width = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    return width, int(config["num_layers"]), int(config.get("num_single_layers", 0))


def _json(path: Path) -> dict[str, Any]:
    try:
        found: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BaseModelError(f"cannot read {path}: {e}") from None
    return found


def variants(family: str) -> list[Path]:
    """Return the shipped config folders of ``family`` (klein: 4B and 9B)."""
    pipelines = families.info(family).pipelines
    found = []
    for folder in sorted(CONFIGS.iterdir()) if CONFIGS.is_dir() else []:
        index = folder / "model_index.json"
        if not index.is_file() or _json(index).get("_class_name") not in pipelines:
            continue
        # Z-Image and Turbo share the pipeline and the architecture; the scheduler differs.
        if family.startswith("zimage") and folder.name != family:
            continue
        found.append(folder)
    return found


def variant_of(family: str, shapes: dict[str, list[int]], path: Path) -> Path:
    """Return the shipped config folder whose transformer has the file's width and depth."""
    dims = transformer_dims(family, shapes)
    for variant in variants(family):
        if _config_dims(variant) == dims:
            return variant
    width, blocks, single = dims
    raise BaseModelError(
        f"{path} is a {families.info(family).label} diffusion model of width {width} with"
        f" {blocks}{f'+{single}' if single else ''} blocks, which matches no config faceset"
        f" ships ({', '.join(v.name for v in variants(family)) or 'none'}); pass --base a"
        " diffusers folder of it"
    )


def variant_label(variant: Path) -> str:
    """Return a display name of a shipped variant: ``FLUX.2 [klein] 9B``."""
    name = variant.name
    for entry in families.CATALOG:
        if name == entry.name:
            return entry.label
        if name.startswith(entry.name + "-"):
            return f"{entry.label} {name[len(entry.name) + 1 :].upper()}"
    return name


def licence_of(family: str, variant: Path | None) -> str:
    """Return the licence of ``family``, of its size where the size decides (klein 9B)."""
    licence = families.info(family).licence
    if family == "flux2-klein" and variant is not None:
        return "FLUX Non-Commercial" if variant.name.endswith("9b") else "Apache-2.0"
    return licence


# --- the plan: where each component comes from (no torch) ------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    """One component's weights (or tokenizer): a file, a model folder, or a subfolder."""

    path: Path
    subfolder: str = ""

    def __str__(self) -> str:
        return str(self.path / self.subfolder) if self.subfolder else str(self.path)


@dataclass(frozen=True, slots=True)
class Plan:
    """Where every part of a base model comes from."""

    family: str
    how: str
    """``folder`` (diffusers folder or cached snapshot), ``hub`` (a model id to download, only
    when online), or ``single file``."""
    base: str
    folder: Path | None = None
    variant: Path | None = None
    """The shipped config folder (single files)."""
    transformer: Path | None = None
    text_encoders: dict[str, Source] = field(default_factory=dict)
    """By pipeline slot (``text_encoder``, ``text_encoder_2``)."""
    tokenizers: dict[str, Source] = field(default_factory=dict)
    """By pipeline slot (``tokenizer``, ``tokenizer_2``)."""
    vae: Source | None = None


def plan(
    base: str,
    family: str,
    text_encoder: Sequence[Path | str] = (),
    vae: Path | str | None = None,
) -> Plan:
    """Return where each component of ``base`` (folder, model id or file) of ``family`` comes
    from; ``text_encoder`` (files or folders, one per encoder, or a tokenizer folder) and
    ``vae`` replace or complete what is found. Raises BaseModelError in one line."""
    extra_te = [Path(p).expanduser() for p in text_encoder]
    extra_vae = Path(vae).expanduser() if vae is not None else None
    for given, flag in [(p, "--text-encoder") for p in extra_te] + [(extra_vae, "--vae")]:
        if given is not None and not given.exists():
            raise BaseModelError(f"{flag} {given} does not exist")
    path = Path(base).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise BaseModelError(
                f"base model {base} is not a diffusers folder (no model_index.json); pass the"
                " folder that holds it, or the diffusion model's .safetensors file"
            )
        return _folder_plan(base, family, path, "folder", extra_te, extra_vae)
    if path.is_file():
        if path.suffix.lower() != ".safetensors":
            raise BaseModelError(
                f"base model {base} is not a .safetensors file (pickled checkpoints are not loaded)"
            )
        return _file_plan(base, family, path, extra_te, extra_vae)
    if base.startswith((".", "/", "~")) or base.count("/") != 1:
        raise BaseModelError(f"base model {base} does not exist")
    snapshot = cached_snapshot(base)
    if snapshot is not None:
        return _folder_plan(base, family, snapshot, "folder", extra_te, extra_vae)
    if offline():
        raise BaseModelError(
            f"base model {base} is not in the Hugging Face cache ({hub_cache()}) and"
            " HF_HUB_OFFLINE=1: download it once (hf download " + base + ") or pass --base a"
            " folder or .safetensors file"
        )
    return Plan(family, "hub", base)


def _folder_plan(
    base: str, family: str, folder: Path, how: str, extra_te: list[Path], extra_vae: Path | None
) -> Plan:
    index = _json(folder / "model_index.json")
    encoders = {k: Source(folder, k) for k in index if k.startswith("text_encoder")}
    tokenizers = {k: Source(folder, k) for k in index if k.startswith("tokenizer")}
    if extra_te:
        configs = {slot: _json(folder / slot / "config.json") for slot in encoders}
        for slot, source in _assign_encoders(extra_te, configs).items():
            encoders[slot] = source
        for slot, source in _given_tokenizers(extra_te, list(tokenizers)).items():
            tokenizers[slot] = source
    return Plan(
        family, how, base, folder=folder, text_encoders=encoders, tokenizers=tokenizers,
        vae=Source(extra_vae) if extra_vae is not None else Source(folder, "vae"),
    )  # fmt: skip


def _file_plan(
    base: str, family: str, path: Path, extra_te: list[Path], extra_vae: Path | None
) -> Plan:
    shapes = read_header(path)
    kind = kind_of(shapes)
    if kind.role != "diffusion model":
        what = {"lora": "a LoRA", "text encoder": "a text encoder", "vae": "a VAE"}.get(
            kind.role, "not a diffusion model faceset knows"
        )
        raise BaseModelError(f"base model {base} is {what}, not a diffusion model")
    found = detect_family(shapes, strip_prefix(shapes))
    if found is not None and found != family and {found, family} != {"zimage", "zimage-turbo"}:
        raise BaseModelError(
            f"base model {base} is {families.info(found).label}, not"
            f" {families.info(family).label}; pass --for {found}"
        )
    variant = variant_of(family, shapes, path)
    index = _json(variant / "model_index.json")
    slots = sorted(k for k in index if k.startswith("text_encoder"))
    configs = {slot: _json(variant / slot / "config.json") for slot in slots}
    encoders = _assign_encoders(extra_te, configs)
    dirs = search_dirs(path)
    for slot in slots:
        if slot not in encoders:
            encoders[slot] = _find_encoder(path, variant, slot, configs[slot], dirs[0])
    tokenizers: dict[str, Source] = {}
    given = _given_tokenizers(extra_te, [s.replace("text_encoder", "tokenizer") for s in slots])
    for slot in slots:
        tok_slot = slot.replace("text_encoder", "tokenizer")
        tokenizers[tok_slot] = given.get(tok_slot) or _find_tokenizer(
            encoders[slot], tok_slot, configs[slot], variant
        )
    vae_config = _json(variant / "vae" / "config.json")
    vae_source = Source(extra_vae) if extra_vae else _find_vae(path, variant, vae_config, dirs[1])
    return Plan(
        family, "single file", base, variant=variant, transformer=path, text_encoders=encoders,
        tokenizers=tokenizers, vae=vae_source,
    )  # fmt: skip


def search_dirs(model: Path) -> tuple[list[Path], list[Path]]:
    """Return the folders searched for a diffusion model file's text encoders and VAE: its own
    folder, then ``models/text_encoders`` (``clip``, ``text_encoder``) and ``models/vae`` of the
    ComfyUI or A1111/Forge tree it sits in."""
    te, vae = [model.parent], [model.parent]
    for parent in model.parents:
        if parent.name == "models" and any((parent / d).is_dir() for d in _MODEL_DIRS):
            te += [parent / d for d in _TE_DIRS if (parent / d).is_dir()]
            vae += [parent / d for d in _VAE_DIRS if (parent / d).is_dir()]
            break
    return te, vae


def _encoder_matches(kind: FileKind, config: dict[str, Any]) -> bool:
    model_type = str(config.get("model_type", ""))
    width = int(config.get("hidden_size") or config.get("d_model") or 0)
    return kind.role == "text encoder" and kind.kind == model_type and kind.width == width


def _encoder_label(config: dict[str, Any]) -> str:
    model_type = str(config.get("model_type", ""))
    name = _ENCODER_NAMES.get(model_type, model_type)
    width = int(config.get("hidden_size") or config.get("d_model") or 0)
    sizes = {("qwen3", 2560): " 4B", ("qwen3", 4096): " 8B", ("qwen2_5_vl", 3584): " 7B"}
    return name + sizes.get((model_type, width), "")


def _assign_encoders(given: list[Path], configs: dict[str, dict[str, Any]]) -> dict[str, Source]:
    """Return the ``--text-encoder`` weights by slot: files by their tensors, folders with a
    ``config.json`` by its model type, pipeline folders by subfolder."""
    found: dict[str, Source] = {}
    for path in given:
        if path.is_file():
            kind = kind_of(read_header(path))
            slot = next((s for s, c in configs.items() if _encoder_matches(kind, c)), None)
            if slot is None:
                wanted = " or ".join(_encoder_label(c) for c in configs.values())
                raise BaseModelError(
                    f"--text-encoder {path} is not a {wanted} text encoder"
                    f" ({kind.kind or kind.role}{f' {kind.width}' if kind.width else ''})"
                )
            found[slot] = Source(path)
        elif (path / "model_index.json").is_file():
            for slot in configs:
                if (path / slot / "config.json").is_file():
                    found[slot] = Source(path, slot)
        elif (path / "config.json").is_file():
            model_type = _json(path / "config.json").get("model_type")
            slot = next((s for s, c in configs.items() if c.get("model_type") == model_type), None)
            if slot is not None:
                found[slot] = Source(path)
    return found


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file()


def _given_tokenizers(given: list[Path], slots: list[str]) -> dict[str, Source]:
    """Return tokenizers in ``--text-encoder`` folders by slot: a pipeline folder's
    ``tokenizer``/``tokenizer_2``, else a folder holding one (for the first slot without)."""
    found: dict[str, Source] = {}
    for path in given:
        if not path.is_dir():
            continue
        for slot in slots:
            if _has_tokenizer(path / slot):
                found.setdefault(slot, Source(path, slot))
        if _has_tokenizer(path):
            kind = _tokenizer_kind(path)
            for slot in slots:
                if slot not in found and (kind is None or _slot_kind(slot, slots) in (kind, None)):
                    found[slot] = Source(path)
                    break
    return found


def _slot_kind(slot: str, slots: list[str]) -> str | None:
    if len(slots) == 1:
        return None
    return "clip" if slot == "tokenizer" else "t5"  # FLUX.1: CLIP first, then T5


def _tokenizer_kind(folder: Path) -> str | None:
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = str(config.get("tokenizer_class", "")).lower()
    return "clip" if "clip" in name else "t5" if "t5" in name else None


def _find_encoder(
    model: Path, variant: Path, slot: str, config: dict[str, Any], dirs: list[Path]
) -> Source:
    names = KNOWN_TEXT_ENCODERS.get(variant.name, ())
    candidates = [d / n for d in dirs for n in names if (d / n).is_file()]
    candidates += [p for d in dirs for p in sorted(d.glob("*.safetensors")) if p != model]
    for candidate in candidates:
        try:
            if _encoder_matches(kind_of(read_header(candidate)), config):
                return Source(candidate)
        except BaseModelError:
            continue
    flag = "--text-encoder FILE" + (
        " (repeat it for each encoder)" if "_2" in slot or len(names) > 1 else ""
    )
    known = f" ({names[0]} in ComfyUI)" if names else ""
    raise BaseModelError(
        f"no {_encoder_label(config)} text encoder found for {model.name}{known} beside it or in"
        f" models/text_encoders: pass {flag}"
    )


def _find_tokenizer(encoder: Source, slot: str, config: dict[str, Any], variant: Path) -> Source:
    folders: list[Source] = []
    if encoder.path.is_dir():
        root = encoder.path
        folders += [Source(root, slot), Source(root, encoder.subfolder), Source(root, "tokenizer")]
    else:
        parent, stem = encoder.path.parent, encoder.path.stem
        folders += [
            Source(parent / stem),
            Source(parent / f"{stem}_tokenizer"),
            Source(parent, slot),
        ]
    for source in folders:
        if _has_tokenizer(Path(str(source))):
            return source
    model_type = str(config.get("model_type", ""))
    for repo, subfolder in _CACHED_TOKENIZERS.get(model_type, ()):
        snapshot = cached_file_folder(repo, f"{subfolder}/tokenizer_config.json".lstrip("/"))
        if snapshot is not None:
            return Source(snapshot)
    name = _ENCODER_NAMES.get(model_type, model_type)
    repo = _CACHED_TOKENIZERS.get(model_type, (("", ""),))[0][0]
    where = f"{encoder.path.parent / 'tokenizer'}/" if encoder.path.is_file() else str(encoder)
    raise BaseModelError(
        f"no {name} tokenizer found: pass --text-encoder DIR (a folder with tokenizer.json),"
        f" put one in {where}, or download it once: hf download {repo} --include 'tokenizer*'"
        " vocab.json merges.txt"
    )


def _find_vae(model: Path, variant: Path, config: dict[str, Any], dirs: list[Path]) -> Source:
    names = KNOWN_VAES.get(variant.name, ())
    candidates = [d / n for d in dirs for n in names if (d / n).is_file()]
    candidates += [p for d in dirs for p in sorted(d.glob("*.safetensors")) if p != model]
    for candidate in candidates:
        try:
            if _vae_matches(kind_of(read_header(candidate)), config):
                return Source(candidate)
        except BaseModelError:
            continue
    known = f" ({names[0]} in ComfyUI)" if names else ""
    raise BaseModelError(
        f"no VAE for {model.name} found{known} beside it or in models/vae: pass --vae FILE"
    )


def _vae_matches(kind: FileKind, config: dict[str, Any]) -> bool:
    if kind.role != "vae":
        return False
    cls = config["_class_name"]
    if cls == "AutoencoderKLQwenImage":
        return kind.kind in ("wan", "wan-diffusers") and kind.width == int(config["z_dim"])
    if cls == "AutoencoderKLFlux2":
        return kind.kind in ("flux2", "diffusers") and kind.width == int(config["latent_channels"])
    return kind.kind in ("ldm", "diffusers") and kind.width == int(config["latent_channels"])


# --- the Hugging Face cache ------------------------------------------------------------------


def offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_cache() -> Path:
    """Return the Hugging Face hub cache folder (``HF_HUB_CACHE``, else ``HF_HOME/hub``)."""
    cache = os.environ.get("HF_HUB_CACHE")
    if cache:
        return Path(cache).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def cached_snapshot(repo_id: str) -> Path | None:
    """Return the snapshot folder of ``repo_id`` (its ``main``) in the hub cache, if there."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        found = snapshot_download(repo_id, cache_dir=hub_cache(), local_files_only=True)
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    folder = Path(found)
    return folder if (folder / "model_index.json").is_file() else None


def cached_file_folder(repo_id: str, filename: str) -> Path | None:
    """Return the folder holding ``filename`` of ``repo_id`` in the hub cache, if cached."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, filename, cache_dir=hub_cache())
    return Path(found).parent if isinstance(found, str) else None


# --- loading (torch) -------------------------------------------------------------------------


def load(
    pipeline_class: Any,
    base: str,
    family: str,
    dtype: Any,
    text_encoder: Sequence[Path | str] = (),
    vae: Path | str | None = None,
) -> Any:
    """Return the ``pipeline_class`` pipeline of ``base`` in ``dtype``, loaded as :func:`plan`
    says, nothing fetched unless ``base`` is a model id neither cached nor local and the hub is
    allowed. Raises BaseModelError in one line for a missing part."""
    the_plan = plan(base, family, text_encoder, vae)
    log.debug("loading %s base model %s (%s)", families.info(family).label, base, the_plan.how)
    if the_plan.how == "hub":
        return pipeline_class.from_pretrained(base, dtype=dtype)
    if the_plan.how == "folder":
        assert the_plan.folder is not None
        replaced: dict[str, Any] = {}
        index = _json(the_plan.folder / "model_index.json")
        for slot, source in the_plan.text_encoders.items():
            if source.path != the_plan.folder:
                replaced[slot] = _load_encoder(source, index[slot][1], None, dtype)
        for slot, source in the_plan.tokenizers.items():
            if source.path != the_plan.folder:
                replaced[slot] = _load_tokenizer(source)
        if the_plan.vae is not None and the_plan.vae.path != the_plan.folder:
            vae_config = _json(the_plan.folder / "vae" / "config.json")
            replaced["vae"] = _load_vae(the_plan.vae, vae_config, the_plan.folder, dtype)
        return pipeline_class.from_pretrained(
            str(the_plan.folder), dtype=dtype, local_files_only=True, **replaced
        )
    return _assemble(pipeline_class, the_plan, dtype)


def _assemble(pipeline_class: Any, the_plan: Plan, dtype: Any) -> Any:
    import diffusers

    variant = the_plan.variant
    assert variant is not None
    assert the_plan.transformer is not None
    assert the_plan.vae is not None
    index = _json(variant / "model_index.json")
    parts: dict[str, Any] = {
        "transformer": _load_transformer(
            the_plan.transformer, index["transformer"][1], variant, dtype
        ),
        "vae": _load_vae(the_plan.vae, _json(variant / "vae" / "config.json"), variant, dtype),
        "scheduler": getattr(diffusers, index["scheduler"][1]).from_config(
            _json(variant / "scheduler" / "scheduler_config.json")
        ),
    }
    for slot, source in the_plan.text_encoders.items():
        parts[slot] = _load_encoder(source, index[slot][1], variant / slot, dtype)
    for slot, source in the_plan.tokenizers.items():
        parts[slot] = _load_tokenizer(source)
    extras = {k: v for k, v in index.items() if not k.startswith("_") and not isinstance(v, list)}
    return pipeline_class(**parts, **extras)


def load_state_dict(path: Path) -> dict[str, Any]:
    """Return the tensors of a ``.safetensors`` file, ComfyUI's fp8-scaled weights unscaled."""
    from safetensors.torch import load_file

    try:
        tensors: dict[str, Any] = load_file(str(path))
    except Exception as e:  # safetensors raises its own error type for a file it cannot parse
        raise BaseModelError(f"cannot read {path}: {e}") from e
    # ComfyUI's "fp8_scaled" files store weight / scale_weight in fp8; bring them back.
    tensors.pop("scaled_fp8", None)
    for key in [k for k in tensors if k.endswith(".scale_weight")]:
        scale = tensors.pop(key)
        weight = key[: -len("scale_weight")] + "weight"
        if weight in tensors:
            tensors[weight] = tensors[weight].float() * scale.float()
    for key in [k for k in tensors if k.endswith(".scale_input")]:
        tensors.pop(key)
    return tensors


def _load_transformer(path: Path, class_name: str, variant: Path, dtype: Any) -> Any:
    import diffusers

    tensors = load_state_dict(path)
    prefix = strip_prefix(tensors)
    tensors = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    if class_name == "FluxTransformer2DModel":
        tensors = _flux1_single_blocks(tensors)
    cls = getattr(diffusers, class_name)
    return cls.from_single_file(
        tensors, config=str(variant), subfolder="transformer", local_files_only=True,
        dtype=dtype,
    )  # fmt: skip


_FLUX_WIDTH = 3072
"""The width diffusers' FLUX.1 converter assumes (``convert_flux_transformer_checkpoint_to_
diffusers`` hard-codes ``inner_dim = 3072``, reference section 6.2)."""


def _flux1_single_blocks(tensors: dict[str, Any]) -> dict[str, Any]:
    """Return a FLUX.1 native state dict whose single blocks diffusers' converter can split at
    any width: ``linear1`` (q; k; v; mlp rows) is split here by the model's own width and the
    converter gets empty placeholders of the shapes it expects, then the real parts."""
    import torch

    width = tensors["img_in.weight"].shape[0] if "img_in.weight" in tensors else _FLUX_WIDTH
    if width == _FLUX_WIDTH or not any(k.startswith("single_blocks.") for k in tensors):
        return tensors
    from diffusers.loaders import single_file_utils

    split: dict[str, Any] = {}
    rows = 3 * _FLUX_WIDTH + 4 * _FLUX_WIDTH
    for key in [k for k in tensors if re.match(r"single_blocks\.\d+\.linear1\.", k)]:
        tensor = tensors[key]
        block, param = key.split(".")[1], key.rsplit(".", 1)[1]
        q, k, v, mlp = torch.split(tensor, [width, width, width, tensor.shape[0] - 3 * width])
        prefix = f"single_transformer_blocks.{block}."
        split |= {
            f"{prefix}attn.to_q.{param}": q, f"{prefix}attn.to_k.{param}": k,
            f"{prefix}attn.to_v.{param}": v, f"{prefix}proj_mlp.{param}": mlp,
        }  # fmt: skip
        tensors[key] = torch.empty((rows,) if tensor.ndim == 1 else (rows, 0))
    converted = single_file_utils.convert_flux_transformer_checkpoint_to_diffusers(tensors)
    return dict(converted) | split


def _load_encoder(source: Source, class_name: str, config_dir: Path | None, dtype: Any) -> Any:
    import transformers

    cls = getattr(transformers, class_name)
    if source.path.is_dir():
        return cls.from_pretrained(
            str(source.path), subfolder=source.subfolder, dtype=dtype, local_files_only=True
        )
    assert config_dir is not None
    config = cls.config_class.from_pretrained(str(config_dir))
    tensors = load_state_dict(source.path)
    # ComfyUI's text encoders are transformers' checkpoints without a config (Qwen3's
    # model.layers.*, Qwen2.5-VL's model.* + visual.*, CLIP's text_model.*, T5's encoder.*);
    # transformers renames its older layouts and the model. prefix itself.
    tensors = {
        k: v for k, v in tensors.items() if not k.startswith(("logit_scale", "text_projection"))
    }
    model, info = cls.from_pretrained(
        None, config=config, state_dict=tensors, dtype=dtype, output_loading_info=True
    )
    missing = [
        k for k in info.get("missing_keys", []) if "lm_head" not in k and "embed_tokens" not in k
    ]
    if missing:
        raise BaseModelError(
            f"text encoder {source.path} lacks {len(missing)} of the {class_name} weights"
            f" (such as {missing[0]}): pass --text-encoder the full file"
        )
    return model


def _load_tokenizer(source: Source) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(
        str(source.path), subfolder=source.subfolder, local_files_only=True
    )


def _load_vae(source: Source, config: dict[str, Any], config_root: Path, dtype: Any) -> Any:
    import diffusers

    cls = getattr(diffusers, config["_class_name"])
    if source.path.is_dir():
        subfolder = source.subfolder or ("vae" if (source.path / "vae").is_dir() else "")
        return cls.from_pretrained(
            str(source.path), subfolder=subfolder, dtype=dtype, local_files_only=True
        )
    kind = kind_of(read_header(source.path))
    if not _vae_matches(kind, config):
        raise BaseModelError(
            f"--vae {source.path} is not the {config['_class_name']} VAE with"
            f" {config.get('latent_channels') or config.get('z_dim')} latent channels this"
            " model needs"
        )
    tensors = load_state_dict(source.path)
    for prefix in ("first_stage_model.", "vae."):
        if any(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    if kind.kind not in ("diffusers", "wan-diffusers"):
        tensors = _vae_to_diffusers(tensors, kind.kind, config)
    model = cls.from_config({k: v for k, v in config.items() if not k.startswith("_")})
    result = model.load_state_dict(tensors, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked")]
    if missing or result.unexpected_keys:
        example = (missing or result.unexpected_keys)[0]
        raise BaseModelError(
            f"VAE {source.path} does not fit {config['_class_name']} ({example}): pass --vae"
            " the VAE of this model"
        )
    return model.to(dtype)


def _vae_to_diffusers(
    tensors: dict[str, Any], layout: str, config: dict[str, Any]
) -> dict[str, Any]:
    """Return a VAE state dict in diffusers' layout: LDM (FLUX.1's ae, FLUX.2's with its
    BatchNorm and quant convs inside encoder/decoder) or Wan 2.1's (Qwen-Image)."""
    from diffusers.loaders import single_file_utils as sfu

    if layout == "wan":
        return dict(sfu.convert_wan_vae_to_diffusers(tensors))
    # FLUX.2's layout as diffusers' scripts/convert_flux2_to_diffusers.py maps it.
    renamed = {
        k.replace("encoder.quant_conv.", "quant_conv.").replace(
            "decoder.post_quant_conv.", "post_quant_conv."
        ): v
        for k, v in tensors.items()
    }
    converted = dict(sfu.convert_ldm_vae_checkpoint(renamed, config))
    for key in ("bn.running_mean", "bn.running_var", "bn.num_batches_tracked"):
        if key in renamed:
            converted[key] = renamed[key]
    return converted


# --- the models on this disk (faceset models; no torch) ---------------------------------------


@dataclass(frozen=True, slots=True)
class FoundModel:
    """A model file or folder on this disk, and whether faceset trains on it."""

    base: str
    """What to pass as ``--base``: a path, or a model id in the Hugging Face cache."""
    path: Path
    source: str
    """``hf-cache``, ``comfyui`` or ``a1111``."""
    family: str | None
    """``--for`` value; None when it is not a base model faceset knows."""
    label: str
    """What it is, in words: ``FLUX.2 [klein] 4B``, ``a LoRA``, ``Stable Diffusion 2.x``."""
    size_bytes: int
    licence: str
    trainable: bool
    reason: str = ""
    """Why not, or what is missing; empty when trainable."""


def find_models(
    hf_cache: Path | None = None,
    comfyui: Sequence[Path] = (),
    a1111: Sequence[Path] = (),
) -> list[FoundModel]:
    """Return the base models in the Hugging Face cache (``hf_cache``, default
    :func:`hub_cache`) and under the ComfyUI and A1111/Forge folders, with what each is."""
    found = list(_cached_models(hf_cache or hub_cache()))
    for roots, source in ((comfyui, "comfyui"), (a1111, "a1111")):
        for root in roots:
            models = root / "models" if (root / "models").is_dir() else root
            for sub in _MODEL_DIRS:
                for path in (
                    sorted((models / sub).rglob("*.safetensors")) if (models / sub).is_dir() else []
                ):
                    found.append(describe(path, source))
    return found


def _cached_models(cache: Path) -> Iterable[FoundModel]:
    if not cache.is_dir():
        return
    for repo in sorted(cache.glob("models--*")):
        repo_id = repo.name[len("models--") :].replace("--", "/", 1)
        ref = repo / "refs" / "main"
        try:
            snapshot = repo / "snapshots" / ref.read_text().strip()
        except OSError:
            snapshots = sorted((repo / "snapshots").glob("*"))
            if not snapshots:
                continue
            snapshot = snapshots[-1]
        if (snapshot / "model_index.json").is_file():
            yield _describe_folder(repo_id, snapshot, "hf-cache", _size(repo))
        else:
            for path in sorted(snapshot.rglob("*.safetensors")):
                yield describe(path, "hf-cache")


def _size(path: Path) -> int:
    """Return the bytes of the files under ``path`` (the cache's blobs once, not its links)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _describe_folder(base: str, folder: Path, source: str, size: int) -> FoundModel:
    from faceset.train import detect

    family = detect.family_of(str(folder))
    if family not in families.BY_NAME:
        what = family or "a pipeline faceset does not know"
        return FoundModel(
            base,
            folder,
            source,
            None,
            what,
            size,
            "",
            False,
            f"{what}; faceset trains {_trained()}",
        )
    assert family is not None
    label = families.info(family).label
    variant = None
    if family == "flux2-klein":
        config = folder / "transformer" / "config.json"
        if config.is_file():
            width = _json(config).get("num_attention_heads", 0) * _json(config).get(
                "attention_head_dim", 0
            )
            variant = CONFIGS / ("flux2-klein-9b" if width == 4096 else "flux2-klein-4b")
            label = variant_label(variant)
    missing = [c for c in ("transformer", "vae") if not (folder / c).is_dir()]
    reason = f"incomplete: no {', '.join(missing)}/" if missing else ""
    return FoundModel(
        base, folder, source, family, label, size, licence_of(family, variant), not missing, reason
    )


def describe(path: Path, source: str) -> FoundModel:
    """Return what the ``.safetensors`` file ``path`` is and whether faceset trains on it."""
    size = path.stat().st_size
    try:
        shapes = read_header(path)
    except BaseModelError as e:
        return FoundModel(str(path), path, source, None, "unreadable", size, "", False, str(e))
    kind = kind_of(shapes)
    if kind.role == "diffusion model":
        family = detect_family(shapes, strip_prefix(shapes))
        assert family is not None
        try:
            variant = variant_of(family, shapes, path)
        except BaseModelError as e:
            label = families.info(family).label
            return FoundModel(
                str(path),
                path,
                source,
                family,
                label,
                size,
                families.info(family).licence,
                False,
                str(e),
            )
        label, licence = variant_label(variant), licence_of(family, variant)
        if family == "zimage":  # Turbo and base share the architecture: the user says which
            label = "Z-Image or Z-Image Turbo"
        try:
            plan(str(path), family)
        except BaseModelError as e:
            return FoundModel(str(path), path, source, family, label, size, licence, False, str(e))
        return FoundModel(str(path), path, source, family, label, size, licence, True)
    if kind.role == "text encoder":
        what = f"a text encoder ({_encoder_label({'model_type': kind.kind, 'hidden_size': kind.width})})"
        return FoundModel(
            str(path), path, source, None, what, size, "", False, f"{what} alone, not a base model"
        )
    if kind.role == "vae":
        return FoundModel(
            str(path), path, source, None, "a VAE", size, "", False, "a VAE alone, not a base model"
        )
    if kind.role == "lora":
        return FoundModel(
            str(path), path, source, None, "a LoRA", size, "", False, "a LoRA, not a base model"
        )
    from faceset.train import detect

    family = detect.family_of(str(path))
    if family in ("sd15", "sdxl"):
        entry = families.info(family)
        return FoundModel(str(path), path, source, family, entry.label, size, entry.licence, True)
    what = family or "not a model faceset knows"
    return FoundModel(
        str(path), path, source, None, what, size, "", False, f"{what}; faceset trains {_trained()}"
    )


def _trained() -> str:
    return ", ".join(info.label for info in families.CATALOG)
