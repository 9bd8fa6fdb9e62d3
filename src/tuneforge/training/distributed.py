"""Several processes under `torchrun`: DDP (a whole model per rank), or FSDP (`fully_shard`: each rank holds
a slice of the weights, gradients and optimizer state) for models that do not fit one device. Every rank
builds the same batches from the seed and trains on its own share of each step; rank 0 alone writes files
and emits events. A plain `python -m tuneforge train` is world size one and touches none of this.

Every rank must join each collective in the same order, so the ranks run the same number of forward passes
per step (`lockstep`), agree on stopping (`any_rank`), and all take part in gathering the full weights
and optimizer state that rank 0 saves. Saved states have one format whatever the world size or sharding, so
a job may resume under another one."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

import torch
import torch.distributed as dist

from tuneforge.training import estimate

T = TypeVar("T")
Sharding = Literal["auto", "ddp", "fsdp"]

FSDP_MEMORY_SHARE = 0.7  # "auto" shards when one rank's footprint needs more of its GPU than this:
# the estimate leaves out the CUDA context, allocator fragmentation and long sequences' activations
ACTIVATION_MARGIN = 1.3  # the data is not read yet when sharding is chosen: activations as 30% of the state


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    sharded: bool = False  # FSDP: every forward pass and every state gather is a collective

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


def choose_sharding(ranks: Ranks, setting: Sharding, model: Any, on: torch.device) -> Ranks:
    """FSDP when asked, or on "auto" when one rank's whole copy would crowd its GPU; otherwise DDP."""
    if ranks.world == 1 or setting == "ddp":
        return ranks
    if setting == "fsdp":
        return replace(ranks, sharded=True)
    if on.type != "cuda":  # ranks on one host share its RAM either way; DDP is the simpler, faster one
        return ranks
    n_params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    capacity = torch.cuda.get_device_properties(on).total_memory / 2**30
    whole_copy = ACTIVATION_MARGIN * estimate.state_bytes(n_params, trainable) / 2**30
    return replace(ranks, sharded=whole_copy > FSDP_MEMORY_SHARE * capacity)


def wrap(model: Any, ranks: Ranks, on: torch.device) -> Any:
    if ranks.world == 1:
        return model.to(on)
    if ranks.sharded:
        return _fully_shard(model, on)
    from torch.nn.parallel import DistributedDataParallel

    # No buffer broadcast: buffers (rotary frequencies) are equal on every rank, and a broadcast in each
    # forward pass would be one more collective that ranks with different micro-batch counts must match.
    return DistributedDataParallel(
        model.to(on), device_ids=[on.index] if on.type == "cuda" else None, broadcast_buffers=False
    )


def _fully_shard(model: Any, on: torch.device) -> Any:
    """One FSDP unit per transformer block (the classes transformers keeps whole on a device), then the
    root for the rest (embeddings, the tied head, norms); fully_shard moves each shard to `on`."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(on.type, (dist.get_world_size(),))
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft model's inner one
    blocks = set(getattr(base, "_no_split_modules", None) or [])
    for module in list(model.modules()):
        if type(module).__name__ in blocks:
            fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def shard(examples: Sequence[T], ranks: Ranks) -> tuple[list[T], float]:
    """This rank's share of a step, and the factor on its loss: DDP and FSDP average gradients over ranks,
    so each rank multiplies by the world size to make the average a sum over the whole step. A rank left
    without an example still runs one with factor zero, since every rank must join each collective."""
    mine = list(examples[ranks.rank :: ranks.world])
    return (mine, float(ranks.world)) if mine else (list(examples[:1]), 0.0)


def lockstep(chunks: Sequence[T], model: Any, ranks: Ranks) -> Iterator[tuple[T, float]]:
    """This rank's forward passes of one step, each with a weight for its loss: padded to the most any rank
    has (a repeat with weight zero), since each FSDP forward pass gathers weights from every rank. Only the
    last backward pass syncs gradients (one all-reduce or reduce-scatter per step, not per chunk)."""
    if ranks.world == 1:
        yield from ((chunk, 1.0) for chunk in chunks)
        return
    count = int(_all_reduce([float(len(chunks))], dist.ReduceOp.MAX)[0])
    padded = [(chunk, 1.0) for chunk in chunks] + [(chunks[0], 0.0)] * (count - len(chunks))
    for index, (chunk, weight) in enumerate(padded):
        with _gradient_sync(model, ranks, on=index == count - 1):
            yield chunk, weight


@contextlib.contextmanager
def _gradient_sync(model: Any, ranks: Ranks, *, on: bool) -> Iterator[None]:
    if ranks.sharded:
        model.set_requires_gradient_sync(on)
        yield
    elif on:
        yield
    else:
        with model.no_sync():
            yield


def any_rank(flag: bool, ranks: Ranks) -> bool:
    """True on every rank when it is true on one (a SIGTERM that reached some ranks before their check)."""
    if ranks.world == 1:
        return flag
    return bool(_all_reduce([float(flag)], dist.ReduceOp.MAX)[0])


def sum_tally(tally: T, ranks: Ranks) -> T:
    """The step's metric sums over every rank's share, so rank 0 reports the whole batch's loss."""
    if ranks.world == 1:
        return tally
    names = list(vars(tally))
    totals = _all_reduce([float(vars(tally)[name]) for name in names], dist.ReduceOp.SUM)
    for name, total in zip(names, totals, strict=True):
        setattr(tally, name, type(vars(tally)[name])(total))
    return tally


