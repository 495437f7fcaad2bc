"""Where training runs: device, CPU threads and, under torchrun, the process group.

Launched plainly, a stage trains in one process. Launched with `torchrun --nproc_per_node N`,
each process joins a DistributedDataParallel group (gloo on CPUs, NCCL on GPUs); only rank 0
logs and saves.
"""

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pipeline.precision import channels_last, model_autocast


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # run.precision: bf16 | fp32 (pipeline/precision.py)
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self) -> AbstractContextManager:
        """The context every model pass runs in (run.precision)."""
        return model_autocast(self.device, self.precision)


def start_runtime(device: str, threads: int, precision: str) -> Runtime:
    """Pick the device and join the process group when torchrun started this process."""
    if threads:
        torch.set_num_threads(threads)
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "run.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'"
        )
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    chosen = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return Runtime(chosen, precision, rank, world_size)


def stop_runtime(runtime: Runtime) -> None:
    if runtime.distributed and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def running(device: str, threads: int, precision: str) -> Iterator[Runtime]:
    """`start_runtime` for the block, and `stop_runtime` after it however it ends (an error or
    an interrupt must not leave a torchrun process group behind)."""
    runtime = start_runtime(device, threads, precision)
    try:
        yield runtime
    finally:
        stop_runtime(runtime)


def distribute(module: nn.Module, runtime: Runtime) -> nn.Module:
    """Move to the device, convolutions channels-last; under torchrun, wrap in DDP.

    On GPUs BatchNorm is synchronised across processes, so N processes on B clips each match
    one process on N*B clips. SyncBatchNorm has no CPU implementation: on CPUs each process
    normalises with its own batch statistics (parameters and buffers still stay identical
    across processes, DDP averaging gradients and broadcasting rank 0's buffers).
    """
    module = channels_last(module.to(runtime.device))
    if not runtime.distributed:
        return module
    if runtime.device.type == "cuda":
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        return DistributedDataParallel(module, device_ids=[runtime.device.index])
    return DistributedDataParallel(module)


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, DistributedDataParallel) else module
