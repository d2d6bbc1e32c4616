"""Running ``train`` under torchrun: torch.distributed (DDP), gloo on CPU and nccl on GPU.

Each rank trains on its DistributedSampler share of every epoch and records the loss and margin of
the samples it saw; at the end of the epoch the records are summed across ranks (with a count, so
the few samples the sampler repeats to even out the shares are averaged), and rank 0 alone runs the
eval recording pass, writes the checkpoint and the run file. Every rank reads the checkpoint to
resume, so the checkpoint folder must be on a filesystem all ranks see.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from noisyctl.errors import NoisyctlError


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def sum_(self, tensor) -> None:
        """Sum a tensor over ranks in place."""
        if self.active:
            import torch.distributed as dist

            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)

    def max_(self, tensor) -> None:
        if self.active:
            import torch.distributed as dist

            dist.all_reduce(tensor, op=dist.ReduceOp.MAX)

    def epoch_order(self, n: int, seed: int, epoch: int) -> np.ndarray:
        """This rank's samples of an epoch, in order: a DistributedSampler share of a seeded shuffle."""
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(range(n), num_replicas=self.world, rank=self.rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        return np.fromiter(iter(sampler), dtype=np.int64)


def launched_world() -> int:
    """How many processes torchrun started (1 when not under torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def from_environment(device_type: str) -> Distributed:
    """The process group torchrun describes in the environment (initialised here), or a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise NoisyctlError("this torch build has no torch.distributed; run train without torchrun")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda" and local_rank >= torch.cuda.device_count():
        # Checked before the process group starts: nccl would fail later with a CUDA error per rank.
        processes = os.environ.get("LOCAL_WORLD_SIZE", str(local_rank + 1))
        raise NoisyctlError(f"torchrun started {processes} processes on this machine but it has "
                            f"{torch.cuda.device_count()} CUDA device(s); start one per GPU "
                            "(--nproc-per-node) or train with --device cpu")
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    return Distributed(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local_rank)


def current() -> Distributed:
    """The process group already started (by ``train`` or by the user's own script), or a single process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return Distributed(rank=dist.get_rank(), world=dist.get_world_size(),
                           local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    return Distributed()


def shutdown() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
