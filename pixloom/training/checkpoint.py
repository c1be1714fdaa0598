"""Crash-safe training checkpoints without pickles.

A run directory holds::

    config.json, model.safetensors        the best model so far (chosen on validation)
    checkpoints/ckpt-<step>/               complete training states
        config.json, model.safetensors     model at that step
        optimizer.safetensors              every tensor of every optimizer state
        averaged.safetensors               the moving average of the weights (runs with --ema)
        random_states.safetensors          every process's torch random state (torchrun runs)
        trainer_state.json                 counters, param groups, scheduler and RNG states
    checkpoints/latest                     name of the newest complete checkpoint (atomic rename)

A checkpoint directory is filled first and only then named in ``latest``, so a crash at any moment
leaves ``latest`` pointing at a complete checkpoint. Older checkpoints are pruned afterwards.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixloom.errors import CheckpointError
from pixloom.io import atomic_save_tensors, atomic_write_json, atomic_write_text, load_tensors, read_json

KEEP_CHECKPOINTS = 2


def _split_state(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Move every tensor of a nested state dict into ``tensors``; return a JSON-able skeleton."""
    if isinstance(obj, torch.Tensor):
        tensors[prefix] = obj
        return {"__tensor__": prefix}
    if isinstance(obj, dict):
        return {"__dict__": [[_json_key(k), _split_state(v, f"{prefix}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return [_split_state(v, f"{prefix}.{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, (int, float, str, bool)) or obj is None:
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint")


def _json_key(key):
    if isinstance(key, (int, str)):
        return key
    raise TypeError(f"cannot store a {type(key).__name__} dict key in a checkpoint")


def _join_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict) and "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if isinstance(obj, dict) and "__dict__" in obj:
        return {k: _join_state(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [_join_state(v, tensors) for v in obj]
    return obj


def rng_state() -> dict[str, Any]:
    state = {
        "torch": torch.get_rng_state(),
        "python": _to_json(random.getstate()),
        "numpy": _to_json(np.random.get_state(legacy=False)),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_to_tuple(state["python"]))
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_json(obj):
    if isinstance(obj, tuple):
        return [_to_json(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_json(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _to_tuple(obj):
    return tuple(_to_tuple(v) for v in obj) if isinstance(obj, list) else obj


def save_checkpoint(run_dir: Path, step: int, model, optimizers: dict, schedulers: dict, counters: dict,
                    average=None, process_random_states: list[torch.Tensor] | None = None) -> Path:
    """Write a complete checkpoint, then point ``latest`` at it, then prune old ones. ``average`` is
    the run's :class:`~pixloom.training.averaging.WeightAverage`, if it keeps one;
    ``process_random_states`` the random state of each process of a multi-process run, in rank
    order (process 0's full state is saved in any case)."""
    root = Path(run_dir) / "checkpoints"
    target = root / f"ckpt-{step:09d}"
    if target.exists():
        shutil.rmtree(target)
    model.save_pretrained(target)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = {
        "optimizers": {name: _split_state(opt.state_dict(), f"opt.{name}", tensors) for name, opt in optimizers.items()},
        "schedulers": {name: _split_state(s.state_dict(), f"sched.{name}", tensors) for name, s in schedulers.items()},
        "rng": _split_state(rng_state(), "rng", tensors),
        "counters": counters,
    }
    atomic_save_tensors(target / "optimizer.safetensors", tensors)
    if average is not None:
        atomic_save_tensors(target / "averaged.safetensors", average.state_tensors())
    if process_random_states is not None and len(process_random_states) > 1:
        atomic_save_tensors(target / "random_states.safetensors",
                            {f"process{rank}": state for rank, state in enumerate(process_random_states)})
    atomic_write_json(target / "trainer_state.json", skeleton)
    atomic_write_text(root / "latest", target.name + "\n")
    for old in sorted(root.glob("ckpt-*"))[:-KEEP_CHECKPOINTS]:
        if old.name != target.name:
            shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = Path(run_dir) / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    target = pointer.parent / pointer.read_text().strip()
    if not (target / "trainer_state.json").is_file():
        raise CheckpointError(f"checkpoint {target} named in {pointer} is incomplete")
    return target


def refuse_existing_run(run_dir: Path) -> None:
    """For a new run: a one-line error when ``run_dir`` already holds a checkpointed run."""
    if latest_checkpoint(run_dir) is not None:
        from pixloom.errors import PixloomError, arg

        raise PixloomError(f"{run_dir} already holds a run; continue it with {arg('resume')} or pick another "
                           f"{arg('out')}")


def load_checkpoint(directory: Path, model, optimizers: dict, schedulers: dict, average=None) -> dict:
    """Restore model, optimizers, schedulers, RNG states and (when both the run and the checkpoint
    keep one) the weight average; return the saved counters. A checkpoint without an average
    starts ``average`` afresh from the restored weights."""
    skeleton = read_json(directory / "trainer_state.json")
    tensors = load_tensors(directory / "optimizer.safetensors")
    loaded = type(model).from_pretrained(directory, map_location=model.device)
    # strict=False only for aliases (Opacus' DP layers name their weights twice); a real gap is an error
    result = model.load_state_dict(loaded.state_dict(), strict=False)
    own = {name for name, _ in model.named_parameters()} | {name for name, _ in model.named_buffers()}
    if [k for k in result.missing_keys if k in own] or result.unexpected_keys:
        raise CheckpointError(f"checkpoint {directory} does not fit this run's model")
    try:
        for name, opt in optimizers.items():
            opt.load_state_dict(_join_state(skeleton["optimizers"][name], tensors))
        for name, sched in schedulers.items():
            sched.load_state_dict(_join_state(skeleton["schedulers"][name], tensors))
        set_rng_state(_join_state(skeleton["rng"], tensors))
        if average is not None and (directory / "averaged.safetensors").is_file():
            average.load_state_tensors(load_tensors(directory / "averaged.safetensors"))
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"checkpoint {directory} does not fit this run: {str(exc).splitlines()[0]}") from None
    return skeleton["counters"]


def process_random_state(directory: Path, rank: int, world_size: int) -> torch.Tensor | None:
    """Process ``rank``'s saved random state, when the checkpoint was written by a run of
    ``world_size`` processes; ``None`` otherwise (a different number of processes, or an older
    checkpoint)."""
    path = Path(directory) / "random_states.safetensors"
    if not path.is_file():
        return None
    states = load_tensors(path)
    if sorted(states) != sorted(f"process{k}" for k in range(world_size)):
        return None
    return states[f"process{rank}"]
