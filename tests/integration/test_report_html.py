"""report.html in headless Chromium (Debian's `chromium`, driven by Playwright's Python package: Playwright's own
browser downloads cannot run here): the page loads with no console error and no network request, sorting a
column reorders its rows, filtering to one bin leaves only that bin's rows, the trace viewer draws a stored
beam-search tree with every node and the chosen leaf marked; a screenshot is kept as an artifact.

The folder comes from a small sweep on the fake engines through the real Ray runtime and `tts analyze`; set
TTS_REPORT_HTML_RESULTS=<analyzed results folder> (e.g. a real `tts sweep +sweep=smoke dataset.per_level=3`)
to run the same checks on it too. Screenshots go to $TTS_TEST_ARTIFACTS (default: pytest's tmp folder).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tts.cli import main
from tts.grid import expand
from tts.runtime.driver import run_sweep
from tts.testing.fake_actors import FakeEngineBuilder

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture(scope="module")
def fake_folder(ray_local: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report_html")
    grid = expand(
        [
            f"results_dir={root}",
            "sweep.name=page",
            "strategy=best_of_n,majority_vote,beam_search",
            "n=4,8",
            "prm=rule_arithmetic",
            "dataset.per_level=3",
        ]
    )
    summary = run_sweep(grid, builder=FakeEngineBuilder(), live=False)
    assert summary.failed == 0
    assert main(["analyze", str(root / "page"), "--no-plots", "--set", "replicates=20"]) == 0
    return root / "page"


def _folders() -> list[str]:
    return ["fake", *(["real"] if os.environ.get("TTS_REPORT_HTML_RESULTS") else [])]


@pytest.fixture(params=_folders())
def folder(request: pytest.FixtureRequest) -> Path:
    if request.param == "real":
        return Path(os.environ["TTS_REPORT_HTML_RESULTS"])
    return request.getfixturevalue("fake_folder")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(
                f"{CHROMIUM} missing: .ci/run installs Debian's chromium (apt-get install -y chromium)"
            )
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def _md_rows(report: str, heading: str) -> list[list[str]]:
    """The body rows of report.md's table under `heading` (an independent source for the page's rows)."""
    block = report.split(heading, 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.startswith("|")][2:]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]


def _beam_trace(folder: Path) -> tuple[str, str, dict]:
    """A stored beam-search trace read straight from the cell files: (the viewer's configuration label's start,
    problem id, trace)."""
    for f in sorted((folder / "cells").glob("*.parquet")):
        t = pd.read_parquet(f)
        if "trace" in t.columns and (t["strategy"] == "beam_search").all() and t["trace"].notna().any():
            row = t[t["trace"].notna()].sort_values("problem_id").iloc[0]
            label = f"{row['policy']} · {row['prm']} · beam_search N={row['n']} · "
            return label, str(row["problem_id"]), json.loads(row["trace"])
    raise AssertionError(f"{folder}: no beam-search cell with a stored trace")


def test_report_html_loads_sorts_filters_and_shows_a_search_tree(browser: Any, folder: Path) -> None:
    path = folder / "report.html"
    assert path.exists() and path.stat().st_size < 5_000_000
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.resolve().as_uri())
    page.wait_for_selector("#table-generation tbody tr")

    # the generation-matched table: as many rows as report.md's
    report = (folder / "report.md").read_text()
    md = _md_rows(report, "## Generation-matched")
    rows = page.locator("#table-generation tbody tr")
    assert rows.count() == len(md) > 1

    # sorting: the FLOPs column ascending, then descending
    headers = page.locator("#table-generation th").all_inner_texts()
    col = headers.index("FLOPs used")

    def column() -> list[float]:
        return [float(r.locator("td").nth(col).inner_text()) for r in rows.all()]

    before = column()
    page.locator("#table-generation th", has_text="FLOPs used").click()
    assert column() == sorted(before)
    page.locator("#table-generation th", has_text="FLOPs used").click()
    assert column() == sorted(before, reverse=True)

    # filtering to one bin: only that bin's rows, as many as report.md has
    bin_col = headers.index("bin")
    one = next(r[bin_col] for r in md if r[bin_col] != "all")
    page.locator('#table-generation select[data-filter="bin"]').select_option(one)
    bins = [r.locator("td").nth(bin_col).inner_text() for r in rows.all()]
    assert bins == [one] * sum(r[bin_col] == one for r in md)

    # a chart point's hover names its configuration
    page.click("nav button[data-tab=tab-charts]")
    page.locator('[data-chart="configs"] circle.pt').last.hover()  # drawn last: on top of any overlap
    tip = page.locator("#tooltip").inner_text()
    assert "N=" in tip and "accuracy" in tip and "generations" in tip

    # the trace viewer: a beam-search problem's stored tree, every node drawn, the chosen leaf marked
    label, problem, trace = _beam_trace(folder)
    tree = trace["extra"]["tree"]
    page.click("nav button[data-tab=tab-traces]")
    configs = page.locator("#trace-config option").all_inner_texts()
    page.locator("#trace-config").select_option(next(c for c in configs if c.startswith(label)))
    value = page.locator("#trace-problem option", has_text=problem).first.get_attribute("value")
    page.locator("#trace-problem").select_option(value)
    shown = page.locator("#trace-view")
    assert shown.locator("#trace-tree .node").count() == len(tree["parent"]) > 0
    chosen = shown.locator(".node.chosen")
    assert chosen.count() == 1
    assert int(chosen.get_attribute("data-node")) == tree["candidate_nodes"][trace["extra"]["chosen"]]
    assert shown.locator(".node.dropped").count() == tree["status"].count("dropped")
    chosen.click()
    assert (
        tree["text"][tree["candidate_nodes"][trace["extra"]["chosen"]]].strip()[:20]
        in page.locator("#node-detail").inner_text()
    )

    out = Path(os.environ.get("TTS_TEST_ARTIFACTS", folder.parent)) / f"report_html_{folder.name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=False)
    assert out.stat().st_size > 10_000
    page.close()
    assert errors == []
    assert requests == [path.resolve().as_uri()]  # the page itself, nothing else
