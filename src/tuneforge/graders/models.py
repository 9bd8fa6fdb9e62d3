"""OpenAI's grader objects as pydantic models, with OpenAI's field names: what a fine-tuning job's
`method.reinforcement.grader` and the `/fine_tuning/alpha/graders` routes carry. Pure data, no torch."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class GraderModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str


class StringCheckGrader(GraderModel):
    type: Literal["string_check"]
    input: str
    reference: str
    operation: Literal["eq", "ne", "like", "ilike"]


TextMetric = Literal[
    "cosine",
    "fuzzy_match",
    "bleu",
    "gleu",
    "meteor",
    "rouge_1",
    "rouge_2",
    "rouge_3",
    "rouge_4",
    "rouge_5",
    "rouge_l",
]


class TextSimilarityGrader(GraderModel):
    type: Literal["text_similarity"] = "text_similarity"
    input: str
    reference: str
    evaluation_metric: TextMetric


class PythonGrader(GraderModel):
    type: Literal["python"]
    source: str
    image_tag: str | None = None  # OpenAI's sandbox image; here the grader runs on this interpreter


class InputText(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["input_text", "output_text"] = "input_text"
    text: str


class InputOther(BaseModel):
    """An image or audio block: accepted on the wire, refused by `validate` (the served models read text)."""

    model_config = ConfigDict(extra="allow")

    type: Literal["input_image", "input_audio"]


ContentPart = Annotated[InputText | InputOther, Field(discriminator="type")]


class EvalMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["user", "assistant", "system", "developer"]
    content: str | ContentPart | list[str | ContentPart]
    type: Literal["message"] | None = None

    def parts(self) -> list[str | InputText | InputOther]:
        return list(self.content) if isinstance(self.content, list) else [self.content]


class ModelSamplingParams(BaseModel):
    model_config = ConfigDict(extra="ignore")

    seed: int | None = None
    top_p: float | None = None
    temperature: float | None = None
    max_completions_tokens: int | None = Field(default=None, ge=1)
    reasoning_effort: str | None = None  # accepted; the served models do not reason separately


class ScoreModelGrader(GraderModel):
    type: Literal["score_model"]
    model: str
    input: list[EvalMessage]
    sampling_params: ModelSamplingParams = Field(default_factory=ModelSamplingParams)
    range: list[float] = Field(default_factory=lambda: [0.0, 1.0], min_length=2, max_length=2)


class LabelModelGrader(GraderModel):
    type: Literal["label_model"]
    model: str
    input: list[EvalMessage]
    labels: list[str] = Field(min_length=1)
    passing_labels: list[str] = Field(min_length=1)


SubGrader = Annotated[
    StringCheckGrader | TextSimilarityGrader | PythonGrader | ScoreModelGrader | LabelModelGrader,
    Field(discriminator="type"),
]


class MultiGrader(GraderModel):
    type: Literal["multi"] = "multi"
    # OpenAI's guide passes a mapping of variable name to grader; the OpenAPI document types it as one
    # grader. Both are accepted; a lone grader is referred to by its name in the formula.
    graders: dict[str, SubGrader] | SubGrader
    calculate_output: str

    def named(self) -> dict[str, Any]:
        if isinstance(self.graders, dict):
            return dict(self.graders)
        return {self.graders.name: self.graders}


# What a job or the run/validate routes take: label_model only inside a multi grader, as in the spec.
Grader = Annotated[
    StringCheckGrader | TextSimilarityGrader | PythonGrader | ScoreModelGrader | MultiGrader,
    Field(discriminator="type"),
]
AnyGrader = (
    StringCheckGrader
    | TextSimilarityGrader
    | PythonGrader
    | ScoreModelGrader
    | LabelModelGrader
    | MultiGrader
)
