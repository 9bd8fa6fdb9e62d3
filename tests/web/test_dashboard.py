"""The dashboard end to end in headless Chromium, against a real `tuneforge serve` with one worker.

The path a user takes: upload a file, start a fine-tune on `tiny`, watch the curve gain points, see the
job succeed, try the model in the playground; and a bad upload shows the API's line-and-field message."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web.conftest import classification_rows, write_jsonl

FINAL = ("succeeded", "failed", "cancelled")
NO_KEY = "No API key is stored in this browser yet; enter one to use the API."


def shoot(page: Any, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def points(page: Any, chart: str = "loss") -> int:
    return int(page.evaluate(f"document.querySelector('#chart-{chart}')?.dataset.points ?? '0'"))


def status_on_page(page: Any) -> str:
    return str(page.locator("h1 .badge").inner_text())


def test_key_prompt_stores_the_key_and_sends_it(
    browser: Any, web_server: Any, api_key: str, artifacts: Path
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=web_server.base)
    page = context.new_page()
    sent: list[str | None] = []
    page.on("request", lambda r: sent.append(r.headers.get("authorization")) if "/v1/" in r.url else None)
    page.goto("/")
    prompt = page.get_by_role("region", name="Your API key")
    assert prompt.is_visible()  # no key stored yet: the prompt opens by itself
    page.get_by_role("alert").filter(has_text="didn't provide an API key").wait_for()  # the API's message
    # no key was typed yet: the prompt asks for one instead of saying a key was refused
    assert page.locator("#key-message").inner_text() == NO_KEY
    assert "refused" not in prompt.inner_text()
    page.get_by_label("API key", exact=True).fill("sk-wrong-1234")
    page.get_by_role("button", name="Save key").click()
    page.get_by_text("Incorrect API key provided: ...1234").first.wait_for()
    assert page.locator("#key-message").inner_text().startswith("The API refused the key")
    assert prompt.is_visible()  # refused: asked again
    shoot(page, artifacts, "key-prompt")
    page.get_by_label("API key", exact=True).fill(api_key)
    sent.clear()
    page.get_by_role("button", name="Save key").click()
    page.get_by_text("No jobs yet").or_(page.locator("tr[data-job]").first).wait_for()
    assert prompt.is_hidden()
    assert page.evaluate("localStorage.getItem('tuneforge.apiKey')") == api_key
    assert sent and all(header == f"Bearer {api_key}" for header in sent)
    context.close()


def test_bad_upload_shows_the_line_and_field(page: Any, tmp_path: Path, artifacts: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a ->", "completion": " x"}\n{"prompt": "b ->", "completon": " y"}\n')
    page.goto("/#/files")
    page.get_by_label("JSONL training or validation file").set_input_files(str(bad))
    page.get_by_role("button", name="Upload").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    text = alert.inner_text()
    assert "line 2" in text and "completon" in text, text
    assert page.locator("tr[data-file]").count() == 0  # a refused upload is not listed
    shoot(page, artifacts, "files-bad-upload")


def test_upload_fine_tune_watch_curves_and_succeed(
    page: Any, api: httpx.Client, tmp_path: Path, artifacts: Path
) -> None:
    train = write_jsonl(tmp_path / "reviews.jsonl", classification_rows(40))
    page.goto("/#/files")
    page.get_by_label("JSONL training or validation file").set_input_files(str(train))
    page.get_by_role("button", name="Upload").click()
    page.get_by_text("Uploaded reviews.jsonl as").wait_for()
    file_row = page.locator("tr[data-file]", has_text="reviews.jsonl")
    file_id = file_row.get_attribute("data-file")
    assert file_id and file_id.startswith("file-")
    assert api.get(f"/v1/files/{file_id}").json()["filename"] == "reviews.jsonl"
    shoot(page, artifacts, "files")

    page.get_by_role("link", name="New fine-tune").first.click()
    page.get_by_label("Base model").select_option("tiny")
    page.get_by_label("Training file", exact=True).select_option(file_id)
    page.get_by_label("Epochs").fill("12")  # 60 steps: long enough to watch the curve grow between polls
    resolved = page.locator("#resolved")
    # The server's preflight answers (its first one starts the preflight process, a ceiling for busy CI)
    wait_for_preflight(page, "40 examples")
    # 40 examples on a built-in: batch 8 (the built-ins' minimum), multiplier 0.1, the epochs we typed
    assert "n_epochs=12," in resolved.inner_text() and "batch_size=8 (auto)" in resolved.inner_text()
    page.get_by_label("Suffix (optional)").fill("web")
    shoot(page, artifacts, "new-fine-tune")
    page.get_by_role("button", name="Create fine-tune").click()
    page.wait_for_url(re.compile(r"#/jobs/ftjob-"))
    job_id = page.url.rsplit("/", 1)[1]

    seen = watch_until_final(page, timeout=300)  # a ceiling: a busy CI machine trains slower
    running_counts = sorted({n for status, n, _ in seen if status == "running" and n > 0})
    assert len(running_counts) >= 2, f"the loss curve never grew while running: {seen}"
    # while it ran, the page counted steps against the 60 planned and said how long was left
    running = [run for status, _, run in seen if status == "running" and "of 60" in run["Steps"]]
    assert running, seen
    assert any(re.search(r"about \d+ min|under a minute", run["Time left"]) for run in running), running
    assert status_on_page(page) == "succeeded"
    job = api.get(f"/v1/fine_tuning/jobs/{job_id}").json()
    assert job["status"] == "succeeded"
    page.wait_for_function("document.querySelector('#job-progress').value === 1")
    assert run_facts(page) == {
        "Steps": "60 of 60 (100%)",
        "Time left": "done",
        "Trained tokens": f"{job['trained_tokens']:,}",
        "Seed": str(job["seed"]),
    }
    page.get_by_text(job["fine_tuned_model"]).first.wait_for()
    page.get_by_role("button", name="Download results CSV").wait_for()
    assert points(page) >= max(running_counts)  # the results CSV has every step
    hyper = page.get_by_role("table").filter(has_text="learning_rate_multiplier")
    assert "batch_size" in hyper.inner_text() and "0.1" in hyper.inner_text()
    assert page.locator("#ckpt-title + .table-wrap tbody tr").count() >= 1
    metrics = page.locator("#ckpt-title + .table-wrap tbody tr").first.locator("ul.metrics")
    assert "train loss" in metrics.inner_text() and re.search(
        r"total steps \d+\n", metrics.inner_text() + "\n"
    )
    assert "=" not in metrics.inner_text() and re.search(r"token accuracy \d+\.\d%", metrics.inner_text())
    check_loss_chart(page, validation=False)
    assert "Checkpoint created" in page.get_by_role("log").inner_text()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download results CSV").click()
    assert download.value.path().read_text().startswith("step,")
    shoot(page, artifacts, "job")

    page.goto("/#/jobs")
    row = page.locator(f"tr[data-job='{job_id}']")
    row.wait_for()
    assert "succeeded" in row.inner_text() and job["fine_tuned_model"] in row.inner_text()
    shoot(page, artifacts, "jobs")


def test_files_report_and_delete(page: Any, api: httpx.Client, tmp_path: Path, artifacts: Path) -> None:
    rows = [{"prompt": f"review {i}", "completion": " positive" if i % 3 else " negative"} for i in range(30)]
    file_id = upload(api, write_jsonl(tmp_path / "unprepared.jsonl", rows))
    page.goto("/#/files")
    row = page.locator(f"tr[data-file='{file_id}']")
    row.get_by_role("button", name="Prepare report for unprepared.jsonl").click()
    report = page.locator("#report")
    report.get_by_text("Classes (balance 0.50)").wait_for(timeout=60_000)
    assert report.get_by_role("img", name="20 examples (67%)").count() == 1
    assert '" ->"' in report.locator("code.suggested").first.inner_text()  # the separator prepare suggests
    assert "30 of 30 read" in report.inner_text()
    shoot(page, artifacts, "files-report")

    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete unprepared.jsonl").click()
    row.wait_for(state="detached")
    assert api.get(f"/v1/files/{file_id}").status_code == 404


def run_facts(page: Any) -> dict[str, str]:
    """The job page's Run list (Steps, Time left, Trained tokens, Seed) as name -> text."""
    pairs = (
        "[...document.querySelectorAll('dl.run dt')].map(dt => [dt.textContent, dt.nextSibling.textContent])"
    )
    return dict(page.evaluate(pairs))


