"""FSDP2: the transformer, its adapter and the adapter's optimiser state split across the
launched processes, for a model that does not fit one GPU (Qwen-Image on 16 GB cards).

Each block of the transformer is its own unit: a process keeps 1/N of every weight and gathers
one block's whole weights just before it runs (forward and backward), then frees them. The
frozen weights keep the dtype the memory plan chose (bf16, or fp8 storage whose layerwise
casting hooks run inside the gathered block); the adapter stays float32 and its gradients are
averaged across processes as they are reduce-scattered, so the run trains what one GPU would.

Checkpoints and the LoRA file hold whole tensors in the layout of a run on one GPU: a sharded
run resumes on one GPU and the other way round.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def in_turns(accelerator: Any, work: Callable[[], T]) -> T:
    """Run ``work`` in each process of a machine in turn (the machines side by side), the
    others waiting at a barrier. ``work`` must hold no collective: ``shard`` holds none (each
    process cuts its share locally)."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", accelerator.num_processes))
    # Every process must wait at as many barriers: as many turns as the largest machine has.
    turns = int(accelerator.gather(torch.tensor([local], device=accelerator.device)).max())
    done: list[T] = []
    for turn in range(turns):
        if turn == accelerator.local_process_index:
            done.append(work())
        accelerator.wait_for_everyone()
    return done[0]


def units(transformer: torch.nn.Module) -> list[torch.nn.Module]:
    """Return the blocks of every block list directly under ``transformer`` (double and single
    stream blocks, layers, refiners): the units gathered one at a time."""
    return [
        block
        for child in transformer.children()
        if isinstance(child, torch.nn.ModuleList)
        for block in child
    ]


def shard(transformer: torch.nn.Module) -> None:
    """Shard ``transformer`` in place across the default process group, block by block."""
    from torch.distributed.fsdp import fully_shard

    for block in units(transformer):
        fully_shard(block)
    fully_shard(transformer)


def is_sharded(module: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def whole(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return ``state`` with sharded tensors gathered whole (a collective: every process must
    call it, in the same order)."""
    from torch.distributed.tensor import DTensor

    # To the CPU one tensor at a time: the whole adapter never sits on a GPU beside the shards.
    return {
        key: value.full_tensor().cpu() if isinstance(value, DTensor) else value
        for key, value in state.items()
    }


def trainable_names(module: torch.nn.Module) -> list[str]:
    """The trainable parameters' names, in the order the optimiser holds them."""
    return [name for name, p in module.named_parameters() if p.requires_grad]


def optimizer_state(module: torch.nn.Module, optimizer: Any) -> dict[str, Any]:
    """Return the optimiser's whole state in ``torch.optim``'s own layout (parameters numbered
    in ``trainable_names`` order), as a run on one GPU saves it. A collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    by_name: Any = get_optimizer_state_dict(
        module, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
    number = {name: i for i, name in enumerate(trainable_names(module))}
    return {
        "state": {number[name]: s for name, s in by_name.get("state", {}).items()},
        "param_groups": [
            {**group, "params": [number[name] for name in group["params"]]}
            for group in by_name.get("param_groups", [])
        ],
    }


def load_optimizer_state(module: torch.nn.Module, optimizer: Any, state: Mapping[str, Any]) -> None:
    """Load a state ``optimizer_state`` (or a run on one GPU) saved into the sharded
    ``optimizer``; every process passes the whole state and keeps its shard."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = trainable_names(module)
    by_name: Any = {
        "state": {names[int(i)]: s for i, s in state["state"].items()},
        "param_groups": [
            {**group, "params": [names[int(i)] for i in group["params"]]}
            for group in state["param_groups"]
        ],
    }
    set_optimizer_state_dict(
        module, optimizer, by_name, options=StateDictOptions(full_state_dict=True)
    )
