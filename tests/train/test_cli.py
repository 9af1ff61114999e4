"""``faceset train`` as a user runs it: files written, resume, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip(
    "torch", reason="the train extra is not installed: pip install -e '.[train]'"
)

from typer.testing import CliRunner  # noqa: E402

from faceset.cli import app  # noqa: E402

runner = CliRunner()
TINY = ("--rank", "4", "--alpha", "2", "--resolution", "64", "--sample-every", "0")


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, ["train", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def test_train_writes_the_lora_files_checkpoints_and_sample_sheets(
    sd15_base: Path, make_dataset
) -> None:
    dataset = make_dataset(name="jane")

    code, stdout, stderr = invoke(
        dataset, "--base", sd15_base, "--for", "sd15", "--steps", "4", "--save-every", "2",
        *TINY[:6], "--sample-every", "2", "--sample-steps", "2",
        "--sample-prompt", "ohwx man", "--sample-prompt", "ohwx man smiling",
    )  # fmt: skip

    assert code == 0, stderr
    out = dataset / "model"  # the default --out, where kohya's GUI puts models
    assert stdout.splitlines() == [
        f"LoRA: {out / 'jane.safetensors'}",
        f"diffusers: {out / 'pytorch_lora_weights.safetensors'}",
        f"config: {out / 'training_config.json'}",
        f"samples: {out / 'samples' / 'step-000004.png'}",
    ]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step-000002",
        "step-000004",
    ]
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "step-000002.png",
        "step-000004.png",
    ]
    from PIL import Image

    with Image.open(out / "samples" / "step-000004.png") as sheet:
        assert sheet.size == (128, 64)  # two prompts side by side
    saved = json.loads((out / "training_config.json").read_text())
    assert saved["sample_prompts"] == ["ohwx man", "ohwx man smiling"]
    assert saved["dataset"] == str(dataset)
    assert saved["base"] == str(sd15_base)


def test_resume_goes_on_from_the_latest_checkpoint_with_more_steps(
    sd15_base: Path, make_dataset, tmp_path: Path
) -> None:
    dataset, out = make_dataset(), tmp_path / "lora"
    first = invoke(
        dataset, "--base", sd15_base, "--for", "sd15", "--out", out, "--steps", "2", *TINY
    )
    assert first[0] == 0, first[2]

    code, _, stderr = invoke(dataset, "--out", out, "--resume", "--steps", "3")

    assert code == 0, stderr
    assert (out / "checkpoints" / "step-000003").is_dir()
    saved = json.loads((out / "training_config.json").read_text())
    assert (saved["steps"], saved["rank"], saved["alpha"]) == (3, 4, 2.0)


def test_resume_refuses_a_setting_that_changes_the_weights(
    sd15_base: Path, make_dataset, tmp_path: Path
) -> None:
    dataset, out = make_dataset(), tmp_path / "lora"
    invoke(dataset, "--base", sd15_base, "--for", "sd15", "--out", out, "--steps", "1", *TINY)

    code, _, stderr = invoke(dataset, "--out", out, "--resume", "--rank", "8")

    assert code == 1
    assert stderr == (
        f"error: cannot resume with rank=8: the run in {out} used 4;"
        " drop the flag or train into a new --out\n"
    )


def test_a_second_run_into_the_same_folder_asks_for_resume(
    sd15_base: Path, make_dataset, tmp_path: Path
) -> None:
    dataset, out = make_dataset(), tmp_path / "lora"
    args = (dataset, "--base", sd15_base, "--for", "sd15", "--out", out, "--steps", "1", *TINY)
    invoke(*args)

    code, _, stderr = invoke(*args)

    assert code == 1
    assert stderr == (
        f"error: {out} already holds a training run; pass --resume to continue it, or another --out\n"
    )


def test_resume_without_a_checkpoint_says_so(make_dataset, tmp_path: Path) -> None:
    code, _, stderr = invoke(make_dataset(), "--out", tmp_path / "none", "--resume")

    assert code == 1
    assert (
        stderr
        == f"error: nothing to resume: {tmp_path / 'none' / 'checkpoints'} holds no checkpoint\n"
    )


def test_pointing_at_img_names_the_dataset_folder(sd15_base: Path, make_dataset) -> None:
    dataset = make_dataset()

    code, _, stderr = invoke(dataset / "img", "--base", sd15_base, "--for", "sd15")

    assert code == 1
    assert stderr == (
        f"error: {dataset / 'img'} is the img/ folder; pass the dataset folder above it: {dataset}\n"
    )


def test_a_folder_that_is_not_a_dataset(sd15_base: Path, tmp_path: Path) -> None:
    code, _, stderr = invoke(tmp_path, "--base", sd15_base, "--for", "sd15")

    assert code == 1
    assert stderr == (
        f"error: {tmp_path} is not a faceset or kohya dataset (no img/<repeats>_<trigger> <class>/"
        " and no dataset.toml); pass the folder faceset export wrote\n"
    )


def test_for_must_match_the_base_model(sd15_base: Path, sdxl_base: Path, make_dataset) -> None:
    dataset = make_dataset()

    sd15_as_sdxl = invoke(dataset, "--base", sd15_base, "--for", "sdxl")
    sdxl_as_sd15 = invoke(dataset, "--base", sdxl_base, "--for", "sd15")

    assert sd15_as_sdxl[::2] == (
        1,
        f"error: base model {sd15_base} is SD 1.5, not SDXL; pass --for sd15 (or leave --for"
        " out)\n",
    )
    assert sdxl_as_sd15[::2] == (
        1,
        f"error: base model {sdxl_base} is SDXL, not SD 1.5; pass --for sdxl (or leave --for"
        " out)\n",
    )


@pytest.mark.parametrize(
    ("make_base", "message"),
    [
        (lambda d: d / "missing", "base model {base} does not exist"),
        (
            lambda d: d,
            "base model {base} is not a diffusers folder (no model_index.json)",
        ),
        (
            lambda d: (d / "model.safetensors", (d / "model.safetensors").write_bytes(b"junk"))[0],
            "cannot load base model {base}: ",
        ),
        (
            lambda d: (d / "model.ckpt", (d / "model.ckpt").write_bytes(b"junk"))[0],
            "base model {base} is not a .safetensors checkpoint;",
        ),
        (lambda d: "nobody/no-such-model", "cannot load base model nobody/no-such-model: "),
    ],
    ids=["missing", "not-diffusers", "bad-checkpoint", "ckpt", "offline-id"],
)
def test_a_base_model_that_cannot_be_loaded(
    make_dataset, tmp_path: Path, make_base, message: str
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    base = make_base(folder)

    code, _, stderr = invoke(make_dataset(), "--base", base, "--for", "sd15")

    assert code == 1
    last = stderr.splitlines()[-1]  # after the INFO line saying which model is loading
    assert last.startswith("error: " + message.format(base=base))


def test_out_of_memory_names_the_flag_to_lower(
    sd15_base: Path, make_dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    from faceset.train import loop

    def no_memory(*_args: object, **_kwargs: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(loop, "_loss", no_memory)

    one = invoke(make_dataset(name="a"), "--base", sd15_base, "--for", "sd15", *TINY)
    two = invoke(
        make_dataset(name="b"), "--base", sd15_base, "--for", "sd15", *TINY, "--batch-size", "2"
    )

    assert one[0] == 1
    assert one[2].splitlines()[-1] == (
        "error: out of GPU memory at --batch-size 1; lower --resolution,"
        " or pass --gradient-checkpointing"
    )
    assert two[2].splitlines()[-1] == (
        "error: out of GPU memory at --batch-size 2; lower --batch-size,"
        " or pass --gradient-checkpointing"
    )


def test_base_is_required_for_a_new_run(make_dataset) -> None:
    code, _, stderr = invoke(make_dataset())

    assert code == 1
    assert stderr == "error: --base is required (or --resume a run in --out)\n"


def test_a_model_whose_family_cannot_be_told_needs_for(make_dataset) -> None:
    code, _, stderr = invoke(make_dataset(), "--base", "someone/some-model")

    assert code == 1
    assert stderr.startswith("error: cannot tell which model family someone/some-model is: pass")
    assert "flux2-klein, zimage, zimage-turbo, qwen-image, flux1" in stderr


def test_8bit_adam_without_bitsandbytes_says_what_to_install(sd15_base: Path, make_dataset) -> None:
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes is installed here")

    code, _, stderr = invoke(
        make_dataset(), "--base", sd15_base, "--for", "sd15", "--optimizer", "adamw8bit", *TINY
    )

    assert code == 1
    assert stderr.splitlines()[-1] == (
        "error: optimizer adamw8bit needs bitsandbytes: pip install bitsandbytes"
    )


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_train_text_encoder_writes_trained_text_encoder_keys(
    family: str, sd15_base: Path, sdxl_base: Path, make_dataset, tmp_path: Path
) -> None:
    """--train-text-encoder adds LoRA to every CLIP attention projection and trains it."""
    from safetensors import safe_open

    from faceset.train import kohya_format

    base = sdxl_base if family == "sdxl" else sd15_base
    out = tmp_path / "lora"
    code, _, stderr = invoke(
        make_dataset(), "--base", base, "--for", family, "--out", out, "--steps", "3",
        "--train-text-encoder", *TINY,
    )  # fmt: skip

    assert code == 0, stderr
    prefixes = kohya_format.TEXT_ENCODERS_XL if family == "sdxl" else (kohya_format.TEXT_ENCODER,)
    with safe_open(out / "jane.safetensors", "pt") as f:  # named after the dataset folder
        keys = set(f.keys())
        for prefix in prefixes:
            ups = sorted(
                k for k in keys if k.startswith(f"{prefix}_") and k.endswith("lora_up.weight")
            )
            # q, k, v and out projections of every layer of the tiny CLIP models (conftest)
            layers = {k.split("_self_attn_")[0] for k in ups}
            assert layers, prefix
            assert len(ups) == 4 * len(layers), prefix
            assert all(f"{k.removesuffix('.lora_up.weight')}.alpha" in keys for k in ups)
            trained = [k for k in ups if f.get_tensor(k).abs().sum() > 0]
            # SDXL conditions on the penultimate layer, so the last layer's adapter gets no
            # gradient (as in kohya's scripts); every other one must have moved from zero.
            assert len(trained) >= 4 * (len(layers) - 1), prefix