LEGEND = """canvas => Chart.getChart(canvas).legend.legendItems.map(i => [i.text, i.lineDash || []])"""
COLOURS = """canvas => Chart.getChart(canvas).data.datasets.filter(d => !d.raw).map(d => d.borderColor)"""


def check_loss_chart(page: Any, *, validation: bool) -> None:
    """Log scale by default, smoothing on request, and a legend whose swatches are dashed where the
    curve is (validation) and solid where it is not."""
    chart, canvas = page.locator("#chart-loss"), page.locator("#chart-loss canvas")
    assert chart.get_attribute("data-scale") == "logarithmic"
    legend = dict((text, dash) for text, dash in canvas.evaluate(LEGEND))
    assert legend["training_loss"] == []
    assert legend.get("validation_loss") == ([6, 4] if validation else None)
    chart.get_by_label("Smoothing").select_option("0.9")
    assert chart.get_attribute("data-smoothing") == "0.9"
    assert [text for text, _ in canvas.evaluate(LEGEND)] == list(legend)  # raw copies get no entry
    raw, smoothed = canvas.evaluate("c => Chart.getChart(c).data.datasets.slice(0, 2).map(d => d.data)")
    assert len(raw) == len(smoothed) and raw != smoothed and raw[0]["x"] == smoothed[0]["x"]
    assert raw[0]["y"] == pytest.approx(smoothed[0]["y"])  # debiased: the curve starts where the run did
    chart.get_by_label("Log scale").uncheck()
    assert chart.get_attribute("data-scale") == "linear"


