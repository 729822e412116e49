"""torch.distributed helpers: set-up from torchrun's environment, rank queries, gradient averaging."""
from __future__ import annotations

import hashlib
import os
from typing import Iterable

import torch
import torch.distributed as dist


def init_from_env(device: torch.device) -> bool:
    """Initialise the default process group when launched by torchrun (gloo on CPU, nccl on CUDA)."""
    if dist.is_available() and not dist.is_initialized() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
    return is_distributed()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """All-reduce gradients of parameters DDP does not manage (loss parameters such as alpha_c).

    A rank whose batch did not touch a parameter has no gradient for it; it contributes zeros so every rank
    takes part in the same collective calls.
    """
    if not is_distributed():
        return
    n = world_size()
    for p in parameters:
        if not p.requires_grad:
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad.div_(n)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def parameters_agree(model: torch.nn.Module) -> bool:
    """Whether every rank holds bitwise the same parameters (a DDP sanity check after training).

    Only parameters: BN running statistics legitimately differ, each rank having seen its own batches last.
    """
    if not is_distributed():
        return True
    digest = hashlib.sha256()
    for p in model.parameters():
        digest.update(p.detach().cpu().contiguous().numpy().tobytes())
    mine = torch.tensor(list(digest.digest()), dtype=torch.int64)
    gathered = [torch.zeros_like(mine) for _ in range(world_size())]
    dist.all_gather(gathered, mine)
    return all(torch.equal(g, gathered[0]) for g in gathered)


def any_rank(flag: bool) -> bool:
    """True when `flag` is true on any rank (e.g. a Ctrl-C seen by one process stops all at the same step)."""
    if not is_distributed():
        return bool(flag)
    value = torch.tensor([1.0 if flag else 0.0],
                         device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)
