"""Several processes under `torchrun` (DDP, one GPU or CPU slice each). Every rank builds the same batches
from the seed and trains on its own share of each step; rank 0 alone evaluates, writes files and emits
events. A plain `python -m tuneforge train` is world size one and touches none of this."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup() -> Ranks:
    if not (dist.is_available() and dist.is_torchelastic_launched()):
        return Ranks()
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size())


def device(ranks: Ranks) -> torch.device:
    if not torch.cuda.is_available():
        return torch.device("cpu")
    index = ranks.rank % torch.cuda.device_count()  # one node: rank i drives GPU i
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def wrap(model: Any, ranks: Ranks, on: torch.device) -> Any:
    if ranks.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[on.index] if on.type == "cuda" else None)


def shard(examples: Sequence[T], ranks: Ranks) -> tuple[list[T], float]:
    """This rank's share of a step, and the factor on its loss: DDP averages gradients over ranks, so each
    rank multiplies by the world size to make the average a sum over the whole step. A rank left without
    an example still runs one with factor zero, since every rank must join each gradient all-reduce."""
    mine = list(examples[ranks.rank :: ranks.world])
    return (mine, float(ranks.world)) if mine else (list(examples[:1]), 0.0)


def agree(flag: bool, ranks: Ranks, on: torch.device) -> bool:
    """Rank 0's decision for every rank: a stop that rank 0 alone took would leave the others waiting in
    their next gradient all-reduce."""
    if ranks.world == 1:
        return flag
    tensor = torch.tensor([int(flag)], device=on)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def barrier(ranks: Ranks) -> None:
    if ranks.world > 1:
        dist.barrier()


def teardown(ranks: Ranks) -> None:
    if ranks.world > 1:
        dist.destroy_process_group()