def watch_until_final(page: Any, *, timeout: float) -> list[tuple[str, int, dict[str, str]]]:
    """(status, loss-curve points, run facts) as the page shows them, sampled until the job ends."""
    seen: list[tuple[str, int, dict[str, str]]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = status_on_page(page) if page.locator("h1 .badge").count() else "loading"
        seen.append((status, points(page), run_facts(page)))
        if status in FINAL:
            page.wait_for_function("document.querySelector('#chart-loss')?.dataset.points > 0")
            return seen
        page.wait_for_timeout(300)
    raise AssertionError(f"the job did not finish in {timeout} s: {seen[-5:]}")


def test_legacy_fine_tune_with_classification_metrics(
    page: Any, api: httpx.Client, tmp_path: Path, artifacts: Path
) -> None:
    train = upload(api, write_jsonl(tmp_path / "cls-train.jsonl", classification_rows(32)))
    valid = upload(api, write_jsonl(tmp_path / "cls-valid.jsonl", classification_rows(8)))
    page.goto("/#/new")
    page.get_by_label("API", exact=True).select_option("legacy")
    page.get_by_label("Base model").select_option("tiny")
    page.get_by_label("Training file", exact=True).select_option(train)
    page.get_by_label("Validation file (optional)").select_option(valid)
    page.get_by_label("Epochs").fill("1")
    page.get_by_label("Compute classification metrics").check()
    page.get_by_label("Positive class").fill(" positive")
    streams: list[str] = []
    page.on("request", lambda r: streams.append(r.url) if "stream=true" in r.url else None)
    page.get_by_role("button", name="Create fine-tune").click()
    alert = page.get_by_role("alert")
    page.wait_for_url(re.compile(r"#/jobs/ft-"))
    assert alert.count() == 0
    fine_tune_id = page.url.rsplit("/", 1)[1]
    log = page.get_by_role("log")
    log.get_by_text("Fine-tuning job started").wait_for(timeout=60_000)  # streamed as it happens
    page.locator("h1 .badge", has_text="succeeded").wait_for(timeout=120_000)
    log.get_by_text("The job has successfully completed").wait_for()
    assert streams == [f"{page.url.split('#')[0]}v1/fine-tunes/{fine_tune_id}/events?stream=true"]
    page.wait_for_function("document.querySelector('#chart-classification')?.dataset.points > 0")
    label = page.locator("#chart-classification canvas").get_attribute("aria-label") or ""
    assert "classification/accuracy" in label and "classification/auroc" in label, label
    colours = page.locator("#chart-classification canvas").evaluate(COLOURS)
    assert len(colours) >= 5 and len(set(colours)) == len(colours)  # accuracy and F1 never look alike
    # the legacy object has no seed or trained_tokens: the page reads them from the events
    events = api.get(f"/v1/fine-tunes/{fine_tune_id}/events").json()["data"]
    said = " ".join(e["message"] for e in events)
    seed = re.search(r"\bseed=(\d+)", said)
    tokens = re.search(r"Trained ([\d,]+) tokens", said)
    assert seed and tokens, said
    facts = run_facts(page)
    assert (facts["Seed"], facts["Trained tokens"]) == (seed.group(1), tokens.group(1))
    check_loss_chart(page, validation=True)
    assert points(page, "loss") > 0 and "validation_loss" in (
        page.locator("#chart-loss canvas").get_attribute("aria-label") or ""
    )
    assert api.get(f"/v1/fine-tunes/{fine_tune_id}").json()["hyperparams"][
        "classification_positive_class"
    ] == (" positive")
    shoot(page, artifacts, "job-legacy-classification")
    page.goto("/#/jobs")
    assert "legacy" in page.locator(f"tr[data-job='{fine_tune_id}']").inner_text()


def test_form_shows_the_apis_message_for_a_bad_request(page: Any, api: httpx.Client, tmp_path: Path) -> None:
    file_id = upload(api, write_jsonl(tmp_path / "few.jsonl", classification_rows(8)))
    before = len(api.get("/v1/fine-tunes").json()["data"])
    page.goto("/#/new")
    page.get_by_label("API", exact=True).select_option("legacy")
    page.get_by_label("Training file", exact=True).select_option(file_id)
    page.get_by_label("Compute classification metrics").check()  # without a validation file
    page.get_by_role("button", name="Create fine-tune").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "needs a validation_file" in alert.inner_text()
    assert "#/new" in page.url and len(api.get("/v1/fine-tunes").json()["data"]) == before


def test_models_the_server_cannot_load_are_listed_disabled_with_the_reason(
    page: Any, api: httpx.Client
) -> None:
    listed = {m["id"]: m for m in api.get("/v1/models").json()["data"]}
    assert listed["ada"]["available"] is False  # the tests' server has HF_HUB_OFFLINE=1 and no cache
    for path, select in (("/#/new", "select[name=model]"), ("/#/playground", "#pg-model-a")):
        page.goto(path)
        ada = page.locator(f"{select} option[value='ada']")
        ada.wait_for(state="attached")
        assert ada.is_disabled() and ada.inner_text() == "ada (unavailable here)"
        assert ada.get_attribute("title") == listed["ada"]["unavailable_reason"]
        assert page.locator(f"{select} option[value='tiny']").is_enabled()


def wait_for_preflight(page: Any, shown: str) -> None:
    """Until the form shows the server's preflight answer. The first one in a session starts the server's
    preflight process and times a warm-up: a generous ceiling, for a busy machine."""
    page.wait_for_function(
        f"document.querySelector('#resolved').value.includes({json.dumps(shown)})", timeout=300_000
    )


def test_form_shows_what_the_servers_preflight_resolves(page: Any, api: httpx.Client, tmp_path: Path) -> None:
    """The form keeps no copy of the "auto" rules: it shows the server's dry run of the same body (values,
    reasons, steps, the estimate), as the API answers it, and queues nothing."""
    rows = [{"prompt": f"note {i} ->", "completion": f" answer {i} for note {i}"} for i in range(40)]
    file_id = upload(api, write_jsonl(tmp_path / "free-text.jsonl", rows))  # generation, not labels
    jobs_before = len(api.get("/v1/fine_tuning/jobs").json()["data"])
    page.goto("/#/new")
    page.get_by_label("Base model").select_option("tiny")
    page.get_by_label("Training file", exact=True).select_option(file_id)
    wait_for_preflight(page, "40 examples")
    body = {"model": "tiny", "training_file": file_id, "method": {"type": "supervised"}}
    answer = api.post("/v1/fine_tuning/jobs/preflight", json=body, timeout=300).json()
    hp, shown = answer["hyperparameters"], page.locator("#resolved").inner_text()
    assert f"n_epochs={hp['n_epochs']} (auto), batch_size={hp['batch_size']} (auto)" in shown
    assert f"learning_rate_multiplier={hp['learning_rate_multiplier']} (auto)" in shown
    assert f"for 40 examples: {answer['total_steps']} steps, {answer['trained_tokens']:,} tokens" in shown
    assert " on cpu, peak memory " in shown
    reasons = page.locator("#resolved-reasons li").all_inner_texts()
    assert reasons and f"n_epochs = {hp['reasons']['n_epochs']}" in reasons
    assert len(api.get("/v1/fine_tuning/jobs").json()["data"]) == jobs_before


def test_pause_and_resume_a_job_from_its_page(page: Any, api: httpx.Client, tmp_path: Path) -> None:
    file_id = upload(api, write_jsonl(tmp_path / "long.jsonl", classification_rows(40)))
    job = api.post(
        "/v1/fine_tuning/jobs",
        json={"model": "tiny", "training_file": file_id, "hyperparameters": {"n_epochs": 50}},
    ).json()
    page.goto(f"/#/jobs/{job['id']}")
    page.get_by_role("button", name="Pause").click()
    page.locator("h1 .badge", has_text="paused").wait_for()
    assert api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["status"] == "paused"
    assert page.get_by_role("button", name="Pause").is_hidden()

    page.get_by_role("button", name="Resume").click()
    page.get_by_role("button", name="Resume").wait_for(state="hidden")
    assert api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["status"] in ("queued", "running")
    api.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")


def test_cancel_a_running_job(page: Any, api: httpx.Client, tmp_path: Path) -> None:
    file_id = upload(api, write_jsonl(tmp_path / "long.jsonl", classification_rows(40)))
    job = api.post(
        "/v1/fine_tuning/jobs",
        json={"model": "tiny", "training_file": file_id, "hyperparameters": {"n_epochs": 50}},
    ).json()
    page.goto(f"/#/jobs/{job['id']}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel job").click()
    page.locator("h1 .badge", has_text="cancelled").wait_for()
    assert api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["status"] == "cancelled"
    assert page.get_by_role("button", name="Cancel job").is_hidden()


def test_playground_shows_top5_bars_base_and_fine_tuned(
    page: Any, api: httpx.Client, tmp_path: Path, artifacts: Path
) -> None:
    if api.post("/v1/completions", json={"model": "tiny", "prompt": "x", "max_tokens": 1}).status_code == 404:
        pytest.skip("/v1/completions has not landed yet")
    tuned = succeeded_model(api, tmp_path)
    page.goto("/#/playground")
    page.get_by_label("Model", exact=True).select_option(tuned)
    page.get_by_label("Side by side with (optional)").select_option("tiny")
    page.get_by_label("Prompt").fill("review 7 ->")
    page.get_by_label("Max tokens").fill("2")
    page.get_by_label("Logprobs (top-N)").fill("5")
    page.get_by_role("button", name="Complete").click()
    panes = page.locator("section.completion")
    panes.nth(1).locator("ol.tokens").wait_for(timeout=60_000)
    assert panes.count() == 2
    for i, model in enumerate([tuned, "tiny"]):
        pane = panes.nth(i)
        assert pane.get_by_role("alert").count() == 0, pane.inner_text()
        # temperature 0: the API answers the same request with the same tokens and alternatives
        body = {"model": model, "prompt": "review 7 ->", "max_tokens": 2, "temperature": 0, "logprobs": 5}
        expected = api.post("/v1/completions", json=body).json()["choices"][0]
        assert pane.locator("mark").text_content() == expected["text"]
        tokens = pane.locator("ol.tokens > li")
        assert tokens.count() == len(expected["logprobs"]["tokens"]) == 2
        for t, top in enumerate(expected["logprobs"]["top_logprobs"]):
            bars = tokens.nth(t).get_by_role("meter")
            assert bars.count() == min(5, len(top))  # top-5 (fewer when token strings coincide)
            values = [float(bars.nth(j).get_attribute("aria-valuenow") or "nan") for j in range(bars.count())]
            assert values == sorted(values, reverse=True) and 0 < sum(values) <= 100.5
    shoot(page, artifacts, "playground")


def test_playground_reads_openai_logprobs_and_shows_api_errors(page: Any, artifacts: Path) -> None:
    """The playground against OpenAI's wire shape, answered by the browser itself: it holds whether or
    not this server's /v1/completions has landed, and pins what the page sends."""
    sent: list[dict[str, Any]] = []

    def answer(route: Any) -> None:
        body = route.request.post_data_json
        sent.append(body)
        if body["model"] == "broken":
            route.fulfill(
                status=400,
                json={
                    "error": {
                        "message": "max_tokens is too large",
                        "type": "invalid_request_error",
                        "param": "max_tokens",
                        "code": None,
                    }
                },
            )
            return
        top = [{" positive": -0.1, " negative": -2.5, " neutral": -4.0, "!": -5.0, " ok": -6.0, " x": -7.0}]
        logprobs = {
            "tokens": [" positive"],
            "token_logprobs": [-0.1],
            "top_logprobs": top,
            "text_offset": [11],
        }
        choice = {"text": " positive", "index": 0, "logprobs": logprobs, "finish_reason": "length"}
        route.fulfill(
            json={
                "id": "cmpl-1",
                "object": "text_completion",
                "created": 1,
                "model": body["model"],
                "choices": [choice],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
            }
        )

    page.route("**/v1/completions", answer)
    page.route(
        "**/v1/models",
        lambda route: route.fulfill(
            json={
                "object": "list",
                "data": [
                    {"id": "tiny", "object": "model", "created": 1, "owned_by": "tuneforge"},
                    {"id": "ft:tiny:default::abc", "object": "model", "created": 2, "owned_by": "default"},
                    {"id": "broken", "object": "model", "created": 0, "owned_by": "tuneforge"},
                ],
            }
        ),
    )
    page.goto("/#/playground")
    page.get_by_label("Model", exact=True).select_option("ft:tiny:default::abc")
    page.get_by_label("Side by side with (optional)").select_option("broken")
    page.get_by_label("Prompt").fill("review 7 ->")
    page.get_by_label("Max tokens").fill("1")
    page.get_by_label("Stop", exact=True).fill("\\n,END")
    page.get_by_role("button", name="Complete").click()
    panes = page.locator("section.completion")
    panes.first.locator("ol.tokens").wait_for()
    assert panes.nth(1).get_by_role("alert").inner_text() == "max_tokens is too large"
    bars = panes.first.get_by_role("meter")
    assert bars.count() == 5  # top-5 of the six alternatives the server sent
    assert [bars.nth(i).get_attribute("aria-valuenow") for i in range(2)] == ["90.5", "8.2"]
    assert panes.first.locator("li.chosen").count() == 1
    first = sent[0]
    assert first["max_tokens"] == 1 and first["logprobs"] == 5 and first["stop"] == ["\n", "END"]
    assert first["temperature"] == 0 and first["prompt"] == "review 7 ->"


def test_playground_chats_with_a_chat_model_in_a_bounded_panel(
    page: Any, api: httpx.Client, tmp_path: Path, artifacts: Path
) -> None:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"review {i}"},
                {"role": "assistant", "content": "positive" if i % 2 else "negative"},
            ]
        }
        for i in range(16)
    ]
    job = run_job(api, tmp_path, rows=rows, n_epochs=1)
    page.goto(f"/#/jobs/{job['id']}")
    page.get_by_role("link", name="Try in playground").click()
    mode = page.get_by_label("Mode", exact=True)
    page.wait_for_function("document.querySelector('#pg-mode').value === 'chat'")  # from the job's events
    page.get_by_label("System message (optional)").fill("One word.")
    page.get_by_label("User message").fill("review 3")
    page.get_by_label("Max tokens").fill("30")
    page.get_by_role("button", name="Send").click()
    panes = page.locator("section.completion")
    panes.nth(1).locator("ol.tokens").wait_for(timeout=60_000)
    shoot(page, artifacts, "playground-chat")
    messages = [{"role": "system", "content": "One word."}, {"role": "user", "content": "review 3"}]
    for i, model in enumerate([job["fine_tuned_model"], job["model"]]):
        pane = panes.nth(i)
        assert pane.get_by_role("alert").count() == 0, pane.inner_text()
        body = {"model": model, "messages": messages, "max_tokens": 30, "temperature": 0}
        expected = api.post("/v1/chat/completions", json={**body, "logprobs": True, "top_logprobs": 5})
        choice = expected.json()["choices"][0]
        assert pane.locator("mark").text_content() == choice["message"]["content"]
        assert pane.locator("ol.tokens > li").count() == len(choice["logprobs"]["content"])
        box = pane.bounding_box()
        assert box and box["height"] < 800, f"the {model} pane is {box} for 30 tokens"

    page.goto("/#/playground")  # without the job's link, choosing the model picks chat mode too
    page.get_by_label("Model", exact=True).select_option("tiny")
    page.wait_for_function("document.querySelector('#pg-mode').value === 'completion'")
    page.get_by_label("Model", exact=True).select_option(job["fine_tuned_model"])
    page.wait_for_function("document.querySelector('#pg-mode').value === 'chat'")
    assert mode.input_value() == "chat"


