"""Configuration: the one place that reads the environment (prefix TUNEFORGE_).

Build a `Settings` at the edge (CLI or test) and pass it down; nothing else looks at os.environ.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# OpenAI's model names mapped to open models of a comparable role; override with TUNEFORGE_MODEL_ALIASES
# (a JSON object). They are hub ids, so they need a reachable hub or a local copy.
DEFAULT_MODEL_ALIASES: dict[str, str] = {
    "ada": "HuggingFaceTB/SmolLM2-135M",
    "babbage": "HuggingFaceTB/SmolLM2-360M",
    "babbage-002": "HuggingFaceTB/SmolLM2-360M",
    "curie": "Qwen/Qwen2.5-0.5B",
    "davinci": "Qwen/Qwen2.5-1.5B",
    "davinci-002": "Qwen/Qwen2.5-1.5B",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TUNEFORGE_", extra="ignore", populate_by_name=True)

    data_dir: Path = Field(default_factory=lambda: Path("~/.tuneforge").expanduser())
    database_url: str | None = None  # default: SQLite file in the data dir
    blob_url: str | None = None  # fsspec URL for uploads, results and models; default: data_dir/blobs
    # An S3-compatible object store (blob_url s3://bucket/prefix). Unset, s3fs finds credentials as boto
    # does (AWS_* variables, ~/.aws, an instance role). Left out of the training child's task file.
    s3_endpoint_url: str | None = Field(default=None, exclude=True)  # MinIO, Ceph, R2…; None: AWS
    s3_key: str | None = Field(default=None, exclude=True)
    s3_secret: str | None = Field(default=None, exclude=True)
    s3_region: str | None = Field(default=None, exclude=True)
    # Any other fsspec option of the blob filesystem, as a JSON object; these win over the s3_* ones.
    blob_storage_options: dict[str, Any] = Field(default_factory=dict, exclude=True)
    # Limits shared by every API replica (requests per minute per key) live here; None: in each process.
    redis_url: str | None = Field(default=None, exclude=True)
    redis_key_prefix: str = "tuneforge"  # several deployments (or tests) may share one Redis
    host: str = "127.0.0.1"
    port: int = 8000
    organization: str = "default"  # owner of objects until API keys name another (tenancy issue)
    model_aliases: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_MODEL_ALIASES))
    # Directories under which an API caller may name a model by its path (TUNEFORGE_LOCAL_MODEL_DIRS, split
    # like PATH). None by default: a path would let one organisation load another's job output. The data
    # directory stays out even when listed; the local commands (train, eval) accept any directory.
    local_model_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list)

    # Job execution
    workers: int = 1  # embedded workers inside `tuneforge serve`
    heartbeat_interval_s: float = 2.0
    stale_after_s: float = 20.0  # a running job whose heartbeat is older than this is requeued
    max_attempts: int = 3  # a job whose child keeps crashing fails after this many tries
    train_threads: int | None = None  # torch threads per training child; None: all cores
    train_visible_devices: str | None = None  # CUDA_VISIBLE_DEVICES for training children on GPU hosts
    # Processes per training job: above 1, or "gpu" (one per visible GPU), the worker launches the child
    # under torchrun on this host (docs/training.md, "Several processes"); train_threads is then per process.
    train_processes: Annotated[int, Field(ge=1)] | Literal["gpu"] = 1
    # How those processes split the work: "ddp" (a whole model each), "fsdp" (weights, gradients and
    # optimizer state sharded), "auto" (FSDP on CUDA when one copy would fill most of a GPU).
    train_sharding: Literal["auto", "ddp", "fsdp"] = "auto"
    checkpoint_every_steps: int = 50  # steps between resume states (what crash recovery continues from)
    keep_checkpoints: int = 3  # model checkpoints a job keeps, the final model included (OpenAI: 3)
    # Recompute each layer's activations in the backward pass instead of keeping them: about a third more
    # compute for activation memory of one layer's input per layer (what lets a 0.5B model train in 8 GiB).
    gradient_checkpointing: bool = False
    retry_backoff_s: float = 30.0  # a crashed attempt waits this long (doubling per attempt) before a retry

    # Inference
    inference_max_loaded_models: int = 4
    inference_memory_budget_mb: int = 8192
    inference_max_batch: int = 32
    inference_max_prefill_tokens: int = 16384  # padded prompt tokens in one prefill pass (bounds its memory)
    inference_threads: int | None = None  # torch threads for serving; None: cores - 1 in the child, else all
    inference_process: bool = True  # serve from a child process (see inference/process.py); False: in-process
    # LoRA adapters stay loaded (least recently used evicted first) while their weights fit in this many
    # bytes; TUNEFORGE_ADAPTER_MEMORY also takes "512MB", "2GB". Adapters do not count against
    # inference_max_loaded_models: a base serves dozens of them.
    adapter_memory: int = 1024 * 1024 * 1024
    # "mixed": rows of different adapters of one base share each forward pass; "per_adapter": one pass per
    # served model with the same LoRA code; "peft_switch": one pass per served model, PEFT's adapters switched
    # by set_adapter (the engine before mixed batches). The last two are the benchmark's comparisons.
    inference_adapter_batching: Literal["mixed", "per_adapter", "peft_switch"] = "mixed"
    # How "auto" fine-tunes a built-in base (tiny, tiny-gpt2): "full" trains every weight (better on these
    # random networks); "lora" gives an adapter, which the engine serves many of on one base.
    builtin_tuning: Literal["full", "lora"] = "full"

    # Python graders' sandbox (graders/sandbox.py), per graded sample
    grader_wall_s: float = 10.0
    grader_cpu_s: int = 5
    grader_memory_mb: int = 1024  # RLIMIT_AS: python and numpy fit, a runaway allocation does not

    # Model hub: a hub name loads only from the local Hugging Face cache or a hub that answers; both are
    # checked before a job is accepted or a model is loaded, so an unreachable hub fails fast.
    hub_offline: bool = Field(
        default=False, validation_alias=AliasChoices("TUNEFORGE_HUB_OFFLINE", "HF_HUB_OFFLINE")
    )
    hub_endpoint: str = Field(
        default="https://huggingface.co",
        validation_alias=AliasChoices("TUNEFORGE_HUB_ENDPOINT", "HF_ENDPOINT"),
    )
    hub_probe_timeout_s: float = 0.5  # the reachability probe's budget; its answer is cached a minute

    # Tracking. W&B's own variables, read here so `wandb sync` can say what is missing before it starts.
    wandb_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("TUNEFORGE_WANDB_API_KEY", "WANDB_API_KEY")
    )
    wandb_mode: str | None = Field(
        default=None, validation_alias=AliasChoices("TUNEFORGE_WANDB_MODE", "WANDB_MODE")
    )
    wandb_base_url: str = Field(
        default="https://api.wandb.ai",
        validation_alias=AliasChoices("TUNEFORGE_WANDB_BASE_URL", "WANDB_BASE_URL"),
    )
    mlflow_tracking_uri: str | None = None  # default: a SQLite store under data_dir/mlflow

    # Access and limits (OpenAI-like defaults)
    auth: bool = True  # every /v1 request needs `Authorization: Bearer <key>`; off only on loopback
    max_upload_bytes: int = 512 * 1024 * 1024  # one uploaded file (413 above)
    batch_concurrency: int = 256  # a batch's requests in flight at once: enough to keep every batch slot full
    max_multipart_upload_bytes: int = 8 * 1024**3  # one file sent through /v1/uploads (OpenAI's limit)
    max_request_bytes: int = 16 * 1024 * 1024  # any other request body (413 above)
    max_examples_per_file: int = 1_000_000
    max_live_jobs_per_org: int = 8  # queued + running fine-tunes of one organisation
    requests_per_minute: int = 3000  # per API key (429 with Retry-After above)
    key_recheck_s: float = 2.0  # a streamed response looks its key up again this often: revoking ends it

    # Client side (the `tuneforge api …` commands)
    api_base: str | None = None
    api_key: str | None = None

    @field_validator("local_model_dirs", mode="before")
    @classmethod
    def _split_dirs(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part for part in value.split(os.pathsep) if part]
        return value

    @field_validator("adapter_memory", mode="before")
    @classmethod
    def _parse_bytes(cls, value: Any) -> Any:
        """Bytes, or a number with KB/MB/GB (powers of 1024): "512MB"."""
        if not isinstance(value, str):
            return value
        text = value.strip().upper().removesuffix("B")
        scale = {"K": 1024, "M": 1024**2, "G": 1024**3}.get(text[-1:], 1)
        number = text[:-1] if scale > 1 else text
        try:
            return int(float(number) * scale)
        except ValueError:
            raise ValueError(f"adapter_memory must be bytes or a size like '512MB', not {value!r}") from None

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'tuneforge.db'}"

    @property
    def resolved_blob_url(self) -> str:
        return self.blob_url or str(self.data_dir / "blobs")

    def blob_storage_options_resolved(self) -> dict[str, Any]:
        """fsspec options for `resolved_blob_url`: the s3_* settings for an s3:// URL, then
        blob_storage_options."""
        options: dict[str, Any] = {}
        if self.resolved_blob_url.startswith(("s3://", "s3a://")):
            # Other processes write the same bucket: a listing cached here would hide their objects.
            options["use_listings_cache"] = False
            if self.s3_endpoint_url:
                options["endpoint_url"] = self.s3_endpoint_url
            if self.s3_key:
                options["key"] = self.s3_key
            if self.s3_secret:
                options["secret"] = self.s3_secret
            if self.s3_region:
                options["client_kwargs"] = {"region_name": self.s3_region}
        return {**options, **self.blob_storage_options}

    @property
    def models_dir(self) -> Path:
        """Where built-in base models are materialised on first use."""
        return self.data_dir / "base-models"

    @property
    def hub_cache_dir(self) -> Path:
        """The Hugging Face hub cache, found as huggingface_hub finds it."""
        if os.environ.get("HF_HUB_CACHE"):
            return Path(os.environ["HF_HUB_CACHE"]).expanduser()
        home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "huggingface"
        return Path(home).expanduser() / "hub"

    @property
    def netrc_path(self) -> Path:
        """Where `wandb login` keeps its key."""
        return Path(os.environ.get("NETRC") or "~/.netrc").expanduser()

    def client_api_base(self) -> str:
        """Server URL for client commands: TUNEFORGE_API_BASE, then OPENAI_BASE_URL, then host/port."""
        return self.explicit_api_base() or f"http://{self.host}:{self.port}/v1"

    def explicit_api_base(self) -> str | None:
        """The server URL the user named (flag, TUNEFORGE_API_BASE or OPENAI_BASE_URL), if any."""
        return self.api_base or os.environ.get("OPENAI_BASE_URL") or None

    @property
    def local_key_path(self) -> Path:
        """The key `serve` created on first start, kept for the local CLI (mode 0600)."""
        return self.data_dir / "api_key"

    def client_api_key(self) -> str:
        """TUNEFORGE_API_KEY, then OPENAI_API_KEY, then the local server's key file."""
        explicit = self.api_key or os.environ.get("OPENAI_API_KEY")
        if explicit:
            return explicit
        try:
            return self.local_key_path.read_text().strip()
        except OSError:
            return "tuneforge-local"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with explicit values (CLI flags) taking precedence over it."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def offline_hub_environment() -> dict[str, str]:
    """Flags that keep Hugging Face libraries from reaching for the network in child processes."""
    return {"HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a training child: the parent's, plus `extra`."""
    env = dict(os.environ)
    env.update(offline_hub_environment())
    env.update(extra or {})
    return env
