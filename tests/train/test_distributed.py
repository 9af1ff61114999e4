"""Training in several processes, as ``torchrun``/``accelerate launch`` start it on several GPUs:
data parallel (DDP) and the sharded transformer (FSDP), on the CPU with gloo.

The promise under test is the README's: the same run on one GPU gives the same result. Two
processes at --batch-size 1 train the LoRA one process trains at --batch-size 2 or at
--gradient-accumulation 2, to float rounding; a sharded run's checkpoint resumes in one process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip(
    "torch", reason="the train extra is not installed: pip install -e '.[train]'"
)

from safetensors.torch import load_file  # noqa: E402

TINY = ("--rank", "4", "--alpha", "2", "--resolution", "64", "--lr", "1e-2")
# A step of Adam moves every weight by about lr whatever its gradient's size, so two runs
# that drift apart show it at once; float reordering across processes stays near 1e-6.
TOLERANCE = 1e-4


def train(
    dataset: Path, out: Path, *args: str | Path, processes: int = 1, cpu_flag: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``faceset train`` as a user launches it: one process, or ``torchrun`` with
    ``processes`` of them (accelerate needs ACCELERATE_USE_CPU=1 to join CPU processes)."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    if cpu_flag:
        env["ACCELERATE_USE_CPU"] = "1"
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone",
         f"--nproc_per_node={processes}"]
        if processes > 1
        else [sys.executable]
    )  # fmt: skip
    command = [*launcher, "-m", "faceset.train", str(dataset), "--out", str(out), *map(str, args)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def lora(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "jane.safetensors"))  # the dataset folder names the file


def assert_same_lora(
    a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], tolerance: float = TOLERANCE
) -> None:
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst < tolerance, f"the LoRAs differ by up to {worst:.2e}"


def ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize(
    ("family", "extra", "tolerance"),
    [
        pytest.param("sd15", (), TOLERANCE, id="sd15"),
        pytest.param("flux2-klein", (), TOLERANCE, id="klein"),
        # Quantised frozen weights stay out of DDP's start-up broadcast: gloo has no fp8, and
        # torchao's int8 tensors cannot be broadcast (both stopped DDP before step 1).
        pytest.param("flux2-klein", ("--quantize", "fp8"), TOLERANCE, id="klein-fp8"),
        pytest.param("flux2-klein", ("--quantize", "int8"), TOLERANCE, id="klein-int8"),
        # SDXL's text encoders condition on their penultimate layer: the last layer's adapter
        # has no gradient, which DDP must be told of (it stopped at step 2). Text encoded per
        # process rounds differently, and Adam scales near-zero gradients up: 1e-3.
        pytest.param("sdxl", ("--train-text-encoder",), 1e-3, id="sdxl-text-encoder"),
    ],
)
def test_two_processes_train_the_lora_one_process_trains(
    family: str,
    extra: tuple[str, ...],
    tolerance: float,
    sd15_base: Path,
    sdxl_base: Path,
    dit_bases,
    make_dataset,
    tmp_path: Path,
) -> None:
    base = {"sd15": sd15_base, "sdxl": sdxl_base}.get(family) or dit_bases(family)
    dataset = make_dataset(name="jane", images=4, repeats=1)
    common = ("--base", base, "--for", family, "--steps", "3", "--sample-every", "0", *TINY, *extra)

    ok(one_batch := train(dataset, tmp_path / "batch2" / "run", *common, "--batch-size", "2"))
    ok(train(dataset, tmp_path / "accum2" / "run", *common, "--gradient-accumulation", "2"))
    ok(train(dataset, tmp_path / "ddp" / "run", *common, processes=2))

    assert "3 steps of 2 images (2 x 1 process(es))" in " ".join(one_batch.stderr.split())
    saved = json.loads((tmp_path / "ddp" / "run" / "training_config.json").read_text())
    assert saved["processes"] == 2
    reference = lora(tmp_path / "batch2" / "run")
    assert_same_lora(reference, lora(tmp_path / "accum2" / "run"), tolerance)
    assert_same_lora(reference, lora(tmp_path / "ddp" / "run"), tolerance)
    # It trained: the reference moved away from the zero-initialised lora_B.
    assert any(
        v.abs().max() > 1e-3 for k, v in reference.items() if "lora_up" in k or "lora_B" in k
    )


def test_fsdp_trains_what_one_process_trains_and_resumes_in_one(
    dit_bases, make_dataset, tmp_path: Path
) -> None:
    base = dit_bases("flux2-klein")
    dataset = make_dataset(name="jane", images=4, repeats=1)
    common = (
        "--base", base, "--steps", "4", "--save-every", "2", "--quantize", "fp8",
        "--gradient-checkpointing", "--sample-every", "4", "--sample-steps", "2", *TINY,
    )  # fmt: skip

    # Two micro-batches a step: FSDP2 accumulates unsharded and reduce-scatters after the last.
    sharded = train(
        dataset, tmp_path / "fsdp" / "run", *common, "--fsdp", "--gradient-accumulation", "2",
        processes=2,
    )  # fmt: skip
    ok(sharded)
    ok(train(dataset, tmp_path / "one" / "run", *common, "--batch-size", "4"))

    log = " ".join(sharded.stderr.split())
    assert "sharded 2 ways (FSDP)" in log
    assert "FSDP: the transformer is sharded across 2 processes" in log
    fsdp_out = tmp_path / "fsdp" / "run"
    assert_same_lora(lora(tmp_path / "one" / "run"), lora(fsdp_out))
    assert (fsdp_out / "samples" / "step-000004.png").is_file()
    # Only the first process writes: one file per checkpoint, none half-written by another.
    assert sorted(p.name for p in (fsdp_out / "checkpoints").iterdir()) == [
        "step-000002",
        "step-000004",
    ]

    # Its step-2 checkpoint, resumed in one process with the same 4 images per step, ends where
    # the sharded run ended; with fewer images per step, it is refused in one line.
    resumed = tmp_path / "resumed" / "run"
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(
        fsdp_out / "checkpoints" / "step-000002", resumed / "checkpoints" / "step-000002"
    )
    refused = train(dataset, resumed, "--resume", "--sample-every", "0")  # still x 2 micro-batches
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1] == (
        f"error: cannot resume {resumed} at 2 images per step: its checkpoints took 4"
        " (1 x 2 process(es) x 2); keep --batch-size x processes x --gradient-accumulation"
        " the same"
    )
    ok(train(dataset, resumed, "--resume", "--gradient-accumulation", "4", "--sample-every", "0"))
    assert_same_lora(lora(fsdp_out), lora(resumed))


SHARES = """
import json, sys, torch, torch.distributed as dist
from faceset.train import families, flow, memory, sharding
dist.init_process_group("gloo")
family = families.flow_family("flux2-klein")
t = family.load(sys.argv[1], torch.float32).transformer.requires_grad_(False)
whole = sum(p.numel() for p in t.parameters())
held = memory.MemoryPlan(None, sys.argv[2], "none", "bf16", False, "adamw", 0, 0)
flow.hold_and_adapt(t, family, held, torch.device("cpu"), torch.float32, network="lora",
                    rank=4, alpha=4, sharded=True)
