"""The job spec: one typed, torch-free description of a fine-tuning run. An API route (legacy or jobs) or
`tuneforge train` builds a `TrainSpec` once; the job row stores it; the worker hands it to the training
child inside a `TrainJob` file. "auto" is one explicit value, made concrete once by the recipe into
`ResolvedHyperparameters` (with the reason for each choice).

A hyperparameter is declared here once: the wire models, the CLI's flags and the recipe all read it from
these classes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Auto = Literal["auto"]
AUTO: Auto = "auto"
Tuning = Literal["lora", "full"]  # which weights train: low-rank adapters, or every weight


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Hyperparameters(_Spec):
    @model_validator(mode="before")
    @classmethod
    def _null_is_auto(cls, values: Any) -> Any:
        """The APIs spell "auto" as null (or leave a field out): either way the default applies."""
        return {k: v for k, v in values.items() if v is not None} if isinstance(values, dict) else values


class SupervisedHyperparameters(_Hyperparameters):
    """OpenAI's supervised hyperparameters, each a number or "auto" (`null` on the wire reads as "auto")."""

    n_epochs: Annotated[int, Field(ge=1, le=50)] | Auto = AUTO
    batch_size: Annotated[int, Field(ge=1, le=256)] | Auto = AUTO
    learning_rate_multiplier: Annotated[float, Field(gt=0, le=100)] | Auto = AUTO
    prompt_loss_weight: Annotated[float, Field(ge=0, le=1)] = 0.01  # OpenAI's default: prompts barely count


class SupervisedMethod(_Spec):
    type: Literal["supervised"] = "supervised"
    hyperparameters: SupervisedHyperparameters = SupervisedHyperparameters()


class DpoHyperparameters(_Hyperparameters):
    """OpenAI's preference (DPO) hyperparameters; `beta` weighs the pull back toward the starting model."""

    beta: Annotated[float, Field(gt=0, le=2)] | Auto = AUTO
    n_epochs: Annotated[int, Field(ge=1, le=50)] | Auto = AUTO
    batch_size: Annotated[int, Field(ge=1, le=256)] | Auto = AUTO
    learning_rate_multiplier: Annotated[float, Field(gt=0, le=100)] | Auto = AUTO


class DpoMethod(_Spec):
    type: Literal["dpo"] = "dpo"
    hyperparameters: DpoHyperparameters = DpoHyperparameters()


ReasoningEffort = Literal["default", "low", "medium", "high"]


class ReinforcementHyperparameters(_Hyperparameters):
    """OpenAI's reinforcement hyperparameters. `batch_size` counts prompts per step; each prompt is sampled
    several times (8 at a compute_multiplier of 1). `reasoning_effort` scales the longest sampled answer:
    the models here have no separate reasoning phase (docs/guide.md)."""

    n_epochs: Annotated[int, Field(ge=1, le=50)] | Auto = AUTO
    batch_size: Annotated[int, Field(ge=1, le=256)] | Auto = AUTO
    learning_rate_multiplier: Annotated[float, Field(gt=0, le=100)] | Auto = AUTO
    eval_interval: Annotated[int, Field(ge=1)] | Auto = AUTO
    eval_samples: Annotated[int, Field(ge=1, le=64)] | Auto = AUTO
    compute_multiplier: Annotated[float, Field(gt=0, le=10)] | Auto = AUTO
    reasoning_effort: ReasoningEffort = "default"


class ReinforcementMethod(_Spec):
    """The grader is kept as its wire dict: its models live in `tuneforge.graders`, a layer above this one.
    The API validates it at job creation; the recipe parses it again before the first sample."""

    type: Literal["reinforcement"] = "reinforcement"
    hyperparameters: ReinforcementHyperparameters = ReinforcementHyperparameters()
    grader: dict[str, Any]


# The training method. A new method is one more class here, joined to this union with `type` as its
# discriminator, and one objective in the recipe.
Method = Annotated[SupervisedMethod | DpoMethod | ReinforcementMethod, Field(discriminator="type")]
MethodType = Literal["supervised", "dpo", "reinforcement"]
Hyperparameters = SupervisedHyperparameters | DpoHyperparameters | ReinforcementHyperparameters


class LoraOptions(_Spec):
    r: Annotated[int, Field(ge=1, le=1024)] = 8  # adapter rank: the common default, ~0.5% of a layer
    alpha: Annotated[int, Field(ge=1)] = 16  # update scale alpha/r = 2, as in the LoRA paper's setups
    dropout: Annotated[float, Field(ge=0, lt=1)] = (
        0.0  # none: on tiny data it slows learning more than it helps
    )


class ClassificationOptions(_Spec):
    """`compute_classification_metrics` of the legacy API: set means on."""

    n_classes: Annotated[int, Field(ge=2)] | None = None
    positive_class: str | None = None  # binary tasks: the label counted as positive
    betas: tuple[Annotated[float, Field(gt=0)], ...] = ()  # F-beta scores beside F1


