"""report.html's page assembly without a browser: rows of incomplete configurations and too-small folds are
flagged, model text cannot close the data script, and the page references nothing outside itself."""

from __future__ import annotations

import json
import re

import pandas as pd

from tts.analysis.html_report import _table, render


def test_incomplete_and_small_fold_rows_are_flagged() -> None:
    df = pd.DataFrame(
        {
            "policy": ["p", "p", "p"],
            "bin": ["1", "2", "all"],
            "hyperparams": ["agg=min (incomplete)", "agg=min", "agg=last"],
            "accuracy": [0.5, 0.25, 1.0],
            "fold_ok": [True, False, True],
        }
    )
    t = _table(
        "generation", "t", df, {"policy": "policy", "bin": "bin", "hyperparams": "h", "accuracy": "acc"}
    )
    assert [r["flags"] for r in t["rows"]] == [["incomplete"], ["smallfold"], []]
    assert [t["columns"][i]["key"] for i in t["filters"]] == ["policy", "bin"]
    assert t["rows"][1]["cells"] == ["p", "2", "agg=min", "0.250"]  # as report.md prints it


def test_model_text_cannot_break_out_of_the_page() -> None:
    evil = "</script><script>alert(1)</script>"
    data = {
        "title": "<b>x</b>",
        "subtitle": "s",
        "notes": [evil],
        "tables": [],
        "charts": [],
        "traces": [{"trace": {"extra": {"tree": {"text": [evil]}}}}],
        "trace_note": "",
    }
    page = render(data)
    assert page.count("<script") == 2  # the data and the inlined viewer, nothing injected
    blob = page.split('<script type="application/json" id="report-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(blob)["traces"][0]["trace"]["extra"]["tree"]["text"] == [evil]
    assert "<title>&lt;b&gt;x&lt;/b&gt;</title>" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # no external resource


def test_nan_and_infinite_values_reach_the_page_as_null() -> None:
    """A plugin's `extra` or an empty bin's CI can hold NaN / inf, which JSON cannot: the page writes null
    (the plugin-strategy integration test's page failed on one)."""
    data = {
        "title": "t",
        "subtitle": "s",
        "notes": [],
        "tables": [],
        "charts": [{"points": [{"y": float("nan"), "hi": float("inf")}]}],
        "traces": [{"trace": {"extra": {"weights": (0.5, float("-inf"))}}}],
        "trace_note": "",
    }
    blob = (
        render(data).split('<script type="application/json" id="report-data">', 1)[1].split("</script>", 1)[0]
    )
    out = json.loads(blob)
    assert out["charts"][0]["points"][0] == {"y": None, "hi": None}
    assert out["traces"][0]["trace"]["extra"]["weights"] == [0.5, None]
