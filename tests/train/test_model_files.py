"""Base models of the transformer families load offline from the files on a disk.

Each tiny pipeline (tests/dit_models.py) is written out again as a user would have it: a
diffusers folder, a Hugging Face cache entry, and ComfyUI's split files (the diffusion model in
its native key layout, the text encoder as transformers' checkpoint without a config, the VAE in
its LDM layout). With networking switched off, each must load and draw what the original folder
draws. The native layouts are written by inverting diffusers' own converters (the maps of
../shared/reference/dit-families.md sections 4.2 and 6.2); each writer is checked against the
converter that reads it.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip(
    "torch", reason="the train extra is not installed: pip install -e '.[train]'"
)
import numpy as np  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

from dit_models import draw  # noqa: E402
from faceset.train import families, model_files  # noqa: E402
from faceset.train.errors import BaseModelError  # noqa: E402

FAMILIES = ["flux2-klein", "zimage", "qwen-image", "flux1"]
VARIANT = {
    "flux2-klein": "flux2-klein-4b",
    "zimage": "zimage",
    "qwen-image": "qwen-image",
    "flux1": "flux1-dev",
}
HUB_ID = {
    "flux2-klein": "black-forest-labs/FLUX.2-klein-base-4B",
    "zimage": "Tongyi-MAI/Z-Image",
    "qwen-image": "Qwen/Qwen-Image",
    "flux1": "black-forest-labs/FLUX.1-dev",
}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection attempt fails the test (HF_HUB_OFFLINE=1 is set by conftest too)."""

    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the test tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache of the test's own (HF_HUB_CACHE)."""
    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def cache_repo(cache: Path, repo: str, files: dict[str, Path]) -> Path:
    """Put ``files`` (name in the repo -> local file or folder) into the cache layout
    ``models--org--name/snapshots/<hash>/`` with ``refs/main``; return the snapshot."""
    root = cache / f"models--{repo.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = root / "snapshots" / commit
    for name, source in files.items():
        target = snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy(source, target)
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    return snapshot


@pytest.fixture
def tiny_configs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, Path], None]:
    """Return a function shipping the tiny folder's configs in place of faceset's real-size ones
    (the loader picks a variant by the file's width and depth; the tiny models match none)."""
    root = tmp_path / "configs"
    monkeypatch.setattr(model_files, "CONFIGS", root)

    def ship(family: str, folder: Path) -> None:
        out = root / VARIANT[family]
        out.mkdir(parents=True)
        shutil.copy(folder / "model_index.json", out)
        for config in folder.glob("*/*config.json"):
            if config.parent.name.startswith("tokenizer") or "generation" in config.name:
                continue
            (out / config.parent.name).mkdir(exist_ok=True)
            shutil.copy(config, out / config.parent.name / config.name)

    return ship


# --- native layouts, written by inverting diffusers' converters ---------------------------------


def swap_halves(t: Any) -> Any:
    a, b = t.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def klein_native(sd: dict[str, Any]) -> dict[str, Any]:
    """BFL's FLUX.2 layout (diffusers' convert_flux2_transformer_checkpoint_to_diffusers,
    inverted)."""
    top = {
        "x_embedder": "img_in", "context_embedder": "txt_in",
        "time_guidance_embed.timestep_embedder.linear_1": "time_in.in_layer",
        "time_guidance_embed.timestep_embedder.linear_2": "time_in.out_layer",
        "time_guidance_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
        "time_guidance_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
        "double_stream_modulation_img.linear": "double_stream_modulation_img.lin",
        "double_stream_modulation_txt.linear": "double_stream_modulation_txt.lin",
        "single_stream_modulation.linear": "single_stream_modulation.lin",
        "proj_out": "final_layer.linear",
    }  # fmt: skip
    double = {
        "attn.norm_q.weight": "img_attn.norm.query_norm.scale",
        "attn.norm_k.weight": "img_attn.norm.key_norm.scale",
        "attn.to_out.0": "img_attn.proj", "ff.linear_in": "img_mlp.0", "ff.linear_out": "img_mlp.2",
        "attn.norm_added_q.weight": "txt_attn.norm.query_norm.scale",
        "attn.norm_added_k.weight": "txt_attn.norm.key_norm.scale",
        "attn.to_add_out": "txt_attn.proj", "ff_context.linear_in": "txt_mlp.0",
        "ff_context.linear_out": "txt_mlp.2",
    }  # fmt: skip
    single = {
        "attn.to_qkv_mlp_proj": "linear1", "attn.to_out": "linear2",
        "attn.norm_q.weight": "norm.query_norm.scale", "attn.norm_k.weight": "norm.key_norm.scale",
    }  # fmt: skip

    def single_block(i: str, rest: str, value: Any, out: dict[str, Any]) -> None:
        out[f"single_blocks.{i}.{_rename(rest, single)}"] = value

    return bfl_native(sd, top, double, single_block)


