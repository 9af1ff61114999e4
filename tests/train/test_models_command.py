"""faceset models: the base models in a ComfyUI tree, an A1111 folder and the Hugging Face cache,
told apart by their tensors' names and shapes alone (fake headers; no torch)."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from faceset.cli import app


def fake_safetensors(path: Path, shapes: dict[str, list[int]], padding: int = 0) -> Path:
    """Write a header-only .safetensors file (plus ``padding`` bytes, for its size on disk)."""
    header = {k: {"dtype": "BF16", "shape": v, "data_offsets": [0, 0]} for k, v in shapes.items()}
    data = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(data)) + data + b"\0" * padding)
    return path


def klein(width: int, double: int, single: int) -> dict[str, list[int]]:
    shapes = {"img_in.weight": [width, 128], "double_stream_modulation_img.lin.weight": [1, 1]}
    shapes |= {f"double_blocks.{i}.img_attn.qkv.weight": [1] for i in range(double)}
    return shapes | {f"single_blocks.{i}.linear1.weight": [1] for i in range(single)}


def qwen3(hidden: int) -> dict[str, list[int]]:
    return {
        "model.embed_tokens.weight": [151936, hidden],
        "model.layers.0.self_attn.q_norm.weight": [128],
    }


FLUX2_VAE = {
    "encoder.conv_in.weight": [128, 3, 3, 3],
    "decoder.conv_in.weight": [512, 32, 3, 3],
    "bn.running_mean": [128],
}


def comfyui_tree(root: Path) -> Path:
    models = root / "models"
    fake_safetensors(
        models / "diffusion_models/flux-2-klein-base-4b.safetensors", klein(3072, 5, 20), 1000
    )
    fake_safetensors(
        models / "diffusion_models/flux-2-klein-base-9b.safetensors", klein(4096, 8, 24), 2000
    )
    fake_safetensors(models / "text_encoders/qwen_3_4b.safetensors", qwen3(2560))
    (models / "text_encoders/tokenizer").mkdir()
    (models / "text_encoders/tokenizer/tokenizer_config.json").write_text("{}")
    fake_safetensors(models / "vae/flux2-vae.safetensors", FLUX2_VAE)
    fake_safetensors(
        models / "diffusion_models/jane.safetensors", {"transformer.x.lora_A.weight": [4, 8]}
    )
    fake_safetensors(models / "checkpoints/v2-1_768.safetensors", {"cond_stage_model.model.x": [1]})
    return root


def hf_cache(root: Path) -> Path:
    repo = root / "models--black-forest-labs--FLUX.2-klein-base-4B"
    snapshot = repo / "snapshots" / "abc"
    for name, content in {
        "model_index.json": {"_class_name": "Flux2KleinPipeline"},
        "transformer/config.json": {"num_attention_heads": 24, "attention_head_dim": 128},
        "vae/config.json": {},
    }.items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_text(json.dumps(content))
    (repo / "refs").mkdir()
    (repo / "refs/main").write_text("abc")
    split = root / "models--Comfy-Org--z_image_turbo/snapshots/def/split_files/text_encoders"
    fake_safetensors(split / "qwen_3_4b.safetensors", qwen3(2560))
    (root / "models--Comfy-Org--z_image_turbo/refs").mkdir()
    (root / "models--Comfy-Org--z_image_turbo/refs/main").write_text("def")
    return root


def test_models_lists_family_licence_size_and_why_not(tmp_path: Path) -> None:
    comfy, cache = comfyui_tree(tmp_path / "ComfyUI"), hf_cache(tmp_path / "hub")

    result = CliRunner().invoke(
        app, ["models", "--comfyui", str(comfy), "--hf-cache", str(cache), "--json"]
    )

    assert result.exit_code == 0, result.output
    rows = {Path(r["base"]).name: r for r in map(json.loads, result.output.splitlines())}
    klein4 = rows["flux-2-klein-base-4b.safetensors"]
    assert (klein4["family"], klein4["what"], klein4["licence"], klein4["trainable"]) == (
        "flux2-klein",
        "FLUX.2 [klein] 4B",
        "Apache-2.0",
        True,
    )
    assert (
        klein4["size_bytes"]
        == (comfy / "models/diffusion_models" / "flux-2-klein-base-4b.safetensors").stat().st_size
    )
    klein9 = rows["flux-2-klein-base-9b.safetensors"]
    assert (klein9["what"], klein9["licence"], klein9["trainable"]) == (
        "FLUX.2 [klein] 9B",
        "FLUX Non-Commercial",
        False,
    )
    assert klein9["reason"] == (
        "no Qwen3 8B text encoder found for flux-2-klein-base-9b.safetensors (qwen_3_8b.safetensors"
        " in ComfyUI) beside it or in models/text_encoders: pass --text-encoder FILE"
    )
    assert rows["jane.safetensors"]["reason"] == "a LoRA, not a base model"
    assert rows["v2-1_768.safetensors"]["reason"].startswith("Stable Diffusion 2.x; faceset trains")
    assert (
        rows["qwen_3_4b.safetensors"]["reason"]
        == "a text encoder (Qwen3 4B) alone, not a base model"
    )
    cached = rows["FLUX.2-klein-base-4B"]
    assert cached["base"] == "black-forest-labs/FLUX.2-klein-base-4B"
    assert (cached["family"], cached["trainable"], cached["source"]) == (
        "flux2-klein",
        True,
        "hf-cache",
    )


def test_models_prints_a_table(tmp_path: Path) -> None:
    comfy = comfyui_tree(tmp_path / "ComfyUI")

    result = CliRunner().invoke(
        app,
        ["models", "--comfyui", str(comfy), "--hf-cache", str(tmp_path / "none")],
        env={"COLUMNS": "300"},
    )

    assert result.exit_code == 0, result.output
    assert "FLUX.2 [klein] 4B" in result.output
    assert "a LoRA, not a base model" in result.output


def test_models_does_not_import_torch(tmp_path: Path) -> None:
    comfy = comfyui_tree(tmp_path / "ComfyUI")
    code = (
        "import sys\nfrom faceset.cli import app\ntry:\n"
        f"    app(['models', '--json', '--comfyui', {str(comfy)!r}, '--hf-cache', {str(tmp_path)!r}])\n"
        "except SystemExit:\n    pass\nprint('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "False"
