"""Tiny SD 1.5- and SDXL-shaped base models built from config, and tiny datasets to train on.

Nothing is downloaded: the models come from the configs of diffusers' own pipeline tests, the
CLIP tokenizer from the BPE vocabulary inside the open-clip-torch wheel
(../shared/reference/trainers.md section 10). Test modules needing torch call
``pytest.importorskip`` first, so without the ``train`` extra they skip with the reason.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

# Before huggingface_hub is imported anywhere: the tests never reach a model hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

SIZE = 64
"""Side of the test images; the tiny VAEs halve it, so latents are 32x32."""
TRIGGER = "ohwx man"


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    """Run torch on one thread: the tiny models gain nothing from a second one, and on a busy
    machine OpenMP's spinning threads made the suite up to 5x slower."""
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(1)


def _clip_vocabulary(out: Path) -> str:
    """Write vocab.json and merges.txt of CLIP's BPE to ``out``; return where they came from.

    The real BPE comes from the open-clip-torch wheel, located with find_spec and never
    imported (importing it needs torchvision, which must not sit beside the CPU torch). Where
    the wheel is absent, a byte-level vocabulary with no merges and CLIP's special ids stands in:
    every character is a token, which is enough to train on but not to check triggers.
    """
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    spec = importlib.util.find_spec("open_clip")
    if spec is not None and spec.submodule_search_locations:
        bpe = Path(spec.submodule_search_locations[0]) / "bpe_simple_vocab_16e6.txt.gz"
        lines = gzip.open(bpe).read().decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
        vocab = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        ids = {t: i for i, t in enumerate(vocab)}
        source = f"CLIP BPE from {bpe}"
    else:
        merges = []
        ids = {t: i for i, t in enumerate(chars + [c + "</w>" for c in chars])}
        ids |= {"<|startoftext|>": 49406, "<|endoftext|>": 49407}
        source = "byte-level stand-in (pip install --no-deps open-clip-torch==3.3.0 for CLIP's BPE)"
    (out / "vocab.json").write_text(json.dumps(ids))
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(" ".join(m) + "\n" for m in merges))
    return source


@pytest.fixture(scope="session")
def clip_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from transformers import CLIPTokenizer

    out = tmp_path_factory.mktemp("clip-tokenizer")
    source = _clip_vocabulary(out)
    print(f"tokenizer: {source}")
    return CLIPTokenizer(
        str(out / "vocab.json"),
        str(out / "merges.txt"),
        pad_token="<|endoftext|>",
        model_max_length=77,
    )


def tiny_sd15(tokenizer: Any) -> Any:
    """Return a 0.4 M-parameter SD 1.5-shaped pipeline (diffusers' test_stable_diffusion.py)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline
    from diffusers import UNet2DConditionModel as UNet
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=8,
        norm_num_groups=2,
    )
    vae = AutoencoderKL(
        block_out_channels=[4, 8],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        norm_num_groups=2,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
            hidden_size=8,
            intermediate_size=16,
            layer_norm_eps=1e-5,
            num_attention_heads=2,
            num_hidden_layers=2,
            vocab_size=49408,
            max_position_embeddings=77,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )


def tiny_sdxl(tokenizer: Any) -> Any:
    """Return an SDXL-shaped pipeline (diffusers' test_stable_diffusion_xl.py)."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline
    from diffusers import UNet2DConditionModel as UNet
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    unet = UNet(
        block_out_channels=(2, 4),
        layers_per_block=2,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,  # 6 * 8 + 32
        cross_attention_dim=64,  # 32 + 32
        norm_num_groups=1,
    )
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
        sample_size=128,
    )
    config = CLIPTextConfig(
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
        hidden_size=32,
        intermediate_size=37,
        layer_norm_eps=1e-5,
        num_attention_heads=4,
        num_hidden_layers=5,
        vocab_size=49408,
        hidden_act="gelu",
        projection_dim=32,
        max_position_embeddings=77,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        steps_offset=1,
        beta_schedule="scaled_linear",
        timestep_spacing="leading",
    )
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=CLIPTextModel(config),
        text_encoder_2=CLIPTextModelWithProjection(config),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=scheduler,
    )


@pytest.fixture(scope="session")
def sd15_base(tmp_path_factory: pytest.TempPathFactory, clip_tokenizer: Any) -> Path:
    """A tiny SD 1.5 base model folder, as ``save_pretrained`` writes it (about 5 MB)."""
    out = tmp_path_factory.mktemp("sd15-base")
    tiny_sd15(clip_tokenizer).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def sdxl_base(tmp_path_factory: pytest.TempPathFactory, clip_tokenizer: Any) -> Path:
    out = tmp_path_factory.mktemp("sdxl-base")
    tiny_sdxl(clip_tokenizer).save_pretrained(out)
    return out


def face_image(seed: int) -> Image.Image:
    """Return a SIZE px RGB test image: a bright disc ("face") on a textured background."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    disc = (x - SIZE / 2) ** 2 + (y - SIZE / 2) ** 2 < (SIZE / 4) ** 2
    pixels = rng.integers(0, 80, (SIZE, SIZE, 3))
    pixels[disc] = [230, 190, 160]
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


@pytest.fixture
def write_images() -> Callable[[Path, int], list[Path]]:
    """Return a function writing ``n`` caption-less test images into a folder."""

    def write(folder: Path, n: int) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = [folder / f"{i:04d}-class.jpg" for i in range(n)]
        for i, path in enumerate(paths):
            face_image(100 + i).save(path, quality=95)
        return paths

    return write


MakeDataset = Callable[..., Path]


@pytest.fixture
def make_dataset(tmp_path: Path) -> MakeDataset:
    """Return a function writing an export-shaped dataset folder and returning its path."""

    def make(
        name: str = "jane",
        images: int = 3,
        repeats: int = 2,
        masks: bool = False,
        mask_subfolder: bool = False,
    ) -> Path:
        root = tmp_path / name
        concept = f"{repeats}_{TRIGGER}"
        folder = root / "img" / concept
        folder.mkdir(parents=True)
        for i in range(images):
            stem = f"{i:04d}-face"
            face_image(i).save(folder / f"{stem}.png")
            (folder / f"{stem}.txt").write_text(f"{TRIGGER}, photo {i}\n", encoding="utf-8")
            if masks:
                mask_dir = root / "masks" / (concept if mask_subfolder else "")
                mask_dir.mkdir(parents=True, exist_ok=True)
                mask = np.full((SIZE, SIZE), 50, np.uint8)  # a grey floor outside the face
                mask[SIZE // 4 : 3 * SIZE // 4, SIZE // 4 : 3 * SIZE // 4] = 255
                mask[:, : SIZE // 8] = 0  # another person at the left edge
                Image.fromarray(mask, "L").save(mask_dir / f"{stem}.png")
        return root

    return make


@pytest.fixture(scope="session")
def dit_bases(
    tmp_path_factory: pytest.TempPathFactory, clip_tokenizer: Any
) -> Callable[[str], Path]:
    """Return a function giving the folder of a tiny pipeline of a transformer family, built on
    first use (tests/dit_models.py)."""
    import dit_models

    built: dict[str, Path] = {}

    def base(family: str) -> Path:
        if family not in built:
            out = tmp_path_factory.mktemp(f"{family}-base")
            built[family] = dit_models.build(family, out, clip_tokenizer)
        return built[family]

    return base
