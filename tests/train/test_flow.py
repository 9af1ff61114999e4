"""Training the flow-matching transformers (klein, Z-Image, Qwen-Image, FLUX.1) on tiny models.

Each family's pipeline is built from config (tests/dit_models.py); every check runs on all four:
the loss falls, the written file loads whole into diffusers and draws what the in-memory adapter
draws (alpha != rank, trained lora_B), masks zero the loss where they are black, resume is exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip(
    "torch", reason="the train extra is not installed: pip install -e '.[train]'"
)

from peft import LoKrConfig, LoraConfig  # noqa: E402
from peft.utils import set_peft_model_state_dict  # noqa: E402
from safetensors import safe_open  # noqa: E402

from dit_models import draw  # noqa: E402
from faceset.train import TrainConfig, checkpoints, families, train  # noqa: E402
from faceset.train.adapters import add_lora  # noqa: E402

FAMILIES = ["flux2-klein", "zimage", "qwen-image", "flux1"]


def config(dataset: Path, base: Path, out: Path, family: str, **changes: Any) -> TrainConfig:
    values: dict[str, Any] = {
        "dataset": dataset, "base": str(base), "family": family, "out": out, "steps": 3,
        "rank": 4, "alpha": 2.0, "lr": 1e-2, "resolution": 64, "sample_every": 0,
    }  # fmt: skip
    return TrainConfig(**(values | changes))


def in_memory(base: Path, family: str, checkpoint: Path, network: str = "lora") -> Any:
    """The base pipeline carrying the checkpoint's adapter as a peft module (rank 4, alpha 2)."""
    impl = families.flow_family(family)
    pipe = impl.load(base, torch.float32)
    targets = impl.target_modules(pipe.transformer)
    if network == "lokr":
        add_lora(pipe.transformer, LoKrConfig(r=4, alpha=2.0, target_modules=targets))
    else:
        add_lora(pipe.transformer, LoraConfig(r=4, lora_alpha=2.0, target_modules=targets))
    set_peft_model_state_dict(pipe.transformer, checkpoints.load(checkpoint).lora["transformer"])
    return pipe


