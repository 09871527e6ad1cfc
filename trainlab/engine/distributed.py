"""Data-parallel training with torch.distributed: processes started by `torchrun` (or `trainlab run --nproc N`).

Every rank builds the same data and model, trains its part of each global batch through
DistributedDataParallel (gloo on CPU, NCCL on GPUs) and takes the same number of steps:

    global batch (config data.batch_size)  ->  split into world_size contiguous parts, sizes differing by 1 at most
    gradients                              ->  weighted by each part's size, so the step is the 1-process step
    training sums, validation logits       ->  reduced and gathered in batch order, no padding duplicates

Rank 0 alone writes the run folder; the others only train.
"""

from __future__ import annotations

import copy
import datetime
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from trainlab.errors import TrainlabError, UsageError
from trainlab.utils.ranks import LOCAL_RANK, env_rank, env_world_size, started_by_torchrun  # noqa: F401  (started_by_torchrun: imported from here)

TIMEOUT = datetime.timedelta(minutes=10)  # a collective that waits longer than this for a silent peer fails


class PeerFailure(TrainlabError):
    """Another process of a data-parallel run died; its own message says why."""

    def __init__(self, rank: int):
        super().__init__(f"process {rank} stopped: another process of this data-parallel run failed (its error is shown above)")


@dataclass
class Distributed:
    """This process's place in a data-parallel run, and the collectives the trainer needs."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    gradient_weight: list[float] = field(default_factory=lambda: [1.0])  # this rank's share of the current batch
    started: bool = False  # every rank's setup passed `start()`
    stopped_together: bool = False  # a setup failed and every rank knows: they are all alive and can leave together

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: nn.Module, example: torch.Tensor) -> nn.Module:
        """The model as DDP trains it. Gradients are averaged with each rank weighted by its share of the batch
        (a last batch that does not split evenly): the same step as one process on the whole batch. `example`, a
        batch of inputs, finds parameters that get no gradient (a kept ImageNet head), which DDP must be told of."""
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(
            model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=self.any(has_unused_parameters(model, example)),
        )  # fmt: skip
        wrapped.register_comm_hook(self.gradient_weight, _weighted_average)
        return wrapped

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """`values` summed over the ranks (every rank gets the sum)."""
        total = values.clone()
        dist.all_reduce(total)
        return total

    def gather_batches(self, *parts: list[torch.Tensor]) -> list[list[torch.Tensor]]:
        """Every batch whole again, for each list of `parts` (logits, targets): `parts[k][i]` is this rank's part of
        batch i; returns batch i's parts of every rank in rank order, so each list is what one process would have
        computed, with no example twice. One exchange for all the lists."""
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, [[p.cpu() for p in part] for part in parts])
        return [[torch.cat([gathered[r][k][i] for r in range(self.world_size) if gathered[r][k][i].numel()]).to(self.device)
                 for i in range(len(part))] for k, part in enumerate(parts)]  # fmt: skip

    def share_buffers(self, model: nn.Module) -> None:
        """Rank 0's buffers (batch-norm statistics) on every rank: DDP sends them at the start of each forward, so
        after the last step the ranks' copies differ; the checkpoint and every evaluation use rank 0's."""
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)

    def start(self) -> None:
        """Before the first step, once this rank's data, model and (rank 0) run folder are ready: raises PeerFailure
        when another rank's setup failed (`tell_failure`), so that no rank waits in a collective for one that is gone."""
        self.started = True
        if self.any(False):
            self.stopped_together = True
            raise PeerFailure(self.rank)

    def tell_failure(self) -> None:
        """This rank's setup failed: the others learn it at their `start()` and stop too."""
        if self.started:
            return
        self.started = True
        try:
            self.any(True)
            self.stopped_together = True
        except RuntimeError:
            pass  # another rank is gone already

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is True on any."""
        value = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())


def has_unused_parameters(model: nn.Module, example: torch.Tensor) -> bool:
    """Whether a trained parameter of `model` gets no gradient from `example` (tried on a copy; no random number
    drawn from the run's generators)."""
    probe = copy.deepcopy(model).train()
    devices = [example.device] if example.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        probe(example).float().sum().backward()
    return any(p.requires_grad and p.grad is None for p in probe.parameters())


def _weighted_average(weight, bucket):  # noqa: ANN001, ANN201  (DDP checks the annotations, which must be real types)
    """DDP's allreduce hook, each rank's gradients weighted by its share of the batch (`weight[0]`)."""
    tensor = bucket.buffer()
    tensor.mul_(weight[0] / dist.get_world_size())
    return dist.all_reduce(tensor, async_op=True).get_future().then(lambda future: future.value()[0])


def split_sizes(total: int, world_size: int) -> list[int]:
    """The part of a batch of `total` examples that each rank takes: contiguous, sizes differing by one at most."""
    return [len(part) for part in torch.arange(total).tensor_split(world_size)]


def shardable_batches(count: int, batch_size: int, world_size: int) -> int:
    """How many batches of `count` examples every rank can share: a last batch with fewer examples than ranks is left
    out (every rank must take a part of every step)."""
    batches = -(-count // batch_size)
    remainder = count % batch_size
    return batches - 1 if 0 < remainder < world_size else batches


class ShardedLoader:
    """This rank's part of each batch of `loader`. A loader that can take its part before building the batch
    (`loader.batches_of_rank(rank, world_size)`: an image loader, which then augments only its part) does; the
    others' batches are split after. For training (`every_batch=False`), a last batch with fewer examples than
    ranks is left out; for evaluation every batch comes, and a rank's part may be empty."""

    def __init__(self, loader: Any, dist_: Distributed, every_batch: bool = False):
        self.loader, self.dist, self.every_batch = loader, dist_, every_batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def __len__(self) -> int:
        if self.every_batch:
            return len(self.loader)
        return shardable_batches(len(self.loader.labels), self.loader.batch_size, self.dist.world_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        rank, world = self.dist.rank, self.dist.world_size
        if hasattr(self.loader, "batches_of_rank"):
            batches = self.loader.batches_of_rank(rank, world)  # (inputs, targets, examples in the whole batch)
        else:
            batches = ((x.tensor_split(world)[rank], y.tensor_split(world)[rank], len(y)) for x, y in self.loader)
        for inputs, targets, whole in batches:
            if not self.every_batch:
                if whole < world:
                    continue  # a text loader's short batch may come at any place of the epoch
                self.dist.gradient_weight[0] = len(targets) * world / whole
            yield inputs, targets


def check_batch(batch_size: int, world_size: int, field_name: str = "data.batch_size") -> None:
    if batch_size % world_size:
        near = max(1, round(batch_size / world_size)) * world_size
        raise UsageError(
            f"{field_name}={batch_size} is the global batch, divided across {world_size} processes, but {world_size} "
            f"does not divide it; choose a multiple of {world_size}, e.g. {field_name}={near}"
        )


def init_distributed(device: torch.device) -> Distributed:
    """Join the process group that torchrun's environment describes (gloo on CPU, NCCL on CUDA)."""
    rank, world_size, local_rank = env_rank(), env_world_size(), int(os.environ.get(LOCAL_RANK, "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise UsageError(f"process {local_rank} of this machine has no GPU: torch sees {torch.cuda.device_count()}; "
                             "start at most one process per GPU (--nproc_per_node)")  # fmt: skip
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=TIMEOUT, **({"device_id": device} if device.type == "cuda" else {}))
    return Distributed(rank, world_size, local_rank, device)


def leave_distributed(together: bool = True) -> None:
    """Leave the process group; when every rank is leaving `together` (the run finished, or a setup failure all know
    of), first wait for the others to be done with it (a rank that left while another still used the group aborts in
    gloo's threads at exit). The wait polls, so that a signal still stops it."""
    if not dist.is_initialized():
        return
    if together:
        work = dist.barrier(async_op=True)
        while not work.is_completed():
            time.sleep(0.02)
        work.wait()
    dist.destroy_process_group()


def is_peer_failure(error: BaseException) -> bool:
    """An error that a collective raised because another process of the run died (its own error is reported there)."""
    text = str(error)
    if isinstance(error, getattr(dist, "DistError", ())):
        return True
    return isinstance(error, RuntimeError) and any(
        sign in text for sign in ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "DistBackendError",
                                  "NCCL communicator was aborted", "Timed out waiting")  # fmt: skip
    )
