from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.cli.main import main
from tuneforge.settings import Settings


def sentiment_file(path: Path, n: int = 200) -> Path:
    rows = [
        {
            "prompt": f"Review {i}: " + ("fine", "bad", "good")[i % 3],
            "completion": "negative" if i % 4 else "positive",
        }
        for i in range(n)
    ]
    rows.append(rows[0])  # a duplicate
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_quiet_prepare_writes_split_files_report_and_next_command(
    tmp_path: Path, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    data = sentiment_file(tmp_path / "reviews.jsonl")
    report = tmp_path / "report.json"
    args = ["-f", str(data), "-q", "--data-dir", str(settings.data_dir), "--json", str(report)]
    assert main(["prepare", *args]) == 0
    out = capsys.readouterr().out
    train, valid = tmp_path / "reviews_prepared_train.jsonl", tmp_path / "reviews_prepared_valid.jsonl"
    assert len(train.read_text().splitlines()) == 160 and len(valid.read_text().splitlines()) == 40
    assert (
        f'> tuneforge api fine_tunes.create -t "{train}" -v "{valid}" --compute_classification_metrics '
        '--classification_positive_class " positive"'
    ) in out
    assert "- [Recommended] Remove 1 duplicate rows [Y/n]: Y" in out
    saved = json.loads(report.read_text())
    assert saved["report"]["classification"]["classes"] == {" negative": 150, " positive": 50}
    assert saved["result"]["counts"] == {"train": 160, "valid": 40}


def test_legacy_spelling_and_interactive_answers(
    tmp_path: Path, settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = sentiment_file(tmp_path / "reviews.jsonl")
    answers = iter(["n", "", "", "n", ""])  # keep duplicates, separator, space, no split, proceed
    monkeypatch.setattr("builtins.input", lambda: next(answers))
    args = ["tools", "fine_tunes.prepare_data", "-f", str(data), "--data-dir", str(settings.data_dir)]
    assert main(args) == 0
    written = (tmp_path / "reviews_prepared.jsonl").read_text().splitlines()
    assert len(written) == 201 and json.loads(written[0]) == {
        "prompt": "Review 0: fine ->",
        "completion": " positive",
    }
    assert "-v" not in capsys.readouterr().out.split("> tuneforge api")[1]


def test_unusable_input_exits_2_naming_line_and_field(
    tmp_path: Path, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "bad.jsonl"
    text = '{"prompt": "a", "completion": "b"}\n{"prompt": "a", "completion": ["b"]}\n'
    data.write_text(text)
    assert main(["prepare", "-f", str(data), "-q", "--data-dir", str(settings.data_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"Error: {data}, line 2, field 'completion': expected a string, found an array")
    assert data.read_text() == text and sorted(tmp_path.iterdir()) == [data, settings.data_dir]


def test_missing_file_and_wrong_type_exit_2(
    tmp_path: Path, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["prepare", "-f", str(tmp_path / "none.jsonl"), "-q", "--data-dir", str(settings.data_dir)]) == 2
    )
    (tmp_path / "data.pdf").write_bytes(b"%PDF")
    assert (
        main(["prepare", "-f", str(tmp_path / "data.pdf"), "-q", "--data-dir", str(settings.data_dir)]) == 2
    )
    err = capsys.readouterr().err
    assert "none.jsonl: no such file" in err and "unsupported file type" in err


def test_closed_stdin_takes_the_defaults(
    tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = sentiment_file(tmp_path / "reviews.jsonl", n=20)

    def closed() -> str:
        raise EOFError

    monkeypatch.setattr("builtins.input", closed)
    assert main(["prepare", "-f", str(data), "--data-dir", str(settings.data_dir)]) == 0
    assert (tmp_path / "reviews_prepared_train.jsonl").exists()
    assert "Recommended" in capsys.readouterr().out


def test_semicolon_csv_report_names_the_delimiter_and_counts_agree_with_the_json(
    tmp_path: Path, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """A European spreadsheet export: `;` between values, a capitalised header with spaces, a blank row, a
    row of only delimiters, an empty completion and a duplicate."""
    lines = [" Prompt ; Completion "] + [f'"Review {i}; {i % 7} stars";{i % 2}' for i in range(300)]
    lines += ["", ";", '"Review x";', '"Review 1; 1 stars";1']
    data = tmp_path / "reviews.csv"
    data.write_text("\n".join(lines) + "\n")
    report = tmp_path / "report.json"
    args = ["-f", str(data), "-q", "--data-dir", str(settings.data_dir), "--json", str(report)]
    assert main(["prepare", *args]) == 0
    out = capsys.readouterr().out
    saved = json.loads(report.read_text())["report"]
    assert (saved["n_read"], saved["n_examples"]) == (302, 301)
    assert "Your file contains 302 rows (301 usable; 1 with an empty completion) of prompt-completion" in out
    assert "formatted as CSV with values separated by semicolons" in out
    assert saved["checks"]["dialect"] == {"delimiter": ";", "quotechar": '"'}
    assert saved["checks"]["duplicates"]["count"] == 1 and "Remove 1 duplicate rows" in out
