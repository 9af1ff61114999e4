"""Tiny FLUX.2 klein, Z-Image, Qwen-Image and FLUX.1 pipelines built from config, offline.

The configs are those of diffusers' own pipeline tests (``get_dummy_components``), changed as
../shared/reference/dit-families.md section 3 explains: klein's text encoder has 28 layers so the
pipeline's layers (9, 18, 27) exist, every family has its real scheduler config, and FLUX.1 has
its guidance embedding. Tokenizers are built here: a byte-level BPE trained on a toy corpus for
the Qwen families (no real Qwen vocabulary is reachable offline), CLIP's real BPE from the
open-clip-torch wheel (tests/train/conftest.py), and a small Unigram model for T5.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CORPUS = [
    "a professional headshot photo of ohwx man, studio lighting, neutral background",
    "ohwx woman smiling, outdoor portrait, natural light, sharp focus",
    "a photo of a person, close-up portrait, business attire, soft light",
    "Describe the image by detailing the color, shape, size, texture, quantity, text, spatial"
    " relationships of the objects and background:",
    "user assistant system image video text think",
]
QWEN3_TEMPLATE = (
    "{%- for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}"
    "<|im_end|>\n{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n"
    "{%- if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n"
    "{%- endif %}{%- endif %}"
)
FAMILIES = ("flux2-klein", "zimage", "qwen-image", "flux1")


def qwen_tokenizer() -> Any:
    """A Qwen2 byte-level BPE tokenizer with the chat specials, trained on ``CORPUS``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    bpe.train_from_iterator(CORPUS, trainer)
    state = bpe.model.__getstate__()
    import json

    model = json.loads(state) if isinstance(state, (str, bytes)) else state
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tokenizer = Qwen2Tokenizer(
        vocab=model["vocab"],
        merges=merges,
        unk_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    tokenizer.add_special_tokens(
        {"additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<think>", "</think>"]}
    )
    tokenizer.chat_template = QWEN3_TEMPLATE
    return tokenizer


def t5_tokenizer() -> Any:
    from transformers import T5Tokenizer

    words = sorted({w for line in CORPUS for w in line.replace(",", " ").lower().split()})
    chars = sorted({c for line in CORPUS for c in line.lower() if not c.isspace()})
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -3.0)]
    vocab += [(f"\u2581{w}", -5.0) for w in words] + [(c, -8.0) for c in chars]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=512)


def _qwen3(layers: int, vocab: int) -> Any:
    from transformers import Qwen3Config

    return Qwen3Config(
        hidden_size=16, intermediate_size=16, num_hidden_layers=layers, num_attention_heads=2,
        num_key_value_heads=2, vocab_size=vocab, max_position_embeddings=1024, head_dim=8,
    )  # fmt: skip


