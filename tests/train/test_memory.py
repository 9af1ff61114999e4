"""The memory plan (a pure function) for every family and budget, and quantised training on
the tiny models with the backends a CPU runs (torchao int8, fp8 storage)."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceset.train import memory

FULL = list(memory.SIZES)


@pytest.mark.parametrize("model", FULL)
def test_every_family_is_planned_within_its_target(model: str) -> None:
    target = memory.TARGET_GIB[model]
    for bitsandbytes in (True, False):
        found = memory.plan(
            memory.SIZES[model], target, resolution=1024, rank=32, cuda=True,
            bitsandbytes=bitsandbytes,
        )  # fmt: skip

        assert found.fits, found.describe()
        assert found.peak_gib <= target * memory.HEADROOM
        assert found.gradient_checkpointing


@pytest.mark.parametrize("model", FULL)
def test_a_smaller_budget_never_gets_a_lighter_plan(model: str) -> None:
    order = [("none", "none"), ("fp8", "none"), ("int8", "none"), ("nf4", "none"),
             ("int8", "block"), ("nf4", "block")]  # fmt: skip
    chosen = [
        memory.plan(
            memory.SIZES[model], gib, resolution=1024, rank=32, cuda=True, bitsandbytes=True
        )
        for gib in (48, 24, 16, 12, 8)
    ]

    ranks = [order.index((p.quantize, p.offload)) for p in chosen]
    assert ranks == sorted(ranks)
    peaks = [p.training_gib for p in chosen]
    assert peaks == sorted(peaks, reverse=True)


def test_plenty_of_memory_keeps_the_model_in_bf16_with_the_text_encoder_on_the_gpu() -> None:
    found = memory.plan(memory.SIZES["flux2-klein-4b"], 48, resolution=1024, rank=32, cuda=True,
                        bitsandbytes=True)  # fmt: skip

    assert (found.quantize, found.offload, found.text_encoder) == ("none", "none", "bf16")
    assert found.optimizer == "adamw8bit"
    assert found.describe().startswith("transformer bf16, no offload, text encoder bf16")


def test_klein_4b_in_8_gib_stores_fp8_and_caches_text_in_int8() -> None:
    found = memory.plan(memory.SIZES["flux2-klein-4b"], 8, resolution=1024, rank=32, cuda=True,
                        bitsandbytes=False)  # fmt: skip

    assert (found.quantize, found.offload, found.text_encoder) == ("fp8", "none", "int8")
    assert found.optimizer == "adamw"  # no bitsandbytes, no 8-bit AdamW


def test_the_cpu_never_gets_cuda_only_choices_and_overrides_win() -> None:
    size = memory.SIZES["qwen-image"]
    on_cpu = memory.plan(size, 8, resolution=1024, rank=32, cuda=False, bitsandbytes=True)
    forced = memory.plan(
        size, 8, resolution=1024, rank=32, cuda=True, bitsandbytes=True,
        overrides=memory.Overrides(quantize="fp8", gradient_checkpointing=False, text_encoder="bf16"),
    )  # fmt: skip

    assert on_cpu.quantize != "nf4"
    assert on_cpu.offload == "none"
    assert on_cpu.optimizer == "adamw"
    assert (forced.quantize, forced.gradient_checkpointing, forced.text_encoder) == (
        "fp8",
        False,
        "bf16",
    )
    assert not forced.fits  # 20 GB of fp8 weights do not fit 8 GiB: said, not hidden


def test_no_budget_plans_bf16_and_predicts_anyway() -> None:
    found = memory.plan(memory.SIZES["zimage"], None, resolution=1024, rank=32, cuda=True,
                        bitsandbytes=False)  # fmt: skip

    assert (found.quantize, found.offload, found.text_encoder) == ("none", "none", "bf16")
    assert found.fits
    assert found.training_gib > 12


def test_budget_reads_vram_and_auto_takes_the_free_memory() -> None:
    assert memory.budget("12", 30.5) == 12.0
    assert memory.budget("auto", 30.5) == 30.5
    assert memory.budget(None, 30.5) is None


@pytest.mark.parametrize("quantize", ["int8", "fp8"])
def test_quantized_training_runs_on_the_cpu_and_the_file_loads(
    quantize: str, dit_bases, make_dataset, tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch", reason="the train extra is not installed")
    import json

    from safetensors import safe_open

    from faceset.train import TrainConfig, families, train

    base = dit_bases("flux2-klein")
    cfg = TrainConfig(dataset=make_dataset(images=1, repeats=1), base=str(base),
                      out=tmp_path / "out", steps=4, rank=4, lr=1e-2, resolution=64,
                      sample_every=0, quantize=quantize)  # fmt: skip

    result = train(cfg)

    assert all(loss == loss for loss in result.losses)  # finite, not NaN
    saved = json.loads(result.config.read_text())
    assert (saved["quantize"], saved["offload"]) == (quantize, "none")
    with safe_open(str(result.lora), "pt") as f:
        keys = list(f.keys())
    pipe = families.flow_family("flux2-klein").load(base, torch.float32)
    pipe.load_lora_weights(str(result.lora), adapter_name="person")
    assert len([n for n, _ in pipe.transformer.named_parameters() if ".person." in n]) == len(keys)


def test_cuda_only_choices_are_refused_in_one_line_on_the_cpu(dit_bases, make_dataset) -> None:
    pytest.importorskip("torch", reason="the train extra is not installed")
    from typer.testing import CliRunner

    from faceset.cli import app

    runner = CliRunner()
    args = ["train", str(make_dataset()), "--base", str(dit_bases("flux2-klein")), "--steps", "1"]
    nf4 = runner.invoke(app, [*args, "--quantize", "nf4"])
    offload = runner.invoke(app, [*args, "--offload", "block"])

    assert (nf4.exit_code, nf4.stderr) == (
        1, "error: --quantize nf4 needs a CUDA GPU (bitsandbytes); on this machine use int8 or fp8\n"
    )  # fmt: skip
    assert (offload.exit_code, offload.stderr) == (
        1, "error: --offload block needs a GPU to offload to; leave it out on the CPU\n"
    )  # fmt: skip


def test_fsdp_across_gpus_holds_qwen_image_in_16_gib_cards_less_lossily() -> None:
    size = memory.SIZES["qwen-image"]

    def on(shards: int) -> memory.MemoryPlan:
        return memory.plan(
            size, 16, resolution=1024, rank=32, cuda=True, bitsandbytes=True, shards=shards
        )

    alone, two, four = on(1), on(2), on(4)

    # One 16 GB card needs NF4; sharded, each card holds its share in fp8 (2) or bf16 (4).
    assert alone.quantize == "nf4"
    assert (two.quantize, two.offload, two.fits) == ("fp8", "none", True)
    assert (four.quantize, four.offload, four.fits) == ("none", "none", True)
    assert "sharded 4 ways (FSDP)" in four.describe()
    # bitsandbytes' 8-bit AdamW fails on sharded weights; FSDP shards AdamW's state instead.
    assert (alone.optimizer, two.optimizer, four.optimizer) == ("adamw8bit", "adamw", "adamw")
    # Sharding divides the weights: 2 cards hold far less of the 20B model than one card.
    bf16_alone = memory.predict(size, quantize="none", offload="none", text_encoder="cpu",
                                gradient_checkpointing=True, optimizer="adamw",
                                resolution=1024, rank=32)  # fmt: skip
    bf16_two = memory.predict(size, quantize="none", offload="none", text_encoder="cpu",
                              gradient_checkpointing=True, optimizer="adamw",
                              resolution=1024, rank=32, shards=2)  # fmt: skip
    assert bf16_alone[1] - bf16_two[1] > 15  # GiB: about half of 38 GiB of weights


def test_fsdp_never_plans_what_it_cannot_shard() -> None:
    for gib in (8, 12, 16, 24):
        found = memory.plan(
            memory.SIZES["flux1"], gib, resolution=1024, rank=32, cuda=True, bitsandbytes=True,
            shards=2,
        )  # fmt: skip
        assert (found.quantize, found.offload) in {("none", "none"), ("fp8", "none")}