def bfl_native(
    sd: dict[str, Any],
    top: dict[str, str],
    double: dict[str, str],
    single_block: Callable[[str, str, Any, dict[str, Any]], None],
) -> dict[str, Any]:
    """Black Forest Labs' layout, shared by FLUX.1 and FLUX.2: the final modulation's halves
    swapped, each double-stream block's q/k/v fused per stream, names from ``top`` and
    ``double``; ``single_block(i, rest, value, out)`` writes a single-stream block's keys."""
    out: dict[str, Any] = {}
    for key, value in sd.items():
        if key.startswith("norm_out.linear."):
            out[key.replace("norm_out.linear", "final_layer.adaLN_modulation.1")] = swap_halves(
                value
            )
        elif m := re.match(r"transformer_blocks\.(\d+)\.(.+)", key):
            i, rest = m.groups()
            if re.match(r"attn\.(to_[qkv]|add_[qkv]_proj)\.", rest):
                stream = "txt" if "add_" in rest else "img"
                parts = (
                    ["add_q_proj", "add_k_proj", "add_v_proj"]
                    if stream == "txt"
                    else ["to_q", "to_k", "to_v"]
                )
                param = rest.rsplit(".", 1)[1]
                if rest.startswith(f"attn.{parts[0]}."):
                    out[f"double_blocks.{i}.{stream}_attn.qkv.{param}"] = torch.cat(
                        [sd[f"transformer_blocks.{i}.attn.{p}.{param}"] for p in parts]
                    )
                continue
            out[f"double_blocks.{i}.{_rename(rest, double)}"] = value
        elif m := re.match(r"single_transformer_blocks\.(\d+)\.(.+)", key):
            single_block(m.group(1), m.group(2), value, out)
        else:
            out[_rename(key, top)] = value
    return out


def _rename(key: str, table: dict[str, str]) -> str:
    for new, old in table.items():
        if key == new or key.startswith(new + "."):
            return old + key[len(new) :]
    return key


def zimage_native(sd: dict[str, Any]) -> dict[str, Any]:
    """Tongyi's Z-Image layout (convert_z_image_transformer_checkpoint_to_diffusers, inverted),
    with ComfyUI's ``model.diffusion_model.`` prefix."""
    out: dict[str, Any] = {}
    for key, value in sd.items():
        if ".attention.to_k." in key or ".attention.to_v." in key:
            continue
        if ".attention.to_q.weight" in key:
            out[key.replace("to_q.weight", "qkv.weight")] = torch.cat(
                [sd[key.replace("to_q", p)] for p in ("to_q", "to_k", "to_v")]
            )
            continue
        key = key.replace("all_x_embedder.2-1.", "x_embedder.").replace(
            "all_final_layer.2-1.", "final_layer."
        )
        key = key.replace(".attention.to_out.0.", ".attention.out.")
        key = key.replace(".attention.norm_k.", ".attention.k_norm.").replace(
            ".attention.norm_q.", ".attention.q_norm."
        )
        out[key] = value
    return {f"model.diffusion_model.{k}": v for k, v in out.items()}