def test_compare_overlays_two_runs(page: Any, api: httpx.Client, tmp_path: Path, artifacts: Path) -> None:
    finished = [
        j["id"] for j in api.get("/v1/fine_tuning/jobs?limit=100").json()["data"] if j["result_files"]
    ]
    finished += [ft["id"] for ft in api.get("/v1/fine-tunes").json()["data"] if ft["result_files"]]
    while len(finished) < 2:  # when this test runs alone
        finished.append(run_job(api, tmp_path)["id"])
    runs = finished[:2]
    page.goto("/#/jobs")
    for job_id in runs:
        page.get_by_label(f"Select {job_id} to compare").check()
    page.get_by_role("button", name="Compare curves").click()
    page.wait_for_function("document.querySelector('#chart-loss')?.dataset.points > 0")
    short = [job_id[: job_id.index("-") + 7] for job_id in runs]
    overlaid = "ids => ids.every(s => document.querySelector('#chart-loss canvas').ariaLabel.includes(s))"
    page.wait_for_function(overlaid, arg=short)  # one loss curve per run, named by its job
    colours = page.locator("#chart-loss canvas").evaluate(COLOURS)
    legend = [text for text, _ in page.locator("#chart-loss canvas").evaluate(LEGEND)]
    by_run = {s: {c for c, text in zip(colours, legend, strict=True) if text.startswith(s)} for s in short}
    assert all(len(c) == 1 for c in by_run.values()) and len(set().union(*by_run.values())) == 2, by_run
    shoot(page, artifacts, "compare")


