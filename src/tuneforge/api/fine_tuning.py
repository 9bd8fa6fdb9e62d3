"""Creating fine-tunes: the checks both APIs share (files, model, hyperparameters), then a queued job
with a first event. Everything a job needs is validated here, so bad input fails at create time."""

from __future__ import annotations

import random
from collections.abc import Iterable

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from tuneforge import catalog, graders, ids
from tuneforge.errors import InvalidGrader, InvalidRequest, ModelUnavailable, NotFound, RateLimited
from tuneforge.settings import Settings
from tuneforge.spec import ClassificationOptions, MethodType, ReinforcementMethod, TrainSpec
from tuneforge.store import events as event_store
from tuneforge.store import files as file_store
from tuneforge.store import jobs as job_store
from tuneforge.store import models as model_store
from tuneforge.store.tables import JobApi, JobRow

DEFAULT_LEGACY_MODEL = "tiny"  # OpenAI defaulted to its smallest model; ours is the built-in


def create_job(
    session: Session,
    settings: Settings,
    owner: str,
    *,
    api: JobApi,
    spec: TrainSpec,
    metadata: dict[str, str] | None = None,
) -> JobRow:
    check_spec(session, settings, owner, spec, metadata)
    _check_live_jobs(session, settings, owner)
    if spec.seed is None:  # drawn once here, so every attempt of the job trains alike
        spec = spec.model_copy(update={"seed": random.randrange(2**31)})
    assert spec.seed is not None
    job_id = ids.new_id("ft" if api == "fine-tunes" else "ftjob")
    row = job_store.add_named_job(
        session,
        _model_names(session, owner, api, spec, job_id),
        id=job_id,
        api=api,
        owner=owner,
        model=spec.model,
        training_file=spec.training_file,
        validation_file=spec.validation_file,
        hyperparameters=spec.hyperparameters.model_dump(),
        spec=spec.model_dump(mode="json"),
        suffix=spec.suffix,
        seed=spec.seed,
        integrations=list(spec.integrations),
        job_metadata=metadata,
        status="queued",
    )
    session.flush()
    event_store.add_event(session, job_id, f"Created fine-tuning job: {job_id}")
    position = job_store.queue_position(session, row)
    event_store.add_event(session, job_id, f"Job enqueued. Queue position: {position}")
    return row


def check_spec(
    session: Session, settings: Settings, owner: str, spec: TrainSpec, metadata: dict[str, str] | None
) -> None:
    """Every check of a job's input, shared by create and the preflight so both refuse alike."""
    method = spec.method.type
    summaries = {"training_file": _check_file(session, owner, spec.training_file, "training_file", method)}
    if spec.validation_file:
        summaries["validation_file"] = _check_file(
            session, owner, spec.validation_file, "validation_file", method
        )
    if isinstance(spec.method, ReinforcementMethod):
        grader = _check_grader(spec.method, summaries)
        _check_grader_models(session, settings, owner, grader)
    _check_model(session, settings, owner, spec.model)
    _check_suffix(spec.suffix)
    _check_metadata(metadata)
    _check_classification(spec.classification, spec.validation_file)
    if spec.classification is not None and method != "supervised":
        raise InvalidRequest("classification metrics are for supervised jobs", param="method")


def _model_names(session: Session, owner: str, api: JobApi, spec: TrainSpec, job_id: str) -> Iterable[str]:
    """The names the job's model may get, first choice first. A continued fine-tune is named after its
    parent's base, as OpenAI names it."""
    base = model_store.base_model_of(session, owner=owner, name=spec.model)
    if api == "fine-tunes":
        return ids.legacy_model_names(base, owner, spec.suffix, ids.now())
    return [ids.job_model_name(base, owner, spec.suffix, job_id)]


MAX_METADATA_PAIRS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512  # OpenAI's limits


def _check_metadata(metadata: dict[str, str] | None) -> None:
    if not metadata:
        return
    if len(metadata) > MAX_METADATA_PAIRS:
        raise InvalidRequest(
            f"metadata has {len(metadata)} pairs; at most {MAX_METADATA_PAIRS} are allowed", param="metadata"
        )
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY:
            raise InvalidRequest(
                f"metadata key '{key[:20]}...' is longer than {MAX_METADATA_KEY} characters", param="metadata"
            )
        if len(value) > MAX_METADATA_VALUE:
            raise InvalidRequest(
                f"metadata['{key}'] is longer than {MAX_METADATA_VALUE} characters", param="metadata"
            )


# Which file formats (the upload summary's `format`) each method trains on.
METHOD_FORMATS: dict[MethodType, tuple[str, ...]] = {
    "supervised": ("prompt_completion", "chat"),
    "dpo": ("preference",),
    "reinforcement": ("reinforcement",),
}
GRADER_PARAM = "method.reinforcement.grader"