def _all_reduce(values: list[float], op: Any) -> list[float]:
    on = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor(values, dtype=torch.float64, device=on)
    dist.all_reduce(tensor, op=op)
    return [float(v) for v in tensor.tolist()]


# --- saved state -------------------------------------------------------------------------------------


def full_weights(model: Any, ranks: Ranks) -> dict[str, torch.Tensor] | None:
    """Under FSDP, the whole model's weights gathered onto rank 0's CPU (a collective: every rank calls it;
    the others get an empty dict). None otherwise: the model's own state dict is already whole."""
    if not ranks.sharded:
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    weights = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    for name in _tied_names(model):  # gathered apart, tied weights would be saved twice
        weights.pop(name, None)
    return weights


def _tied_names(model: Any) -> list[str]:
    """Names of parameters that are another name's parameter (a head tied to the embeddings)."""
    first: dict[int, str] = {}
    tied = []
    for name, param in model.named_parameters(remove_duplicate=False):
        if first.setdefault(id(param), name) != name:
            tied.append(name)
    return tied


def optimizer_state(model: Any, optimizer: torch.optim.Optimizer, ranks: Ranks) -> dict[str, Any]:
    """The optimizer's state as one process has it (parameters numbered in order), whatever the sharding:
    FSDP's is gathered by name onto rank 0 (a collective) and numbered."""
    if not ranks.sharded:
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    by_name = get_optimizer_state_dict(model, optimizer, options=options)
    if not ranks.main:
        return {}
    number = {name: i for i, name in enumerate(_trainable_names(model))}
    return {
        "state": {number[name]: value for name, value in by_name["state"].items()},
        "param_groups": [
            {**group, "params": [number[name] for name in group["params"]]}
            for group in by_name["param_groups"]
        ],
    }


def load_optimizer_state(
    model: Any, optimizer: torch.optim.Optimizer, saved: dict[str, Any], ranks: Ranks
) -> None:
    """Restore `optimizer_state`'s format: directly, or under FSDP by name, each rank keeping its slice."""
    if not ranks.sharded:
        optimizer.load_state_dict(saved)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = _trainable_names(model)
    by_name = {
        "state": {names[i]: value for i, value in saved["state"].items()},
        "param_groups": [
            {**group, "params": [names[i] for i in group["params"]]} for group in saved["param_groups"]
        ],
    }
    options = StateDictOptions(full_state_dict=True)
    set_optimizer_state_dict(model, optimizer, optim_state_dict=by_name, options=options)


def _trainable_names(model: Any) -> list[str]:
    # The optimizer is built over the trainable parameters in this order (recipe._setup_optimizer).
    return [name for name, p in model.named_parameters() if p.requires_grad]


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
