"""The kohya file: key names, true alpha, and a round trip through diffusers' load_lora_weights.

Every round trip uses alpha != rank and non-zero ``lora_B`` (it initialises to zero, so an
untrained adapter would hide a conversion bug; ../shared/reference/trainers.md section 7).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip(
    "torch", reason="the train extra is not installed: pip install -e '.[train]'"
)

from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline  # noqa: E402
from peft import LoraConfig  # noqa: E402
from peft.utils import get_peft_model_state_dict  # noqa: E402
from safetensors import safe_open  # noqa: E402

from faceset.train import kohya_format  # noqa: E402
from faceset.train.adapters import add_lora  # noqa: E402
from faceset.train.loop import TEXT_ENCODER_TARGETS, UNET_TARGETS  # noqa: E402

PROMPT = "ohwx man, studio lighting"


def with_random_lora(pipe: Any, names: tuple[str, ...], rank: int, alpha: float) -> Any:
    """Add LoRA adapters to ``names`` and give every lora_B random values."""
    torch.manual_seed(1)
    for name in names:
        targets = UNET_TARGETS if name == "unet" else TEXT_ENCODER_TARGETS
        config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets)
        add_lora(getattr(pipe, name), config)
        for key, param in getattr(pipe, name).named_parameters():
            if "lora_B" in key:
                torch.nn.init.normal_(param, std=0.5)
    return pipe


def render(pipe: Any) -> Any:
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        PROMPT,
        height=64,
        width=64,
        num_inference_steps=2,
        guidance_scale=1.0,  # no classifier-free guidance: half the compute, same check
        generator=torch.Generator("cpu").manual_seed(0),
        output_type="np",
    ).images[0]


def kohya_tensors(pipe: Any, family: str, alpha: float) -> dict[str, Any]:
    sdxl = family == "sdxl"
    tensors = kohya_format.unet_to_kohya(
        get_peft_model_state_dict(pipe.unet),
        alpha,
        sgm_layers_per_block=pipe.unet.config.layers_per_block if sdxl else None,
    )
    encoders = [("text_encoder", "lora_te1" if sdxl else "lora_te")]
    if sdxl:
        encoders.append(("text_encoder_2", "lora_te2"))
    for name, prefix in encoders:
        state = get_peft_model_state_dict(getattr(pipe, name))
        tensors |= kohya_format.text_encoder_to_kohya(state, alpha, prefix)
    return tensors


@pytest.mark.parametrize(
    ("family", "rank", "alpha"), [("sd15", 4, 2.0), ("sdxl", 4, 8.0)], ids=["sd15", "sdxl"]
)
def test_kohya_file_reloads_to_the_same_pipeline_output(
    family: str, rank: int, alpha: float, sd15_base: Path, sdxl_base: Path, tmp_path: Path
) -> None:
    pipeline_class = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
    base = sdxl_base if family == "sdxl" else sd15_base
    encoders = ("text_encoder", "text_encoder_2") if family == "sdxl" else ("text_encoder",)
    trained = with_random_lora(
        pipeline_class.from_pretrained(base), ("unet", *encoders), rank, alpha
    )
    path = kohya_format.save(
        tmp_path / "lora.safetensors", kohya_tensors(trained, family, alpha), {}
    )

    reloaded = pipeline_class.from_pretrained(base)
    untouched = render(reloaded)
    reloaded.load_lora_weights(str(path))

    expected = render(trained)
    assert abs(expected - untouched).max() > 1e-3, "the adapter must change the output"
    assert abs(render(reloaded) - expected).max() < 1e-5


def test_sd15_keys_use_diffusers_unet_names_and_text_model_encoder_names(
    sd15_base: Path,
) -> None:
    pipe = with_random_lora(
        StableDiffusionPipeline.from_pretrained(sd15_base), ("unet", "text_encoder"), 4, 2.0
    )

    tensors = kohya_tensors(pipe, "sd15", 2.0)

    stem = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q"
    assert tensors[f"{stem}.lora_down.weight"].shape == (4, 8)
    assert tensors[f"{stem}.lora_up.weight"].shape == (8, 4)
    assert tensors[f"{stem}.alpha"].item() == 2.0
    # transformers 5 names the module encoder.layers.0…; the file keeps text_model_ for ComfyUI.
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha" in tensors
    assert "lora_unet_up_blocks_0_attentions_0_transformer_blocks_0_attn2_to_out_0.alpha" in tensors
    assert all(k.startswith(("lora_unet_", "lora_te_")) for k in tensors)
    assert all(t.item() == 2.0 for k, t in tensors.items() if k.endswith(".alpha"))


def test_sdxl_keys_use_sgm_block_names_and_two_text_encoders(sdxl_base: Path) -> None:
    pipe = with_random_lora(
        StableDiffusionXLPipeline.from_pretrained(sdxl_base),
        ("unet", "text_encoder", "text_encoder_2"),
        4,
        8.0,
    )

    modules = {k.rsplit(".", 2)[0] for k in kohya_tensors(pipe, "sdxl", 8.0)}

    assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q" in modules
    assert "lora_unet_input_blocks_5_1_transformer_blocks_1_attn2_to_v" in modules
    assert "lora_unet_middle_block_1_transformer_blocks_0_attn1_to_k" in modules
    assert "lora_unet_output_blocks_2_1_transformer_blocks_0_attn1_to_out_0" in modules
    assert "lora_te1_text_model_encoder_layers_0_self_attn_q_proj" in modules
    assert "lora_te2_text_model_encoder_layers_4_self_attn_out_proj" in modules
    assert not any("down_blocks" in m or "up_blocks" in m for m in modules)


@pytest.mark.parametrize(
    ("diffusers_name", "sgm_name"),
    [
        ("down_blocks.1.attentions.0.x", "input_blocks.4.1.x"),
        ("down_blocks.2.attentions.1.x", "input_blocks.8.1.x"),
        ("mid_block.attentions.0.x", "middle_block.1.x"),
        ("up_blocks.0.attentions.2.x", "output_blocks.2.1.x"),
        ("up_blocks.1.attentions.0.x", "output_blocks.3.1.x"),
    ],
)
def test_sgm_names_of_sdxl_blocks(diffusers_name: str, sgm_name: str) -> None:
    # SDXL: layers_per_block 2, so 3 input blocks per down block and 3 output blocks per up block.
    assert kohya_format.to_sgm(diffusers_name, 2) == sgm_name


def test_sshs_hashes_are_those_of_the_tensors_and_ss_metadata(tmp_path: Path) -> None:
    tensors = {"lora_unet_x.lora_down.weight": torch.arange(600_000, dtype=torch.float32)}
    meta = {"ss_network_dim": "4", "modelspec.title": "jane"}

    path = kohya_format.save(tmp_path / "a.safetensors", tensors, meta)

    with safe_open(str(path), framework="pt") as f:
        stored = f.metadata()
    model_hash, legacy_hash = kohya_format.sshs_hashes(tensors, meta)
    assert stored["sshs_model_hash"] == model_hash
    assert stored["sshs_legacy_hash"] == legacy_hash
    assert len(model_hash) == 64
    assert len(legacy_hash) == 8
    # Metadata outside ss_* does not enter the hash, as in sd-scripts.
    assert kohya_format.sshs_hashes(tensors, {"ss_network_dim": "4"}) == (model_hash, legacy_hash)
    # The legacy hash reads bytes at a fixed offset: a longer header shifts them.
    longer = {"ss_network_dim": "4", "ss_output_name": "a name long enough to move the data"}
    assert kohya_format.sshs_hashes(tensors, longer)[1] != legacy_hash


def test_a_peft_tensor_with_no_kohya_name_is_refused() -> None:
    with pytest.raises(ValueError, match="no kohya name"):
        kohya_format.unet_to_kohya(
            {"x.lora_magnitude_vector": torch.zeros(1)}, 1.0, sgm_layers_per_block=None
        )
