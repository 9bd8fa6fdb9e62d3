"""Results CSV parsing and the curves PNG."""

from __future__ import annotations

import io

from PIL import Image

from tuneforge.tracking.curves import HEIGHT_PX, WIDTH_PX, classification_columns, render_curves
from tuneforge.tracking.results import parse_results

CSV = (
    "step,elapsed_tokens,training_loss,validation_loss,classification/accuracy,classification/f1.0\n"
    "1,10,2.0,,,\n"
    "2,20,1.0,1.5,0.5,0.4\n"
    "3,30,nan,,,\n"
)


def test_parse_results_keeps_measured_cells_only() -> None:
    rows = parse_results(CSV)
    assert rows[0] == {"step": 1.0, "elapsed_tokens": 10.0, "training_loss": 2.0}
    assert rows[1]["validation_loss"] == 1.5 and rows[1]["classification/f1.0"] == 0.4
    assert rows[2] == {"step": 3.0, "elapsed_tokens": 30.0}  # a NaN is not a point to draw
    assert classification_columns(rows) == ["classification/accuracy", "classification/f1.0"]


def test_curves_are_a_fixed_size_png_with_or_without_metrics() -> None:
    for rows in (parse_results(CSV), [{"step": 1.0}], []):
        image = Image.open(io.BytesIO(render_curves(rows, "ftjob-abc")))
        assert image.format == "PNG" and image.size == (WIDTH_PX, HEIGHT_PX)
        assert len(set(image.convert("L").getdata())) > 2  # something was drawn