def build(family: str, out: Path, clip_tokenizer: Any = None) -> Path:
    """Write a tiny diffusers pipeline folder of ``family`` to ``out``; return it."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler

    torch.manual_seed(0)
    if family == "flux2-klein":
        from diffusers import AutoencoderKLFlux2, Flux2KleinPipeline, Flux2Transformer2DModel
        from transformers import Qwen3ForCausalLM

        tokenizer = qwen_tokenizer()
        pipe = Flux2KleinPipeline(
            transformer=Flux2Transformer2DModel(
                patch_size=1, in_channels=4, num_layers=1, num_single_layers=1,
                attention_head_dim=16, num_attention_heads=2, joint_attention_dim=48,
                timestep_guidance_channels=256, axes_dims_rope=[4, 4, 4, 4], guidance_embeds=False,
            ),
            text_encoder=Qwen3ForCausalLM(_qwen3(28, 1024)),
            tokenizer=tokenizer,
            vae=AutoencoderKLFlux2(
                sample_size=32, in_channels=3, out_channels=3,
                down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",),
                block_out_channels=(4,), layers_per_block=1, latent_channels=1, norm_num_groups=1,
                use_quant_conv=False, use_post_quant_conv=False,
            ),
            scheduler=FlowMatchEulerDiscreteScheduler(
                shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                base_image_seq_len=256, max_image_seq_len=4096,
            ),
            is_distilled=False,
        )  # fmt: skip
    elif family == "zimage":
        from diffusers import AutoencoderKL, ZImagePipeline, ZImageTransformer2DModel
        from transformers import Qwen3Model

        transformer = ZImageTransformer2DModel(
            all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32, n_layers=2,
            n_refiner_layers=1, n_heads=2, n_kv_heads=2, norm_eps=1e-5, qk_norm=True,
            cap_feat_dim=16, rope_theta=256.0, t_scale=1000.0, axes_dims=[8, 4, 4],
            axes_lens=[256, 32, 32],
        )  # fmt: skip
        with torch.no_grad():  # as diffusers' test: the pad tokens start as ones
            transformer.x_pad_token.copy_(torch.ones_like(transformer.x_pad_token))
            transformer.cap_pad_token.copy_(torch.ones_like(transformer.cap_pad_token))
        pipe = ZImagePipeline(
            transformer=transformer,
            text_encoder=Qwen3Model(_qwen3(2, 1024)),
            tokenizer=qwen_tokenizer(),
            vae=AutoencoderKL(
                block_out_channels=[32, 64], layers_per_block=1, latent_channels=16,
                norm_num_groups=32, sample_size=32, scaling_factor=0.3611, shift_factor=0.1159,
                down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
            ),
            scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=False),
        )  # fmt: skip
    elif family == "qwen-image":
        from diffusers import (
            AutoencoderKLQwenImage,
            QwenImagePipeline,
            QwenImageTransformer2DModel,
        )
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

        config = Qwen2_5_VLConfig(
            text_config={
                "hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 2,
                "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": 152064,
                "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
                "rope_theta": 1000000.0,
            },
            vision_config={
                "depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2,
                "out_hidden_size": 16,
            },
            hidden_size=16, vocab_size=152064, vision_start_token_id=151652,
            vision_end_token_id=151653, vision_token_id=151654,
        )  # fmt: skip
        pipe = QwenImagePipeline(
            transformer=QwenImageTransformer2DModel(
                patch_size=2, in_channels=16, out_channels=4, num_layers=2, attention_head_dim=16,
                num_attention_heads=3, joint_attention_dim=16, guidance_embeds=False,
                axes_dims_rope=(8, 4, 4),
            ),
            text_encoder=Qwen2_5_VLForConditionalGeneration(config),
            tokenizer=qwen_tokenizer(),
            vae=AutoencoderKLQwenImage(
                base_dim=24, z_dim=4, dim_mult=[1, 2, 4], num_res_blocks=1,
                temperal_downsample=[False, True], latents_mean=[0.0] * 4, latents_std=[1.0] * 4,
            ),
            scheduler=FlowMatchEulerDiscreteScheduler(
                shift=1.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9,
                base_image_seq_len=256, max_image_seq_len=8192, shift_terminal=0.02,
                time_shift_type="exponential",
            ),
        )  # fmt: skip
    elif family == "flux1":
        from diffusers import AutoencoderKL, FluxPipeline, FluxTransformer2DModel
        from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

        assert clip_tokenizer is not None, "FLUX.1 needs the CLIP tokenizer of the SD fixtures"
        t5 = t5_tokenizer()
        pipe = FluxPipeline(
            transformer=FluxTransformer2DModel(
                patch_size=1, in_channels=4, num_layers=1, num_single_layers=1,
                attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                pooled_projection_dim=32, axes_dims_rope=[4, 4, 8], guidance_embeds=True,
            ),
            text_encoder=CLIPTextModel(CLIPTextConfig(
                bos_token_id=49406, eos_token_id=49407, pad_token_id=49407, hidden_size=32,
                intermediate_size=37, num_attention_heads=4, num_hidden_layers=5,
                vocab_size=49408, hidden_act="gelu", projection_dim=32,
            )),
            tokenizer=clip_tokenizer,
            text_encoder_2=T5EncoderModel(T5Config(
                d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                relative_attention_num_buckets=8, vocab_size=len(t5),
            )),
            tokenizer_2=t5,
            vae=AutoencoderKL(
                sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,),
                layers_per_block=1, latent_channels=1, norm_num_groups=1, use_quant_conv=False,
                use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035,
            ),
            scheduler=FlowMatchEulerDiscreteScheduler(
                shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                base_image_seq_len=256, max_image_seq_len=4096,
            ),
        )  # fmt: skip
    else:
        raise ValueError(family)
    pipe.save_pretrained(out)
    return out


def draw(pipe: Any, family: str) -> Any:
    """A 2-step 32 px image (numpy) with the family's own guidance path switched on."""
    import torch

    from faceset.train import families

    impl = families.flow_family(family)
    pipe.set_progress_bar_config(disable=True)
    inputs = impl.draw_inputs(
        pipe, "ohwx man, studio lighting", "", impl.info.guidance, torch.device("cpu")
    )
    return pipe(
        **inputs, height=32, width=32, num_inference_steps=2,
        generator=torch.Generator("cpu").manual_seed(0), output_type="np",
    ).images[0]  # fmt: skip
