"""Data-parallel training across processes started by ``torchrun``.

    torchrun --nproc_per_node 2 -m pixloom train row-lstm --data binarized-mnist --out runs/x

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`start` joins the process group
(NCCL on GPUs, gloo on CPUs) and each process takes GPU ``LOCAL_RANK`` when it has one. The
:class:`~pixloom.training.trainer.Trainer` then splits every batch across the processes and wraps the
model in ``DistributedDataParallel``, so gradients are averaged over the global batch: with batches
of equal size per process, one step equals a single-process step on the whole batch.
``--batch-size`` stays the global batch and the schedule counts the same steps.

Only process 0 writes (logs, checkpoints, the best model) and shows progress; every process
validates a share of the validation set. A checkpoint also keeps every process's random state
(:func:`gather_random_states`), so a run resumed with as many processes continues exactly.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from pixloom.errors import PixloomError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def current() -> World:
    """The process group this process belongs to (a world of one when not under torchrun)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def start(device: str = "auto") -> World:
    """Join the process group that ``torchrun`` describes in the environment; a no-op otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 or (dist.is_available() and dist.is_initialized()):
        return current()
    if not dist.is_available():
        raise PixloomError("this torch build has no torch.distributed; run without torchrun")
    use_gpu = device != "cpu" and torch.cuda.is_available()
    if use_gpu:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank >= torch.cuda.device_count():
            raise PixloomError(f"process {local_rank} of this machine has no GPU of its own "
                               f"({torch.cuda.device_count()} visible); start at most that many processes per node")
        torch.cuda.set_device(local_rank)
    try:
        dist.init_process_group(backend="nccl" if use_gpu else "gloo")
    except (ValueError, RuntimeError) as exc:  # e.g. WORLD_SIZE set by hand without MASTER_ADDR
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PixloomError(f"could not join the torchrun process group (WORLD_SIZE={size}): {first}") from None
    return current()


def stop(finished: bool = True) -> None:
    """Leave the process group. The collector first frees the finished DistributedDataParallel
    wrapper (kept alive by reference cycles, its gloo work objects abort the process when they
    are only destroyed at interpreter exit), and after a normal finish every process waits for
    the others."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def shard(indices: torch.Tensor, world: World) -> torch.Tensor:
    """This process's share of a batch. A batch smaller than the world repeats its last item, so
    that every process takes part in the step."""
    if not world.distributed:
        return indices
    part = indices[world.rank::world.size]
    return part if len(part) else indices[-1:]


def sum_over_world(values: list[float], world: World, device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over the processes (the values themselves in a world of one)."""
    if not world.distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather_random_states(world: World, device: torch.device) -> list[torch.Tensor]:
    """Every process's torch random state (CPU, then its GPU's when it has one) as uint8 tensors
    in rank order, on every process: all processes must call this at the same step."""
    mine = torch.get_rng_state()
    if device.type == "cuda":
        mine = torch.cat([mine, torch.cuda.get_rng_state(device)])
    if not world.distributed:
        return [mine]
    mine = mine.to(device)
    every = [torch.empty_like(mine) for _ in range(world.size)]
    dist.all_gather(every, mine)
    return [state.cpu() for state in every]


def set_random_state(state: torch.Tensor, device: torch.device) -> None:
    """Restore a state from :func:`gather_random_states` in this process."""
    cpu_size = torch.get_rng_state().numel()
    torch.set_rng_state(state[:cpu_size].clone())
    if device.type == "cuda" and state.numel() > cpu_size:
        torch.cuda.set_rng_state(state[cpu_size:].clone(), device)


class LossModule(nn.Module):
    """``forward(batch) = model.loss(batch)``: what ``DistributedDataParallel`` wraps, since it
    synchronises gradients only for work done inside the wrapped module's ``forward``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: dict) -> dict:
        return self.model.loss(batch)


def data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(LossModule(model), device_ids=device_ids)