UNLABELLED = """() => {
  const problems = [];
  for (const el of document.querySelectorAll("input, select, textarea")) {
    const named = el.labels?.length || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby");
    if (!named) problems.push(`${el.tagName.toLowerCase()} ${el.id || el.name} has no label`);
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    const named = el.textContent.trim() || el.getAttribute("aria-label");
    if (!named) problems.push(`${el.outerHTML} has no name`);
  }
  for (const el of document.querySelectorAll("canvas")) {
    if (!el.getAttribute("aria-label")) problems.push("a chart has no text summary");
  }
  const h1 = document.querySelectorAll("main h1").length;
  if (h1 !== 1) problems.push(`${h1} h1 headings`);
  return problems;
}"""


def test_every_page_fits_a_phone_and_labels_its_controls(
    browser: Any, web_server: Any, api: httpx.Client, api_key: str, tmp_path: Path, artifacts: Path
) -> None:
    succeeded_model(api, tmp_path)
    context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=web_server.base)
    context.add_init_script(f"localStorage.setItem('tuneforge.apiKey', '{api_key}')")
    page = context.new_page()
    job_id = api.get("/v1/fine_tuning/jobs?limit=100").json()["data"][-1]["id"]
    pages = {
        "jobs": "/#/jobs",
        "job": f"/#/jobs/{job_id}",
        "compare": f"/#/compare?ids={job_id}",
        "files": "/#/files",
        "new": "/#/new",
        "playground": "/#/playground",
        "batches": "/#/batches",
    }
    for name, path in pages.items():
        page.goto(path)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(300)
        width = page.evaluate("document.documentElement.scrollWidth")
        # list cards must fit too (a wrapper that scrolls sideways would hide the overflow from scrollWidth)
        cut = page.evaluate(
            "[...document.querySelectorAll('table.jobs td, table.files td, table.batches td')]"
            ".filter(td => td.getBoundingClientRect().right > innerWidth).length"
        )
        shoot(page, artifacts, f"phone-{name}")
        assert width <= 390, f"{name} is {width}px wide at a 390px viewport"
        assert cut == 0, f"{cut} cells of {name} run past the screen's edge"
        assert page.evaluate(UNLABELLED) == [], name
    context.close()