class TrainSpec(_Spec):
    """Everything a fine-tune is asked to do, as the user said it ("auto" kept)."""

    model: str  # base model, fine-tuned model or checkpoint name; `tuneforge train`: also a directory
    training_file: str  # a file id in the service; a path for `tuneforge train`
    validation_file: str | None = None
    method: Method = SupervisedMethod()
    tuning: Tuning | Auto = AUTO  # auto: full for built-ins and small models, LoRA above 100M parameters
    lora: LoraOptions = LoraOptions()
    classification: ClassificationOptions | None = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None  # None: drawn when the run starts
    suffix: str | None = None  # part of the fine-tuned model's name
    integrations: tuple[dict[str, Any], ...] = ()  # wandb / mlflow, as the jobs API takes them

    @property
    def hyperparameters(self) -> Hyperparameters:
        return self.method.hyperparameters

    @model_validator(mode="before")
    @classmethod
    def _supervised_unless_named(cls, values: Any) -> Any:
        """A method given without its `type` is supervised, as OpenAI's API defaults it."""
        if (
            isinstance(values, dict)
            and isinstance(values.get("method"), dict)
            and "type" not in values["method"]
        ):
            return {**values, "method": {"type": "supervised", **values["method"]}}
        return values


class ResolvedHyperparameters(_Spec):
    """The values a run uses, "auto" made concrete; written once when training starts and shown by both
    APIs. `reasons` says why each "auto" value was chosen."""

    n_epochs: int
    batch_size: int
    learning_rate_multiplier: float
    learning_rate: float
    prompt_loss_weight: float
    tuning: Tuning
    seed: int
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    warmup_steps: int
    weight_decay: float
    total_steps: int
    beta: float | None = None  # dpo only; reinforcement: the weight of the KL penalty to the starting model
    # reinforcement only
    samples_per_prompt: int | None = None  # the group size G, scaled by compute_multiplier
    compute_multiplier: float | None = None
    eval_interval: int | None = None  # steps between grader scores on the validation file
    eval_samples: int | None = None  # samples per validation prompt
    reasoning_effort: ReasoningEffort | None = None
    max_sample_tokens: int | None = None  # the longest sampled answer (reasoning_effort scales it)
    temperature: float | None = None  # of training samples and validation samples
    clip_epsilon: float | None = None  # policy ratios outside 1 +- epsilon get no gradient
    # Validation passes in a row without a lower validation loss before the run stops and keeps the best
    # weights seen; None: train every step and keep the last (what an explicit n_epochs asks for).
    early_stopping_patience: int | None = None
    # Also stop at a validation pass that is the lowest so far and answers every validation example exactly
    # (each completion token the most likely one): generation on a built-in, where "auto" runs long.
    stop_when_exact: bool = False
    reasons: dict[str, str] = {}


class TrainJob(_Spec):
    """One run of a spec on this host: the spec plus where its inputs and outputs are. The worker writes it
    as the training child's input file; `tuneforge train` builds it from its flags."""

    spec: TrainSpec
    model_source: str  # spec.model, or the directory of the fine-tuned model or checkpoint it names
    # A reinforcement grader's models, as model_source: each name to its directory or its base-model name
    # (the worker resolves them for the job's organisation); a name left out is its own location.
    grader_models: dict[str, str] = {}
    training_path: Path
    validation_path: Path | None = None
    output_dir: Path
    resume: bool = False  # continue from the resume state in output_dir, if there is one
    checkpoint_every: int | None = None  # steps between resume states; None: settings.checkpoint_every_steps
    eval_every: int | None = None  # steps between validation passes; None: about ten per run
    threads: int | None = None  # torch CPU threads; None: settings.train_threads, then all cores
    # The service's worker prunes model checkpoints itself (listing first, then disk); alone, the recipe does.
    prune_checkpoints: bool = True

    @classmethod
    def local(cls, spec: TrainSpec, output_dir: Path, **options: Any) -> TrainJob:
        """A run of `spec` whose model and files are local names and paths (`tuneforge train`, benches)."""
        return cls(
            spec=spec,
            model_source=spec.model,
            training_path=Path(spec.training_file),
            validation_path=Path(spec.validation_file) if spec.validation_file else None,
            output_dir=output_dir,
            **options,
        )


class CostEstimate(_Spec):
    """What a run is expected to take on the machine that measured it."""

    seconds: float  # the training loop: optimizer steps and validation passes
    seconds_per_token: float
    # where seconds_per_token comes from: a finished run's average, a warm-up of a few real steps at this
    # run's batch shape, or (nothing measured yet) model FLOPs over a measured matmul
    calibration: Literal["run", "warm-up", "flops"]
    device: str
    peak_cpu_bytes: int  # the trainer's resident memory at its peak
    peak_gpu_bytes: int | None = None  # CUDA only


class Preflight(_Spec):
    """A spec resolved as its job would resolve it, with what it will cost, before anything is queued."""

    hyperparameters: ResolvedHyperparameters  # "auto" made concrete, `reasons` saying why
    data_format: str
    n_train_examples: int
    n_validation_examples: int
    steps_per_epoch: int
    total_steps: int
    trained_tokens_per_epoch: int  # real (non-padding) tokens of one pass over the training file
    trained_tokens: int  # over every epoch: what the finished job reports as trained_tokens
    n_parameters: int
    trainable_parameters: int
    estimate: CostEstimate