@pytest.mark.parametrize("family", FAMILIES)
def test_loss_falls_and_the_file_loads_whole_in_diffusers(
    family: str, dit_bases, make_dataset, tmp_path: Path
) -> None:
    base = dit_bases(family)
    cfg = config(make_dataset(images=2, repeats=1), base, tmp_path / "out", family, steps=24)

    result = train(cfg)

    first, last = sum(result.losses[:6]) / 6, sum(result.losses[-6:]) / 6
    assert last < first, f"{family}: loss {first:.4f} -> {last:.4f}"
    with safe_open(str(result.lora), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    assert keys
    assert all(k.startswith("transformer.") for k in keys)
    assert not any(k.endswith(".alpha") for k in keys)
    assert meta["modelspec.architecture"] == f"{families.info(family).architecture}/lora"
    assert meta["modelspec.trigger_phrase"] == "ohwx man"
    assert meta["modelspec.resolution"] == "64x64"
    assert (meta["ss_network_dim"], meta["ss_network_alpha"]) == ("4", "2")

    expected = draw(in_memory(base, family, result.checkpoints[-1]), family)
    untouched = draw(families.flow_family(family).load(base, torch.float32), family)
    assert abs(expected - untouched).max() > 1e-4, "training must change the output"
    pipe = families.flow_family(family).load(base, torch.float32)
    pipe.load_lora_weights(str(result.lora), adapter_name="person")
    loaded = {n for n, _ in pipe.transformer.named_parameters() if ".person." in n}
    assert len(loaded) == len(keys), "every key of the file becomes a weight of the adapter"
    assert abs(draw(pipe, family) - expected).max() < 1e-5


@pytest.mark.parametrize("family", ["flux2-klein", "zimage"])
def test_lokr_file_loads_in_diffusers_and_draws_as_trained(
    family: str, dit_bases, make_dataset, tmp_path: Path
) -> None:
    base = dit_bases(family)
    cfg = config(make_dataset(images=1, repeats=1), base, tmp_path / "out", family,
                 network="lokr", steps=2)  # fmt: skip

    result = train(cfg)

    with safe_open(str(result.lora), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    assert keys
    assert all(k.startswith("transformer.") and ".lokr_w" in k for k in keys)
    assert meta["modelspec.architecture"].endswith("/lokr")
    expected = draw(in_memory(base, family, result.checkpoints[-1], network="lokr"), family)
    pipe = families.flow_family(family).load(base, torch.float32)
    pipe.load_lora_weights(str(result.lora), adapter_name="person")
    assert abs(draw(pipe, family) - expected).max() < 1e-5


def test_lokr_is_refused_in_one_line_where_diffusers_cannot_load_it(
    dit_bases, make_dataset, tmp_path: Path
) -> None:
    from faceset.errors import ConfigError

    cfg = config(make_dataset(), dit_bases("qwen-image"), tmp_path / "o", "qwen-image",
                 network="lokr")  # fmt: skip

    with pytest.raises(ConfigError, match="cannot load a LoKr file of Qwen-Image"):
        train(cfg)
    assert not (tmp_path / "o").exists()


def test_a_black_mask_takes_the_image_out_of_the_loss(
    dit_bases, make_dataset, tmp_path: Path
) -> None:
    dataset = make_dataset(images=1, repeats=1, masks=True)
    for mask in (dataset / "masks").glob("*.png"):
        from PIL import Image

        Image.new("L", (64, 64), 0).save(mask)
    cfg = config(dataset, dit_bases("flux2-klein"), tmp_path / "out", "flux2-klein")

    result = train(cfg)

    assert result.losses == [0.0, 0.0, 0.0]
    unmasked = train(config(dataset, dit_bases("flux2-klein"), tmp_path / "o2", "flux2-klein",
                            masked_loss=False))  # fmt: skip
    assert min(unmasked.losses) > 0


@pytest.mark.parametrize("family", ["zimage", "qwen-image"])
def test_resume_is_bit_exact(family: str, dit_bases, make_dataset, tmp_path: Path) -> None:
    base, dataset = dit_bases(family), make_dataset(images=2, repeats=1)
    straight = train(config(dataset, base, tmp_path / "a", family, steps=4, save_every=2))
    first = config(dataset, base, tmp_path / "b", family, steps=2, save_every=2)
    train(first)

    resumed = train(config(dataset, base, tmp_path / "b", family, steps=4, save_every=2),
                    resume=True)  # fmt: skip

    assert resumed.resumed_from == 2
    assert resumed.losses == straight.losses[2:]
    with safe_open(str(straight.lora), "pt") as a, safe_open(str(resumed.lora), "pt") as b:
        assert list(a.keys()) == list(b.keys())
        for key in a.keys():
            assert torch.equal(a.get_tensor(key), b.get_tensor(key)), key


@pytest.mark.parametrize("family", FAMILIES)
def test_train_without_for_then_headshots_with_the_family_s_own_drawing(
    family: str, dit_bases, make_dataset, tmp_path: Path
) -> None:
    """The CLI reads the family from model_index.json; headshots draw with the family's own
    guidance, from the LoRA file alone (its metadata and training_config.json)."""
    from typer.testing import CliRunner

    from faceset.cli import app

    runner = CliRunner()
    dataset, out = make_dataset(images=1, repeats=1), tmp_path / "model"
    trained = runner.invoke(app, [
        "train", str(dataset), "--base", str(dit_bases(family)), "--out", str(out),
        "--steps", "1", "--rank", "4", "--resolution", "64", "--sample-every", "0",
    ])  # fmt: skip
    assert trained.exit_code == 0, trained.stderr
    saved = __import__("json").loads((out / "training_config.json").read_text())
    recipe = families.info(family)
    assert (saved["family"], saved["alpha"], saved["lr"]) == (family, 4.0, recipe.lr)

    drawn = runner.invoke(app, [
        "headshots", "--lora", str(out / "jane.safetensors"), "-n", "2", "--steps", "2",
        "--out", str(tmp_path / "shots"),
    ])  # fmt: skip

    assert drawn.exit_code == 0, drawn.stderr
    records = [
        __import__("json").loads(p.read_text()) for p in sorted((tmp_path / "shots").glob("*.json"))
    ]
    assert len(records) == 2
    assert {(r["family"], r["guidance"], r["width"], r["scheduler"]["class"]) for r in records} == {
        (family, recipe.guidance, 64, "FlowMatchEulerDiscreteScheduler")
    }


def test_a_for_that_contradicts_the_model_is_one_line(dit_bases, make_dataset) -> None:
    from typer.testing import CliRunner

    from faceset.cli import app

    base = dit_bases("flux2-klein")
    result = CliRunner().invoke(app, [
        "train", str(make_dataset()), "--base", str(base), "--for", "qwen-image",
    ])  # fmt: skip

    assert result.exit_code == 1
    assert result.stderr == (
        f"error: base model {base} is FLUX.2 [klein], not Qwen-Image; pass --for flux2-klein"
        " (or leave --for out)\n"
    )


def test_zimage_turbo_trains_through_its_adapter_and_saves_the_person_alone(
    dit_bases, make_dataset, tmp_path: Path
) -> None:
    """The training adapter (ai-toolkit's diffusion_model. keys) is merged into the base; the
    saved file holds the person's LoRA only, and a missing --adapter is one line."""
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    from faceset.errors import ConfigError

    base = dit_bases("zimage")
    pipe = families.flow_family("zimage").load(base, torch.float32)
    add_lora(pipe.transformer, LoraConfig(r=2, lora_alpha=2, target_modules=["to_q", "to_k"]))
    state = get_peft_model_state_dict(pipe.transformer)
    adapter = tmp_path / "zimage_turbo_training_adapter_v2.safetensors"
    save_file({f"diffusion_model.{k}": torch.randn(v.shape) for k, v in state.items()}, adapter)
    dataset = make_dataset(images=1, repeats=1)

    with pytest.raises(ConfigError, match="pass --adapter FILE"):
        train(config(dataset, base, tmp_path / "a", "zimage-turbo"))
    turbo = train(config(dataset, base, tmp_path / "b", "zimage-turbo", adapter=adapter,
                         sample_every=3, sample_steps=2, sample_prompts=("ohwx man",)))  # fmt: skip
    plain = train(config(dataset, base, tmp_path / "c", "zimage"))

    with safe_open(str(turbo.lora), "pt") as a, safe_open(str(plain.lora), "pt") as b:
        assert list(a.keys()) == list(b.keys())
        assert a.metadata()["modelspec.architecture"] == "z-image-turbo/lora"
    assert turbo.losses != plain.losses  # trained on the merged weights
    # The sample shows Turbo itself (adapter taken out again) with the person's LoRA.
    import numpy as np
    from PIL import Image

    expected = in_memory(base, "zimage", turbo.checkpoints[-1])
    impl = families.flow_family("zimage-turbo")
    inputs = impl.draw_inputs(expected, "ohwx man", "", 0.0, torch.device("cpu"))
    image = expected(**inputs, height=64, width=64, num_inference_steps=2,
                     generator=torch.Generator("cpu").manual_seed(42)).images[0]  # fmt: skip
    with Image.open(turbo.samples[0]) as sample:
        difference = np.abs(np.asarray(sample, np.int16) - np.asarray(image, np.int16))
    # float32 rounding of merging then subtracting the adapter: one level at most (without
    # taking it out again, the sample differs by 5.6 levels on average here)
    assert difference.max() <= 1


@pytest.mark.parametrize("family", ["flux2-klein", "qwen-image"])
def test_sample_sheets_are_drawn_from_cached_embeddings_after_the_text_encoder_is_freed(
    family: str, dit_bases, make_dataset, tmp_path: Path
) -> None:
    from PIL import Image

    cfg = config(make_dataset(images=1, repeats=1), dit_bases(family), tmp_path / "out", family,
                 steps=2, sample_every=2, sample_steps=2,
                 sample_prompts=("ohwx man", "ohwx man smiling"))  # fmt: skip

    result = train(cfg)

    assert [p.name for p in result.samples] == ["step-000002.png"]
    with Image.open(result.samples[0]) as sheet:
        assert sheet.size == (128, 64)
        left, right = sheet.crop((0, 0, 64, 64)), sheet.crop((64, 0, 128, 64))
        assert left.tobytes() != right.tobytes()  # two prompts, two seeds


# ComfyUI's key maps for transformer. LoRA keys (reference section 4.2: comfy/utils.py
# flux_to_diffusers and z_image_to_diffusers; Qwen-Image's native names are diffusers'),
# as patterns of the diffusers module names each family's LoRA may adapt.
COMFYUI_MAPPED = {
    "flux2-klein": (
        r"transformer_blocks\.\d+\.attn\.(to_[qkv]|to_out\.0|add_[qkv]_proj|to_add_out)",
        r"transformer_blocks\.\d+\.ff(_context)?\.linear_(in|out)",
        r"single_transformer_blocks\.\d+\.attn\.(to_qkv_mlp_proj|to_out)",
        r"(x_embedder|context_embedder|proj_out)",
    ),
    "flux1": (
        r"transformer_blocks\.\d+\.attn\.(to_[qkv]|to_out\.0|add_[qkv]_proj|to_add_out)",
        r"transformer_blocks\.\d+\.(ff|ff_context)\.net\.(0\.proj|2)",
        r"single_transformer_blocks\.\d+\.(attn\.to_[qkv]|proj_mlp|proj_out|norm\.linear)",
        r"(x_embedder|context_embedder|proj_out)",
    ),
    "zimage": (
        r"(layers|noise_refiner|context_refiner)\.\d+\.attention\.(to_[qkv]|to_out\.0)",
        r"(layers|noise_refiner|context_refiner)\.\d+\.(feed_forward\.w[123]|adaLN_modulation\.0)",
    ),
    "qwen-image": (r".+",),  # identity: every module name is its native name
}


@pytest.mark.parametrize("family", FAMILIES)
def test_every_module_the_lora_adapts_has_a_comfyui_name(family: str, dit_bases) -> None:
    import re

    impl = families.flow_family(family)
    transformer = impl.load(dit_bases(family), torch.float32).transformer
    patterns = [re.compile(p) for p in COMFYUI_MAPPED[family]]

    targets = impl.target_modules(transformer)

    assert targets
    unmapped = [t for t in targets if not any(p.fullmatch(t) for p in patterns)]
    assert not unmapped, f"ComfyUI would skip these keys of the file: {unmapped}"


@pytest.mark.parametrize("quantize", ["int8", "fp8"])
def test_drawing_follows_a_memory_plan_and_still_draws_the_person(
    quantize: str, dit_bases, make_dataset, tmp_path: Path
) -> None:
    """Engine(quantize=...) holds the transformer as the plan says; the LoRA loads on the
    quantised layers and the image stays close to the full-precision one."""
    import numpy as np

    from faceset.generate.engine import Engine, Request
    from faceset.generate.lora_file import read_lora

    base = dit_bases("flux2-klein")
    result = train(config(make_dataset(images=1, repeats=1), base, tmp_path / "out", "flux2-klein"))
    request = Request(prompt="ohwx man", negative_prompt="", seed=1, steps=2, guidance=4.0,
                      width=64, height=64, sampler="model", lora_weight=1.0)  # fmt: skip
    images = []
    for held in (None, quantize):
        engine = Engine(str(base), "flux2-klein", quantize=held)
        engine.use_lora(read_lora(result.lora))
        images.append(np.asarray(engine.render(request), np.int16))

    assert engine.memory is not None
    assert engine.memory.quantize == "int8"  # fp8 is drawn as int8 (see Engine._hold)
    assert np.abs(images[0] - images[1]).mean() < 8