def test_batch_page_shows_counts_files_and_cancels(
    page: Any, api: httpx.Client, tmp_path: Path, artifacts: Path
) -> None:
    small, big = (start_batch(api, tmp_path / f"b{n}.jsonl", n) for n in (20, 5000))
    page.goto("/#/batches")
    done = page.locator(f"tr[data-batch='{small}']")
    done.locator(".badge", has_text="completed").wait_for(timeout=60_000)
    assert "20 completed, 0 failed of 20" in done.inner_text()
    assert done.get_by_role("button", name="output").is_visible()
    running = page.locator(f"tr[data-batch='{big}']")
    running.get_by_role("button", name=f"Cancel {big}").click()
    running.locator(".badge", has_text=re.compile("^cancell(ing|ed)$")).wait_for()
    shoot(page, artifacts, "batches")
    deadline = time.monotonic() + 60
    while api.get(f"/v1/batches/{big}").json()["status"] != "cancelled":
        assert time.monotonic() < deadline
        time.sleep(0.5)


def start_batch(api: httpx.Client, path: Path, n: int) -> str:
    body = {"model": "tiny", "prompt": "review ->", "max_tokens": 1, "logprobs": 5}
    lines = [
        {"custom_id": f"r{i}", "method": "POST", "url": "/v1/completions", "body": body} for i in range(n)
    ]
    write_jsonl(path, lines)  # type: ignore[arg-type]
    with path.open("rb") as handle:
        file = api.post("/v1/files", files={"file": (path.name, handle)}, data={"purpose": "batch"})
    file.raise_for_status()
    created = api.post(
        "/v1/batches",
        json={"input_file_id": file.json()["id"], "endpoint": "/v1/completions", "completion_window": "24h"},
    )
    created.raise_for_status()
    return str(created.json()["id"])


