"""Training on tiny models: the loss falls, files reload exactly, masks and resume behave."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip(
    "torch", reason="the train extra is not installed: pip install -e '.[train]'"
)

from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline  # noqa: E402
from peft import LoraConfig  # noqa: E402
from peft.utils import set_peft_model_state_dict  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from faceset.train import TrainConfig, checkpoints, train  # noqa: E402
from faceset.train.adapters import add_lora, load_lora_file  # noqa: E402
from faceset.train.base_model import load_base  # noqa: E402
from faceset.train.cache import Cache, build_cache  # noqa: E402
from faceset.train.dataset import read_dataset  # noqa: E402
from faceset.train.loop import (  # noqa: E402
    TEXT_ENCODER_TARGETS,
    UNET_TARGETS,
    masked_mse,
)

PIPELINES = {"sd15": StableDiffusionPipeline, "sdxl": StableDiffusionXLPipeline}


def config(dataset: Path, base: Path, out: Path, **changes: Any) -> TrainConfig:
    """Return a tiny run: 64 px, rank 4 with alpha 2 (alpha != rank), no samples."""
    values: dict[str, Any] = {
        "dataset": dataset,
        "base": str(base),
        "family": "sd15",
        "out": out,
        "steps": 3,
        "rank": 4,
        "alpha": 2.0,
        "lr": 1e-2,
        "resolution": 64,
        "sample_every": 0,
    }
    return TrainConfig(**(values | changes))


def render(pipe: Any) -> Any:
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        "ohwx man, studio lighting",
        height=64,
        width=64,
        num_inference_steps=2,
        guidance_scale=1.0,  # no classifier-free guidance: half the compute, same check
        generator=torch.Generator("cpu").manual_seed(0),
        output_type="np",
    ).images[0]


def in_memory(base: Path, family: str, checkpoint: Path, rank: int, alpha: float) -> Any:
    """Return the base pipeline carrying the adapters of ``checkpoint`` as peft modules."""
    pipe = PIPELINES[family].from_pretrained(base)
    for name, state in checkpoints.load(checkpoint).lora.items():
        targets = UNET_TARGETS if name == "unet" else TEXT_ENCODER_TARGETS
        module = getattr(pipe, name)
        add_lora(module, LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets))
        set_peft_model_state_dict(module, state)
    return pipe


def test_loss_falls_on_a_tiny_dataset(sd15_base: Path, make_dataset, tmp_path: Path) -> None:
    cfg = config(make_dataset(), sd15_base, tmp_path / "out", steps=120, save_every=1000)

    losses = train(cfg).losses

    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < 0.92 * first, (first, last)


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_trained_files_reload_to_the_in_memory_adapter(
    family: str, sd15_base: Path, sdxl_base: Path, make_dataset, tmp_path: Path
) -> None:
    base = sdxl_base if family == "sdxl" else sd15_base
    cfg = config(make_dataset(), base, tmp_path / "out", family=family, train_text_encoder=True)

    result = train(cfg)

    expected = render(in_memory(base, family, result.checkpoints[-1], rank=4, alpha=2.0))
    untouched = render(PIPELINES[family].from_pretrained(base))
    assert abs(expected - untouched).max() > 1e-4, "training must change the output"
    for lora in (result.lora, result.diffusers_lora):
        pipe = PIPELINES[family].from_pretrained(base)
        pipe.load_lora_weights(str(lora))
        assert abs(render(pipe) - expected).max() < 1e-5, lora.name
        # faceset's own loader (headshots, eval) puts the text encoders' part on with peft
        # directly and must draw the same image as diffusers' loader.
        pipe = PIPELINES[family].from_pretrained(base)
        load_lora_file(pipe, lora, "faceset")
        assert abs(render(pipe) - expected).max() < 1e-5, f"load_lora_file {lora.name}"


def test_kohya_file_keys_and_metadata(sd15_base: Path, make_dataset, tmp_path: Path) -> None:
    dataset = make_dataset(name="jane", images=3, repeats=2)
    cfg = config(dataset, sd15_base, tmp_path / "out", train_text_encoder=True, seed=7)

    result = train(cfg)

    with safe_open(str(result.lora), framework="pt") as f:
        meta, keys = f.metadata(), list(f.keys())
    assert result.lora.name == "jane.safetensors"
    assert all(k.startswith(("lora_unet_", "lora_te_text_model_")) for k in keys)
    assert all(isinstance(v, str) for v in meta.values())
    assert {k: meta[k] for k in EXPECTED_SD15} == EXPECTED_SD15
    assert json.loads(meta["ss_tag_frequency"])["2_ohwx man"]["ohwx man"] == 3
    assert json.loads(meta["ss_dataset_dirs"]) == {"2_ohwx man": {"n_repeats": 2, "img_count": 3}}
    assert float(meta["ss_training_finished_at"]) >= float(meta["ss_training_started_at"])
    assert len(meta["sshs_model_hash"]) == 64
    assert len(meta["sshs_legacy_hash"]) == 8
    alphas = load_file(str(result.lora))
    assert {t.item() for k, t in alphas.items() if k.endswith(".alpha")} == {2.0}


EXPECTED_SD15 = {
    "ss_network_module": "networks.lora",
    "ss_network_dim": "4",
    "ss_network_alpha": "2",
    "ss_network_args": "{}",
    "ss_base_model_version": "sd_v1",
    "ss_v2": "False",
    "ss_output_name": "jane",
    "ss_resolution": "(64, 64)",
    "ss_num_train_images": "6",
    "ss_num_reg_images": "0",
    "ss_training_comment": "ohwx",
    "ss_learning_rate": "0.01",
    "ss_text_encoder_lr": "5e-05",
    "ss_max_train_steps": "3",
    "ss_steps": "3",
    "ss_seed": "7",
    "ss_masked_loss": "False",
    "modelspec.sai_model_spec": "1.0.1",
    "modelspec.architecture": "stable-diffusion-v1/lora",
    "modelspec.implementation": "diffusers",
    "modelspec.title": "jane",
    "modelspec.resolution": "64x64",
    "modelspec.trigger_phrase": "ohwx man",
}


def test_sdxl_file_says_sdxl_and_uses_kohyas_names(
    sdxl_base: Path, make_dataset, tmp_path: Path
) -> None:
    cfg = config(make_dataset(), sdxl_base, tmp_path / "out", family="sdxl", steps=1)
    cfg = cfg.model_copy(update={"train_text_encoder": True})

    result = train(cfg)

    with safe_open(str(result.lora), framework="pt") as f:
        meta, keys = f.metadata(), list(f.keys())
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0"
    assert meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
    prefixes = {k.split("_")[1] for k in keys}
    assert prefixes == {"unet", "te1", "te2"}
    assert any(k.startswith("lora_unet_input_blocks_4_1_") for k in keys)
    assert any(k.startswith("lora_te2_text_model_encoder_layers_") for k in keys)


def test_resume_after_interruption_equals_an_uninterrupted_run(
    sd15_base: Path, make_dataset, tmp_path: Path
) -> None:
    dataset = make_dataset()
    # A schedule with warm-up and a text encoder: the resumed run must restore the optimiser
    # (Adam moments), the learning-rate schedule and both adapters to match.
    changes = {
        "steps": 6,
        "save_every": 3,
        "batch_size": 2,
        "train_text_encoder": True,
        "lr_scheduler": "cosine",
        "lr_warmup_steps": 2,
    }
    full = train(config(dataset, sd15_base, tmp_path / "full", **changes))

    def interrupt_at_5(step: Any) -> None:
        if step.step == 5:
            raise KeyboardInterrupt

    cut = config(dataset, sd15_base, tmp_path / "cut", **changes)
    with pytest.raises(KeyboardInterrupt):
        train(cut, on_step=interrupt_at_5)
    resumed = train(cut, resume=True)

    assert resumed.resumed_from == 3
    assert resumed.losses == full.losses[3:]
    a, b = load_file(str(full.lora)), load_file(str(resumed.lora))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_zero_mask_cells_get_no_gradient(sd15_base: Path, make_dataset) -> None:
    # The test masks are 0 in the 8 left pixel columns (another person), 255 on the face and
    # a grey floor elsewhere; the tiny VAE halves 64 px to 32 latent cells.
    dataset = read_dataset(make_dataset(images=1, masks=True))
    base = load_base(str(sd15_base), "sd15")
    cache = build_cache(
        base,
        dataset,
        resolution=64,
        masked_loss=True,
        prior_loss_weight=1.0,
        cache_text=True,
        device=torch.device("cpu"),
        text_dtype=torch.float32,
    )
    assert cache.weights is not None
    weights = cache.weights[:1]
    assert weights[..., :4].eq(0).all()
    assert weights[..., 4:].gt(0.15).all()

    unet = base.unet
    unet.add_adapter(LoraConfig(r=4, lora_alpha=2, target_modules=UNET_TARGETS))
    torch.manual_seed(0)
    noisy = torch.randn(1, 4, 32, 32)
    hidden = cache.text[cache.captions[0]][0][None]
    target = torch.randn(1, 4, 32, 32)

    def lora_grads(target: torch.Tensor) -> list[torch.Tensor]:
        unet.zero_grad()
        prediction = unet(noisy, torch.tensor([500]), hidden).sample
        prediction.retain_grad()
        masked_mse(prediction, target, weights, torch.ones(1)).backward()
        assert prediction.grad is not None
        assert prediction.grad[..., :4].eq(0).all()
        return [p.grad.clone() for p in unet.parameters() if p.grad is not None]

    other_person = target.clone()
    other_person[..., :4] = torch.randn(1, 4, 32, 4) * 10
    elsewhere = target.clone()
    elsewhere[..., 4:8] += 1.0

    before = lora_grads(target)
    assert all(torch.equal(g, h) for g, h in zip(before, lora_grads(other_person), strict=True))
    assert not all(torch.equal(g, h) for g, h in zip(before, lora_grads(elsewhere), strict=True))


def test_masks_weight_training_and_are_recorded(
    sd15_base: Path, make_dataset, tmp_path: Path
) -> None:
    unmasked = train(config(make_dataset(name="a"), sd15_base, tmp_path / "a"))
    masked = train(config(make_dataset(name="b", masks=True), sd15_base, tmp_path / "b"))

    assert masked.losses != unmasked.losses
    with safe_open(str(masked.lora), framework="pt") as f:
        assert f.metadata()["ss_masked_loss"] == "True"


def test_regularisation_images_join_each_epoch_with_their_weight(
    sd15_base: Path, make_dataset, write_images, tmp_path: Path
) -> None:
    reg = tmp_path / "reg"
    write_images(reg, 2)
    cfg = config(make_dataset(images=3, repeats=2), sd15_base, tmp_path / "out", reg=reg)

    result = train(cfg.model_copy(update={"prior_loss_weight": 0.5}))

    with safe_open(str(result.lora), framework="pt") as f:
        meta = f.metadata()
    assert meta["ss_num_reg_images"] == "2"
    assert meta["ss_prior_loss_weight"] == "0.5"


def test_an_epoch_has_as_many_reg_views_as_person_views() -> None:
    empty = torch.zeros(4, 1)
    cache = Cache(
        latent_mean=empty,
        latent_std=empty,
        weights=None,
        loss_weights=torch.ones(4),
        captions=["a", "b", "man", "man"],
        time_ids=None,
        repeats=[3, 3, 1, 1],
        is_reg=[False, False, True, True],
        text={},
    )

    items = cache.epoch_items()

    assert items == [0, 0, 0, 1, 1, 1, 2, 3, 2, 3, 2, 3]


def test_checkpoints_hold_a_kohya_file_of_their_step(
    sd15_base: Path, make_dataset, tmp_path: Path
) -> None:
    result = train(config(make_dataset(), sd15_base, tmp_path / "out", steps=4, save_every=2))

    assert [c.name for c in result.checkpoints] == ["step-000002", "step-000004"]
    first = result.checkpoints[0]
    assert (first / "jane-step000002.safetensors").is_file()
    saved = json.loads((first / "training_config.json").read_text())
    assert saved["rank"] == 4
    assert saved["masked_loss"] is False
    assert saved["precision"] == "no"


def test_gradient_checkpointing_gives_the_same_weights(
    sd15_base: Path, make_dataset, tmp_path: Path
) -> None:
    dataset = make_dataset()
    changes = {"steps": 2, "train_text_encoder": True}

    plain = train(config(dataset, sd15_base, tmp_path / "a", **changes))
    checkpointed = train(
        config(dataset, sd15_base, tmp_path / "b", gradient_checkpointing=True, **changes)
    )

    a, b = load_file(str(plain.lora)), load_file(str(checkpointed.lora))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bf16_mixed_precision_trains_float32_adapters(
    sd15_base: Path, make_dataset, tmp_path: Path
) -> None:
    # What a GPU run does, on the CPU: bf16 base weights, fp32 LoRA weights (diffusers#6514).
    cfg = config(make_dataset(), sd15_base, tmp_path / "out", steps=1, precision="bf16")

    result = train(cfg.model_copy(update={"train_text_encoder": True}))

    assert all(loss == loss for loss in result.losses)  # no NaN
    tensors = load_file(str(result.lora))
    assert {t.dtype for t in tensors.values()} == {torch.float32}
    with safe_open(str(result.lora), framework="pt") as f:
        assert f.metadata()["ss_mixed_precision"] == "bf16"