def qwen_native(sd: dict[str, Any]) -> dict[str, Any]:
    """Qwen-Image's native names are diffusers' (reference 4.2); ComfyUI's prefix on top."""
    return {f"model.diffusion_model.{k}": v for k, v in sd.items()}


def flux1_native(sd: dict[str, Any]) -> dict[str, Any]:
    """BFL's FLUX.1 layout (convert_flux_transformer_checkpoint_to_diffusers, inverted)."""
    top = {
        "time_text_embed.timestep_embedder.linear_1": "time_in.in_layer",
        "time_text_embed.timestep_embedder.linear_2": "time_in.out_layer",
        "time_text_embed.text_embedder.linear_1": "vector_in.in_layer",
        "time_text_embed.text_embedder.linear_2": "vector_in.out_layer",
        "time_text_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
        "time_text_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
        "context_embedder": "txt_in", "x_embedder": "img_in", "proj_out": "final_layer.linear",
    }  # fmt: skip
    double = {
        "norm1.linear": "img_mod.lin", "norm1_context.linear": "txt_mod.lin",
        "attn.norm_q.weight": "img_attn.norm.query_norm.scale",
        "attn.norm_k.weight": "img_attn.norm.key_norm.scale",
        "attn.norm_added_q.weight": "txt_attn.norm.query_norm.scale",
        "attn.norm_added_k.weight": "txt_attn.norm.key_norm.scale",
        "ff.net.0.proj": "img_mlp.0", "ff.net.2": "img_mlp.2",
        "ff_context.net.0.proj": "txt_mlp.0", "ff_context.net.2": "txt_mlp.2",
        "attn.to_out.0": "img_attn.proj", "attn.to_add_out": "txt_attn.proj",
    }  # fmt: skip
    single = {
        "norm.linear": "modulation.lin", "attn.norm_q.weight": "norm.query_norm.scale",
        "attn.norm_k.weight": "norm.key_norm.scale", "proj_out": "linear2",
    }  # fmt: skip

    def single_block(i: str, rest: str, value: Any, out: dict[str, Any]) -> None:
        if re.match(r"(attn\.to_[qkv]|proj_mlp)\.", rest):
            param = rest.rsplit(".", 1)[1]
            if rest.startswith("attn.to_q."):
                prefix = f"single_transformer_blocks.{i}."
                out[f"single_blocks.{i}.linear1.{param}"] = torch.cat(
                    [
                        sd[f"{prefix}{p}.{param}"]
                        for p in ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")
                    ]
                )
            return
        out[f"single_blocks.{i}.{_rename(rest, single)}"] = value

    return bfl_native(sd, top, double, single_block)


NATIVE = {
    "flux2-klein": klein_native,
    "zimage": zimage_native,
    "qwen-image": qwen_native,
    "flux1": flux1_native,
}


def ldm_vae(sd: dict[str, Any], blocks: int, flux2: bool) -> dict[str, Any]:
    """The LDM VAE layout of FLUX.1's ae.safetensors and FLUX.2's VAE (diffusers'
    scripts/convert_diffusers_to_original_stable_diffusion.py map, for ``blocks`` levels; FLUX.2
    keeps its quant convs inside encoder/decoder)."""
    out: dict[str, Any] = {}
    for key, value in sd.items():
        new = key.replace("conv_shortcut", "nin_shortcut").replace("conv_norm_out", "norm_out")
        new = re.sub(
            r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.", r"encoder.down.\1.block.\2.", new
        )
        new = re.sub(
            r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", new
        )
        new = re.sub(
            r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.",
            lambda m: f"decoder.up.{blocks - 1 - int(m.group(1))}.block.{m.group(2)}.", new,
        )  # fmt: skip
        new = re.sub(
            r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.",
            lambda m: f"decoder.up.{blocks - 1 - int(m.group(1))}.upsample.", new,
        )  # fmt: skip
        new = re.sub(
            r"mid_block\.resnets\.(\d+)\.", lambda m: f"mid.block_{int(m.group(1)) + 1}.", new
        )
        if "mid_block.attentions.0." in new:
            new = new.replace("mid_block.attentions.0.", "mid.attn_1.")
            new = new.replace("group_norm.", "norm.").replace("to_q.", "q.").replace("to_k.", "k.")
            new = new.replace("to_v.", "v.").replace("to_out.0.", "proj_out.")
            if value.ndim == 2:
                value = value[:, :, None, None]  # conv 1x1 in the original
        if flux2:
            new = re.sub(r"^quant_conv\.", "encoder.quant_conv.", new)
            new = re.sub(r"^post_quant_conv\.", "decoder.post_quant_conv.", new)
        out[new] = value
    return out