def upload(api: httpx.Client, path: Path) -> str:
    with path.open("rb") as handle:
        response = api.post("/v1/files", files={"file": (path.name, handle)}, data={"purpose": "fine-tune"})
    response.raise_for_status()
    return str(response.json()["id"])


def succeeded_model(api: httpx.Client, tmp_path: Path) -> str:
    """A fine-tuned model from an earlier test, or a fresh one when this test runs alone."""
    for job in api.get("/v1/fine_tuning/jobs?limit=100").json()["data"]:
        if job["status"] == "succeeded":
            return str(job["fine_tuned_model"])
    return str(run_job(api, tmp_path)["fine_tuned_model"])


def run_job(
    api: httpx.Client, tmp_path: Path, *, rows: list[dict[str, object]] | None = None, n_epochs: int = 2
) -> dict[str, Any]:
    """A short fine-tuning job on `tiny`, through the API, waited for until it succeeds."""
    file_id = upload(api, write_jsonl(tmp_path / "train.jsonl", rows or classification_rows(40)))
    job = api.post(
        "/v1/fine_tuning/jobs",
        json={"model": "tiny", "training_file": file_id, "hyperparameters": {"n_epochs": n_epochs}},
    ).json()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()
        if job["status"] in FINAL:
            break
        time.sleep(0.5)
    assert job["status"] == "succeeded", job
    return dict(job)