def _check_file(
    session: Session, owner: str, file_id: str, param: str, method: MethodType
) -> dict[str, object]:
    """The file's upload summary, once it is known to be this owner's fine-tune data for `method`."""
    try:
        row = file_store.get_file(session, owner=owner, file_id=file_id, param=param)
    except NotFound as exc:
        raise InvalidRequest(f"{param} '{file_id}' does not exist; upload it first", param=param) from exc
    if row.purpose != "fine-tune":
        raise InvalidRequest(
            f"File {file_id} has purpose '{row.purpose}'; upload it with purpose 'fine-tune'", param=param
        )
    found = (row.summary or {}).get("format")
    expected = METHOD_FORMATS[method]
    if found is not None and found not in expected:
        raise InvalidRequest(
            f"{param} {file_id} holds {found.replace('_', '/')} data, but a {method} job trains on "
            f"{' or '.join(f.replace('_', '/') for f in expected)} data",
            param=param,
            code="invalid_file_format",
        )
    return row.summary or {}


def _check_grader(method: ReinforcementMethod, summaries: dict[str, dict[str, object]]) -> graders.AnyGrader:
    """The grader, once it is known to run at all and every `{{item.<field>}}` it names is in every line
    of each file."""
    try:
        grader: graders.AnyGrader = TypeAdapter(graders.Grader).validate_python(method.grader)
        graders.validate(grader)
        for param, summary in summaries.items():
            fields = summary.get("fields")
            if isinstance(fields, list):
                _check_fields(grader, {str(f) for f in fields}, param)
    except ValidationError as exc:
        raise InvalidRequest(f"Invalid grader: {exc.errors()[0]['msg']}", param=GRADER_PARAM) from exc
    except InvalidGrader as exc:
        raise InvalidGrader(exc.message, param=_grader_param(exc.param)) from exc
    return grader


def _check_grader_models(session: Session, settings: Settings, owner: str, grader: graders.AnyGrader) -> None:
    """Every model a model grader names must be one this organisation could call through
    /v1/chat/completions: its own (or shared) fine-tuned model or checkpoint, or a base model that loads
    here. To anyone else another organisation's model does not exist."""
    named = grader.named() if isinstance(grader, graders.MultiGrader) else {"": grader}
    for key, sub in named.items():
        model = getattr(sub, "model", None)
        if model is None or model_store.usable_path(session, owner=owner, name=model) is not None:
            continue
        param = f"{GRADER_PARAM}.graders.{key}.model" if key else f"{GRADER_PARAM}.model"
        try:
            if ids.may_name_a_fine_tuned_model(model):
                raise NotFound(f"The model '{model}' does not exist", code="model_not_found")
            catalog.resolve_loadable(model, settings, local=catalog.server_dirs(settings))
        except (NotFound, ModelUnavailable) as exc:
            raise InvalidGrader(f"Grader '{sub.name}': {exc.message}", param=param, code=exc.code) from exc


def _check_fields(grader: graders.AnyGrader, fields: set[str], param: str) -> None:
    try:
        graders.check_item_fields(grader, fields)
    except InvalidGrader as exc:  # re-raised by _check_grader, which adds the request's path
        raise InvalidGrader(f"{exc.message} ({param})", param=exc.param) from exc


def _grader_param(param: str | None) -> str:
    """`grader.source` as the request spells it: `method.reinforcement.grader.source`."""
    return GRADER_PARAM + (param or "grader").removeprefix("grader")


def _check_model(session: Session, settings: Settings, owner: str, model: str) -> None:
    if model_store.usable_path(session, owner=owner, name=model) is not None:
        return  # continued training from a fine-tuned model or checkpoint, its own or shared with it
    try:
        catalog.resolve_loadable(model, settings, local=catalog.server_dirs(settings))
    except NotFound as exc:
        raise InvalidRequest(exc.message, param="model", code="model_not_found") from exc


def _check_live_jobs(session: Session, settings: Settings, owner: str) -> None:
    live = job_store.count_live_for_create(session, owner=owner)  # serialised across API replicas
    if live >= settings.max_live_jobs_per_org:
        raise RateLimited(
            f"Your organisation has {live} fine-tunes queued or running, the most allowed at once "
            f"({settings.max_live_jobs_per_org}). Wait for one to finish or cancel one.",
            retry_after_s=60,
        )


def _check_suffix(suffix: str | None) -> None:
    if suffix is not None and not ids.is_valid_suffix(suffix):
        raise InvalidRequest(
            "suffix may hold only letters, digits, '-', '_' and '.' (at most 40 characters)", param="suffix"
        )


def _check_classification(options: ClassificationOptions | None, validation_file: str | None) -> None:
    if options is None:
        return
    if not validation_file:
        raise InvalidRequest(
            "compute_classification_metrics needs a validation_file to compute the metrics on",
            param="validation_file",
        )
    if options.n_classes is None and options.positive_class is None:
        raise InvalidRequest(
            "Set classification_n_classes (multiclass) or classification_positive_class (binary) "
            "with compute_classification_metrics",
            param="classification_n_classes",
        )
    if options.positive_class is not None and options.n_classes not in (None, 2):
        raise InvalidRequest(
            "classification_positive_class is for binary tasks; classification_n_classes must be 2",
            param="classification_positive_class",
        )