def comfy_text_encoder(sd: dict[str, Any], family: str) -> dict[str, Any]:
    """Transformers' checkpoint as ComfyUI ships it: Qwen3-4B with ``model.`` keys (Z-Image's
    Qwen3Model has none), Qwen2.5-VL in its pre-transformers-5 layout (``model.layers``,
    ``visual.``), CLIP-L under ``text_model.``, T5 as ``shared``/``encoder.*``."""
    if family == "zimage":
        return {f"model.{k}": v for k, v in sd.items()}
    if family == "qwen-image":
        out = {}
        for k, v in sd.items():
            k = k.replace("model.language_model.", "model.").replace("model.visual.", "visual.")
            out[k] = v
        return out
    if family == "flux1" and "shared.weight" not in sd:  # CLIP-L as openai's text_model.*
        return {k if k.startswith("text_model.") else f"text_model.{k}": v for k, v in sd.items()}
    return {k: v for k, v in sd.items() if k != "lm_head.weight"}  # tied to the embeddings


_WAN_RESNET = (
    ("norm1.gamma", "residual.0.gamma"),
    ("conv1.", "residual.2."),
    ("norm2.gamma", "residual.3.gamma"),
    ("conv2.", "residual.6."),
    ("conv_shortcut.", "shortcut."),
)


def wan_native(sd: dict[str, Any]) -> dict[str, Any]:
    """Wan 2.1's own VAE layout, in which ComfyUI ships qwen_image_vae.safetensors (diffusers'
    convert_wan_vae_to_diffusers, inverted; like the converter, for the real depth only: four
    levels, two residual blocks each)."""

    def resnet(prefix: str, rest: str) -> str:
        for ours, theirs in _WAN_RESNET:
            if rest.startswith(ours):
                return prefix + theirs + rest[len(ours) :]
        return prefix + rest

    out: dict[str, Any] = {}
    for key, value in sd.items():
        if m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d)\.(.*)", key):
            new = resnet(f"{m[1]}.middle.{2 * int(m[2])}.", m[3])
        elif m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)", key):
            new = f"{m[1]}.middle.1.{m[2]}"
        elif m := re.match(r"encoder\.down_blocks\.(\d+)\.(.*)", key):
            new = resnet(f"encoder.downsamples.{m[1]}.", m[2])
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
            new = resnet(f"decoder.upsamples.{4 * int(m[1]) + int(m[2])}.", m[3])
        elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.*)", key):
            new = f"decoder.upsamples.{4 * int(m[1]) + 3}.{m[2]}"
        else:
            new = re.sub(r"^(encoder|decoder)\.conv_in\.", r"\1.conv1.", key)
            new = re.sub(r"^(encoder|decoder)\.norm_out\.", r"\1.head.0.", new)
            new = re.sub(r"^(encoder|decoder)\.conv_out\.", r"\1.head.2.", new)
            new = re.sub(r"^quant_conv\.", "conv1.", new)
            new = re.sub(r"^post_quant_conv\.", "conv2.", new)
        out[new] = value
    return out