adapter = sum(p.numel() for p in t.parameters() if p.requires_grad)
sharding.shard(t)
local = sum(p.to_local().numel() for p in t.parameters())
for _ in range(2):  # each block gathered, run and freed, as in training
    for block in sharding.units(t):
        block.unshard()
        for name, layer in block.named_modules():
            if isinstance(layer, torch.nn.Linear) and "lora_" not in name:
                layer(torch.randn(2, layer.in_features))
        block.reshard()
kept = 0  # bytes of gathered frozen weights still held after the blocks were resharded
for module in t.modules():
    group = module._get_fsdp_state()._fsdp_param_group if hasattr(module, "_get_fsdp_state") else None
    for param in group.fsdp_params if group else []:
        gathered = getattr(param, "_unsharded_param", None)
        if gathered is not None and not gathered.requires_grad:
            kept += gathered.untyped_storage().nbytes()
# A file a process: two processes printing to one pipe can interleave their lines.
with open(f"{sys.argv[3]}/{dist.get_rank()}.json", "w") as f:
    json.dump([dist.get_rank(), whole + adapter, local, kept], f)
dist.barrier()
dist.destroy_process_group()
# This script's teardown sometimes aborts in C++ ("terminate called without an active
# exception", about 1 run in 4 under pytest, never seen in faceset train's runs): the
# results are written, so skip it.
import os; os._exit(0)
"""


@pytest.mark.parametrize("quantize", ["none", "fp8"])
def test_sharding_keeps_a_share_of_the_weights_in_each_process(
    quantize: str, dit_bases, tmp_path: Path
) -> None:
    """What FSDP is for: each of 2 processes holds about half the transformer, and a block's
    gathered weights are freed after it ran. fp8 storage through diffusers' layerwise casting
    kept every gathered weight (39,936 bytes here) after the first step: it swaps ``.data``."""
    script = tmp_path / "shares.py"
    script.write_text(SHARES)
    env = os.environ | {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(script), str(dit_bases("flux2-klein")), quantize, str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    ok(result)
    shares = [json.loads((tmp_path / f"{rank}.json").read_text()) for rank in (0, 1)]
    assert sorted(rank for rank, *_ in shares) == [0, 1]
    for _, whole, local, kept in shares:
        assert 0.45 * whole <= local <= 0.55 * whole
        assert kept == 0
    assert sum(local for _, _, local, _ in shares) >= shares[0][1]


def test_processes_accelerate_runs_alone_are_refused_before_they_overwrite_each_other(
    dit_bases, make_dataset, tmp_path: Path
) -> None:
    dataset = make_dataset(name="jane", images=2, repeats=1)
    out = tmp_path / "out"

    result = train(
        dataset, out, "--base", dit_bases("flux2-klein"), "--steps", "2", *TINY,
        processes=2, cpu_flag=False,
    )  # fmt: skip

    assert result.returncode != 0
    assert (
        "error: 2 processes were launched but accelerate found no GPU and runs each alone: to"
        " train on CPUs in several processes, set ACCELERATE_USE_CPU=1"
    ) in result.stderr
    assert not (out / "checkpoints").exists()


def test_what_fsdp_cannot_shard_is_refused_in_one_line(
    sd15_base: Path, dit_bases, make_dataset, tmp_path: Path
) -> None:
    dataset = make_dataset(name="jane", images=2, repeats=1)

    int8 = train(
        dataset, tmp_path / "int8", "--base", dit_bases("flux2-klein"), "--steps", "2",
        "--fsdp", "--quantize", "int8", *TINY, processes=2,
    )  # fmt: skip
    sd = train(dataset, tmp_path / "sd", "--base", sd15_base, "--for", "sd15", "--fsdp", *TINY)

    assert int8.returncode == 1
    assert (
        "error: --fsdp shards bf16 or fp8 weights, not int8: pass --quantize fp8 or none, or"
        " drop --fsdp to train quantised on each GPU"
    ) in int8.stderr
    assert sd.returncode == 1
    assert sd.stderr.strip().splitlines()[-1] == (
        "error: --fsdp shards the transformer families; SD 1.5 fits one GPU:"
        " drop --fsdp and launch the same command for data parallel training"
    )


def test_a_checkpoint_from_before_processes_were_recorded_resumes_on_its_schedule(
    sd15_base: Path, make_dataset, tmp_path: Path
) -> None:
    """Older runs did not record their processes, and accelerate stepped their schedule once per
    process: a 2-GPU checkpoint of step 2 says last_epoch 4. The count is read back from it."""
    dataset = make_dataset(name="jane", images=4, repeats=1)
    out = tmp_path / "run"
    common = ("--sample-every", "0", "--save-every", "2")
    ok(train(dataset, out, "--base", sd15_base, "--for", "sd15", "--steps", "2", *common, *TINY,
             "--batch-size", "2"))  # fmt: skip
    # Make it what a 2-GPU run at --batch-size 1 wrote before.
    checkpoint = out / "checkpoints" / "step-000002"
    saved = json.loads((checkpoint / "training_config.json").read_text())
    del saved["processes"]
    (checkpoint / "training_config.json").write_text(json.dumps(saved | {"batch_size": 1}))
    schedule = torch.load(checkpoint / "lr_scheduler.pt", weights_only=True)
    torch.save(schedule | {"last_epoch": 4, "_step_count": 5}, checkpoint / "lr_scheduler.pt")

    refused = train(dataset, out, "--resume", "--steps", "4", *common)
    resumed = train(
        dataset, out, "--resume", "--steps", "4", "--gradient-accumulation", "2", *common
    )

    assert refused.returncode == 1
    assert "its checkpoints took 2 (1 x 2 process(es) x 1)" in refused.stderr
    ok(resumed)
    after = torch.load(out / "checkpoints" / "step-000004" / "lr_scheduler.pt", weights_only=True)
    assert after["last_epoch"] == 4  # one schedule step per optimiser step since step 2
