"""`/v1/fine_tuning/alpha/graders/validate` and `/run` through the official SDK."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient
from openai import OpenAI

from tuneforge.api.app import create_app
from tuneforge.settings import Settings

EXACT: dict[str, Any] = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_text}}",
    "reference": "{{item.label}}",
    "operation": "eq",
}


def test_validate_echoes_a_good_grader(client: OpenAI) -> None:
    answer = client.fine_tuning.alpha.graders.validate(grader=EXACT)  # type: ignore[arg-type]
    assert answer.grader is not None
    assert answer.grader.model_dump(exclude_none=True) == EXACT


@pytest.mark.parametrize(
    ("grader", "param", "said"),
    [
        (EXACT | {"operation": "startswith"}, "grader.operation", "operation"),
        (EXACT | {"input": "{{answer}}"}, "grader", "item.<field>"),
        (
            {
                "type": "text_similarity",
                "name": "sim",
                "input": "a",
                "reference": "b",
                "evaluation_metric": "cosine",
            },
            "grader.evaluation_metric",
            "embedding model",
        ),
        ({"type": "python", "name": "py", "source": "def grade(:"}, "grader.source", "does not compile"),
        (
            {
                "type": "multi",
                "name": "m",
                "graders": {"exact": EXACT},
                "calculate_output": "__import__('os')",
            },
            "grader.calculate_output",
            "calculate_output",
        ),
        (
            {
                "type": "score_model",
                "name": "judge",
                "model": "no-such-model",
                "input": [{"role": "user", "content": "hi"}],
            },
            "grader.model",
            "no-such-model",
        ),
    ],
)
def test_bad_graders_are_400s_naming_the_param(
    client: OpenAI, grader: dict[str, Any], param: str, said: str
) -> None:
    for call in (
        lambda: client.fine_tuning.alpha.graders.validate(grader=grader),  # type: ignore[arg-type]
        lambda: client.fine_tuning.alpha.graders.run(grader=grader, model_sample="x"),  # type: ignore[arg-type]
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            call()
        assert refused.value.status_code == 400
        assert refused.value.param == param
        assert said in refused.value.message


def test_run_answers_as_openai_does(client: OpenAI) -> None:
    result = client.fine_tuning.alpha.graders.run(grader=EXACT, model_sample="yes", item={"label": "yes"})  # type: ignore[arg-type]
    assert result.reward == 1.0
    assert (result.metadata.name, result.metadata.type) == ("exact", "string_check")
    assert not any(value for value in result.metadata.errors.model_dump().values())
    assert result.metadata.scores == {"exact": 1.0}
    assert result.metadata.execution_time >= 0
    assert result.sub_rewards == {}
    assert result.api_model_grader_token_usage_per_model == {}


def test_run_a_multi_grader_reports_its_sub_rewards(client: OpenAI) -> None:
    grader = {
        "type": "multi",
        "name": "mix",
        "graders": {
            "exact": EXACT,
            "close": {
                "type": "text_similarity",
                "name": "close",
                "input": "{{sample.output_text}}",
                "reference": "{{item.label}}",
                "evaluation_metric": "bleu",
            },
        },
        "calculate_output": "0.75 * exact + 0.25 * close",
    }
    result = client.fine_tuning.alpha.graders.run(
        grader=grader, model_sample="a b c d", item={"label": "a b c d"}
    )  # type: ignore[arg-type]
    assert result.sub_rewards == {"exact": 1.0, "close": pytest.approx(1.0)}
    assert result.reward == pytest.approx(1.0)


def test_run_a_python_grader_and_a_hostile_one_that_reads_the_database(
    client: OpenAI, settings: Settings
) -> None:
    good = {
        "type": "python",
        "name": "py",
        "source": "def grade(sample, item):\n    return len(sample['output_text']) / 10\n",
    }
    assert client.fine_tuning.alpha.graders.run(grader=good, model_sample="12345").reward == 0.5  # type: ignore[arg-type]
    database = next(settings.data_dir.glob("*.db"))
    hostile = {
        "type": "python",
        "name": "thief",
        "source": f"def grade(sample, item):\n    return float(len(open({str(database)!r}).read()) > 0)\n",
    }
    result = client.fine_tuning.alpha.graders.run(grader=hostile, model_sample="x")  # type: ignore[arg-type]
    assert result.reward == 0.0
    assert result.metadata.errors.python_grader_runtime_error
    assert "does not allow reading" in (result.metadata.errors.python_grader_runtime_error_details or "")
    assert client.fine_tuning.alpha.graders.validate(grader=EXACT).grader is not None  # type: ignore[arg-type]  # the server is fine


def test_a_served_model_grades_through_the_engine(client: OpenAI) -> None:
    grader = {
        "type": "score_model",
        "name": "judge",
        "model": "tiny",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Rate {{sample.output_text}}:"}]}
        ],
        "sampling_params": {"temperature": 0, "seed": 1, "max_completions_tokens": 4},
    }
    result = client.fine_tuning.alpha.graders.run(grader=grader, model_sample="Paris")  # type: ignore[arg-type]
    usage = result.api_model_grader_token_usage_per_model["tiny"]
    assert isinstance(usage, dict) and usage["completion_tokens"] > 0 and usage["prompt_tokens"] > 0
    assert result.metadata.sampled_model_name == "tiny"
    assert 0.0 <= result.reward <= 1.0  # an untrained model's answer: a number in range, or a parse error
    assert result.reward == 0.0 or not result.metadata.errors.api_model_grader_parse_error


def test_the_sandbox_limits_come_from_settings(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"grader_wall_s": 1.0}), workers=0)
    sleeper = {
        "type": "python",
        "name": "slow",
        "source": "import time\ndef grade(s, i):\n    time.sleep(30)\n",
    }
    with TestClient(app) as http:
        client = OpenAI(base_url="http://testserver/v1", api_key="test", http_client=http, max_retries=0)
        result = client.fine_tuning.alpha.graders.run(grader=sleeper, model_sample="x")  # type: ignore[arg-type]
    assert result.reward == 0.0
    assert result.metadata.errors.unresponsive_reward_error
    assert result.metadata.execution_time < 10