def component_state(folder: Path, name: str) -> dict[str, Any]:
    files = sorted((folder / name).glob("*.safetensors"))
    state: dict[str, Any] = {}
    for f in files:
        state |= load_file(str(f))
    return state


def write_comfyui(
    family: str, folder: Path, root: Path, vae_layout: str = "native"
) -> tuple[Path, list[Path]]:
    """Write ``folder``'s tiny pipeline as ComfyUI's split files under ``root/models``; return
    the diffusion model file and the text encoder files."""
    models = root / "models"
    for sub in ("diffusion_models", "text_encoders", "vae", "loras"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    names = {
        "flux2-klein": ("flux-2-klein-base-4b.safetensors", ["qwen_3_4b.safetensors"], "flux2-vae.safetensors"),
        "zimage": ("z_image_bf16.safetensors", ["qwen_3_4b.safetensors"], "ae.safetensors"),
        "qwen-image": ("qwen_image_bf16.safetensors", ["qwen_2.5_vl_7b.safetensors"], "qwen_image_vae.safetensors"),
        "flux1": ("flux1-dev.safetensors", ["clip_l.safetensors", "t5xxl_fp16.safetensors"], "ae.safetensors"),
    }[family]  # fmt: skip
    model = models / "diffusion_models" / names[0]
    save_file(NATIVE[family](component_state(folder, "transformer")), str(model))
    encoders = []
    slots = ["text_encoder", "text_encoder_2"] if family == "flux1" else ["text_encoder"]
    for slot, name in zip(slots, names[1], strict=True):
        path = models / "text_encoders" / name
        save_file(comfy_text_encoder(component_state(folder, slot), family), str(path))
        encoders.append(path)
    vae = component_state(folder, "vae")
    config = json.loads((folder / "vae" / "config.json").read_text())
    if family == "qwen-image" and vae_layout == "wan":
        vae = wan_native(vae)
    if family != "qwen-image" and vae_layout == "native":
        blocks = len(config["block_out_channels"])
        vae = ldm_vae(vae, blocks, flux2=family == "flux2-klein")
    save_file(vae, str(models / "vae" / names[2]))
    return model, encoders


_originals: dict[str, Any] = {}


def original_image(family: str, folder: Path) -> Any:
    if family not in _originals:
        _originals[family] = draw(families.flow_family(family).load(folder, torch.float32), family)
    return _originals[family]


def assert_same_image(family: str, folder: Path, pipe: Any) -> None:
    np.testing.assert_allclose(draw(pipe, family), original_image(family, folder), atol=1e-5)


# --- the writers invert diffusers' readers -------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_the_native_transformer_layout_converts_back_exactly(family: str, dit_bases) -> None:
    from diffusers.loaders import single_file_utils as sfu

    folder = dit_bases(family)
    sd = component_state(folder, "transformer")
    native = NATIVE[family](sd)
    if family == "flux1":
        back = model_files._flux1_single_blocks(dict(native))  # width 32, not diffusers' 3072
    else:
        prefix = model_files.strip_prefix(native)
        stripped = {k[len(prefix) :]: v for k, v in native.items()}
        convert = {
            "flux2-klein": sfu.convert_flux2_transformer_checkpoint_to_diffusers,
            "zimage": sfu.convert_z_image_transformer_checkpoint_to_diffusers,
            "qwen-image": lambda c: c,
        }[family]
        back = convert(stripped)
    assert set(back) == set(sd)
    for key in sd:
        assert torch.equal(back[key], sd[key]), key


# --- loading ----------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_a_diffusers_folder_loads_with_the_network_off(family: str, dit_bases, no_network) -> None:
    folder = dit_bases(family)

    pipe = families.flow_family(family).load(folder, torch.float32)

    assert_same_image(family, folder, pipe)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_model_id_loads_from_the_hugging_face_cache(
    family: str, dit_bases, hub, no_network
) -> None:
    folder = dit_bases(family)
    cache_repo(hub, HUB_ID[family], {p.name: p for p in folder.iterdir()})

    pipe = families.flow_family(family).load(HUB_ID[family], torch.float32)

    assert_same_image(family, folder, pipe)


@pytest.mark.parametrize("family", FAMILIES)
def test_comfyui_split_files_load_from_the_diffusion_model_file_alone(
    family: str, dit_bases, hub, tiny_configs, tmp_path: Path, no_network
) -> None:
    """The text encoder and VAE are found in models/text_encoders and models/vae under their
    ComfyUI names, the tokenizer in the Hugging Face cache (no tokenizer in ComfyUI's files)."""
    folder = dit_bases(family)
    tiny_configs(family, folder)
    model, _ = write_comfyui(family, folder, tmp_path / "ComfyUI")
    tokenizers = {
        "flux2-klein": ("Qwen/Qwen3-4B", {"": folder / "tokenizer"}),
        "zimage": ("Tongyi-MAI/Z-Image-Turbo", {"tokenizer": folder / "tokenizer"}),
        "qwen-image": ("Qwen/Qwen-Image", {"tokenizer": folder / "tokenizer"}),
        "flux1": ("black-forest-labs/FLUX.1-dev", {
            "tokenizer": folder / "tokenizer", "tokenizer_2": folder / "tokenizer_2"}),
    }[family]  # fmt: skip
    repo, files = tokenizers
    files = {n: p for name, src in files.items() for n, p in _flatten(name, src).items()}
    cache_repo(hub, repo, files)

    pipe = families.flow_family(family).load(model, torch.float32)

    assert_same_image(family, folder, pipe)


def test_qwen_image_vae_in_comfyuis_own_wan_layout_loads(
    dit_bases, hub, tiny_configs, tmp_path: Path, no_network
) -> None:
    """ComfyUI ships qwen_image_vae.safetensors in Wan 2.1's layout, which diffusers' converter
    reads only at the real depth: the tiny pipeline gets a VAE of the real topology, narrow."""
    from diffusers import AutoencoderKLQwenImage

    folder = tmp_path / "qwen-real-vae"
    shutil.copytree(dit_bases("qwen-image"), folder)
    shutil.rmtree(folder / "vae")
    torch.manual_seed(0)
    AutoencoderKLQwenImage(
        base_dim=8, z_dim=4, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
        temperal_downsample=[False, True, True], latents_mean=[0.0] * 4, latents_std=[1.0] * 4,
    ).save_pretrained(folder / "vae")  # fmt: skip
    tiny_configs("qwen-image", folder)
    model, _ = write_comfyui("qwen-image", folder, tmp_path / "ComfyUI", vae_layout="wan")
    written = load_file(str(tmp_path / "ComfyUI" / "models" / "vae" / "qwen_image_vae.safetensors"))
    assert "decoder.upsamples.3.resample.1.weight" in written  # Wan's names, not diffusers'
    assert "decoder.up_blocks.0.upsamplers.0.resample.1.weight" not in written
    cache_repo(hub, "Qwen/Qwen-Image", _flatten("tokenizer", folder / "tokenizer"))

    pipe = families.flow_family("qwen-image").load(model, torch.float32)

    # Not assert_same_image: its drawings are remembered per family, of the usual tiny VAE.
    original = families.flow_family("qwen-image").load(folder, torch.float32)
    np.testing.assert_allclose(draw(pipe, "qwen-image"), draw(original, "qwen-image"), atol=1e-5)


def _flatten(name: str, folder: Path) -> dict[str, Path]:
    return {(f"{name}/{p.name}" if name else p.name): p for p in folder.iterdir()}


def test_a_single_file_takes_text_encoder_and_vae_from_the_flags(
    dit_bases, tiny_configs, tmp_path: Path, no_network
) -> None:
    """Files elsewhere on the disk, named anyhow; the tokenizer is a folder passed with
    --text-encoder too."""
    folder = dit_bases("flux2-klein")
    tiny_configs("flux2-klein", folder)
    model, (encoder,) = write_comfyui("flux2-klein", folder, tmp_path / "comfy")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(encoder, elsewhere / "my-text-encoder.safetensors")
    shutil.move(
        tmp_path / "comfy/models/vae/flux2-vae.safetensors", elsewhere / "my-vae.safetensors"
    )

    pipe = families.flow_family("flux2-klein").load(
        model, torch.float32,
        text_encoder=[elsewhere / "my-text-encoder.safetensors", folder / "tokenizer"],
        vae=elsewhere / "my-vae.safetensors",
    )  # fmt: skip

    assert_same_image("flux2-klein", folder, pipe)


def test_a_single_file_takes_a_diffusers_folder_s_text_encoder_and_vae(
    dit_bases, tiny_configs, tmp_path: Path, no_network
) -> None:
    folder = dit_bases("qwen-image")
    tiny_configs("qwen-image", folder)
    model = tmp_path / "qwen.safetensors"
    save_file(qwen_native(component_state(folder, "transformer")), str(model))

    pipe = families.flow_family("qwen-image").load(
        model, torch.float32, text_encoder=[folder], vae=folder
    )

    assert_same_image("qwen-image", folder, pipe)


# --- one-line errors ---------------------------------------------------------------------------


def test_a_missing_vae_is_one_line_naming_the_flag(
    dit_bases, hub, tiny_configs, tmp_path: Path
) -> None:
    folder = dit_bases("zimage")
    tiny_configs("zimage", folder)
    model, _ = write_comfyui("zimage", folder, tmp_path / "ComfyUI")
    (tmp_path / "ComfyUI/models/vae/ae.safetensors").unlink()
    shutil.copytree(folder / "tokenizer", tmp_path / "ComfyUI/models/text_encoders/tokenizer")

    with pytest.raises(BaseModelError) as e:
        model_files.plan(str(model), "zimage")

    assert str(e.value) == (
        "no VAE for z_image_bf16.safetensors found (ae.safetensors in ComfyUI) beside it or in"
        " models/vae: pass --vae FILE"
    )


def test_a_missing_tokenizer_is_one_line_naming_the_flag(
    dit_bases, hub, tiny_configs, tmp_path: Path
) -> None:
    folder = dit_bases("flux2-klein")
    tiny_configs("flux2-klein", folder)
    model, (encoder,) = write_comfyui("flux2-klein", folder, tmp_path / "ComfyUI")

    with pytest.raises(BaseModelError) as e:
        model_files.plan(str(model), "flux2-klein")

    assert str(e.value) == (
        "no Qwen3 tokenizer found: pass --text-encoder DIR (a folder with tokenizer.json), put"
        f" one in {encoder.parent / 'tokenizer'}/, or download it once: hf download"
        " Qwen/Qwen3-4B --include 'tokenizer*' vocab.json merges.txt"
    )


def test_a_missing_text_encoder_is_one_line_naming_the_flag(
    dit_bases, hub, tiny_configs, tmp_path: Path
) -> None:
    folder = dit_bases("flux2-klein")
    tiny_configs("flux2-klein", folder)
    model, (encoder,) = write_comfyui("flux2-klein", folder, tmp_path / "ComfyUI")
    encoder.unlink()

    with pytest.raises(BaseModelError) as e:
        model_files.plan(str(model), "flux2-klein")

    assert str(e.value) == (
        "no Qwen3 text encoder found for flux-2-klein-base-4b.safetensors (qwen_3_4b.safetensors"
        " in ComfyUI) beside it or in models/text_encoders: pass --text-encoder FILE"
    )


def test_a_file_of_another_size_than_the_shipped_configs_is_one_line(
    dit_bases, tmp_path: Path
) -> None:
    model = tmp_path / "klein.safetensors"
    save_file(klein_native(component_state(dit_bases("flux2-klein"), "transformer")), str(model))

    with pytest.raises(BaseModelError) as e:
        model_files.plan(str(model), "flux2-klein")

    assert str(e.value) == (
        f"{model} is a FLUX.2 [klein] diffusion model of width 32 with 1+1 blocks, which"
        " matches no config faceset ships (flux2-klein-4b, flux2-klein-9b); pass --base a"
        " diffusers folder of it"
    )


def test_a_model_id_missing_from_the_cache_is_one_line_when_offline(hub) -> None:
    with pytest.raises(BaseModelError) as e:
        model_files.plan("black-forest-labs/FLUX.2-klein-base-4B", "flux2-klein")

    assert str(e.value) == (
        f"base model black-forest-labs/FLUX.2-klein-base-4B is not in the Hugging Face cache"
        f" ({hub}) and HF_HUB_OFFLINE=1: download it once (hf download"
        " black-forest-labs/FLUX.2-klein-base-4B) or pass --base a folder or .safetensors file"
    )


def test_a_lora_as_base_is_one_line(tmp_path: Path) -> None:
    lora = tmp_path / "jane.safetensors"
    save_file({"transformer.x_embedder.lora_A.weight": torch.zeros(1, 1)}, str(lora))

    with pytest.raises(BaseModelError) as e:
        model_files.plan(str(lora), "flux2-klein")

    assert str(e.value) == f"base model {lora} is a LoRA, not a diffusion model"


# --- the shipped configs ------------------------------------------------------------------------

PARAMETERS = {  # billions, as published (klein 4B/9B, Z-Image 6B, Qwen-Image 20B, FLUX.1 12B)
    "flux2-klein-4b": {"transformer": 3.9, "text_encoder": 4.0},
    "flux2-klein-9b": {"transformer": 9.1, "text_encoder": 8.2},
    "zimage": {"transformer": 6.2, "text_encoder": 4.0},
    "zimage-turbo": {"transformer": 6.2, "text_encoder": 4.0},
    "qwen-image": {"transformer": 20.4, "text_encoder": 8.3},
    "flux1-dev": {"transformer": 11.9, "text_encoder_2": 4.8},
}


@pytest.mark.parametrize("variant", sorted(PARAMETERS))
def test_the_shipped_configs_build_models_of_the_published_sizes(variant: str) -> None:
    import diffusers
    import transformers
    from accelerate import init_empty_weights

    folder = model_files.CONFIGS / variant
    index = json.loads((folder / "model_index.json").read_text())
    for component, billions in PARAMETERS[variant].items():
        library, name = index[component]
        cls = getattr(diffusers if library == "diffusers" else transformers, name)
        with init_empty_weights():
            if library == "diffusers":
                model = cls.from_config(cls.load_config(folder / component))
            else:
                model = cls(cls.config_class.from_pretrained(folder / component))
        tied = getattr(model.config, "tie_word_embeddings", False)
        sizes = [p.numel() for n, p in model.named_parameters() if not (tied and "lm_head" in n)]
        if name == "T5EncoderModel":  # encoder.embed_tokens is shared.weight in the file
            sizes = [p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n]
        assert sum(sizes) / 1e9 == pytest.approx(billions, abs=0.1), component
    with init_empty_weights():
        vae = getattr(diffusers, index["vae"][1])
        vae.from_config(vae.load_config(folder / "vae"))


def test_klein_9b_is_told_from_4b_by_its_tensors() -> None:
    def header(width: int, double: int, single: int) -> dict[str, list[int]]:
        shapes = {"img_in.weight": [width, 128], "double_stream_modulation_img.lin.weight": [1, 1]}
        shapes |= {f"double_blocks.{i}.img_attn.qkv.weight": [1] for i in range(double)}
        return shapes | {f"single_blocks.{i}.linear1.weight": [1] for i in range(single)}

    assert (
        model_files.variant_of("flux2-klein", header(3072, 5, 20), Path("a")).name
        == "flux2-klein-4b"
    )
    assert (
        model_files.variant_of("flux2-klein", header(4096, 8, 24), Path("b")).name
        == "flux2-klein-9b"
    )
