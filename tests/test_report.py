"""`clustersim report`: one self-contained HTML page, checked in headless Chromium."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

import sim.runner
from analysis.report import group_runs
from sim.cli import main
from sim.store import Store
from sim.sweep import load_grid, run_sweep
from tests.toy import TOY_CSV

CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
GRIDS = {
    # group 1: three policies on one node
    "a.yaml": "base: {trace: toy.csv, cluster: n1g8, slot_s: 240, preset: elasticflow-artifact}\n"
              "vary:\n  policy: [fifo, ef-accessctrl, edf]\n",
    # group 2: FIFO twice (backfill off/on) and a Gandiva run that crashes
    "b.yaml": "base: {trace: toy.csv, cluster: n4g8, slot_s: 240, preset: elasticflow-artifact}\n"
              "vary:\n  policy,params: [[fifo, {backfill: true}], [fifo, {backfill: false}],"
              " [gandiva, {}]]\n",
}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("report")
    (d / "toy.csv").write_text(TOY_CSV)
    real = sim.runner.run_prepared

    def flaky(p, **kw):
        if p.scenario.policy == "gandiva":
            raise ValueError("simulated crash <in gandiva>")
        return real(p, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(sim.runner, "run_prepared", flaky)
    try:
        with Store(d / "s.sqlite") as st:
            for name, text in GRIDS.items():
                (d / name).write_text(text)
                run_sweep(load_grid(d / name).runs, st, workers=1)
    finally:
        mp.undo()
    return d / "s.sqlite"


@pytest.fixture(scope="module")
def report(store_path: Path) -> Path:
    out = store_path.parent / "out" / "report.html"
    assert main(["report", "--store", str(store_path), "--out", str(out)]) == 0
    return out


class _Page(HTMLParser):
    """Sections (h2 title, run rows as cell texts), images and every URL-bearing attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[dict] = []
        self.urls: list[str] = []
        self.tags: list[str] = []
        self.body: dict[str, str | None] = {}
        self._text: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "action", "data")]
        if tag == "body":
            self.body = a
        elif tag == "section":
            self.sections.append({"title": "", "rows": [], "keys": [], "imgs": 0})
        elif tag == "img" and self.sections:
            self.sections[-1]["imgs"] += 1
        elif tag == "tr" and a.get("class") == "run":
            self._row = []
            self.sections[-1]["keys"].append(a.get("data-key"))
        elif tag in ("td", "h2") and (self._row is not None or tag == "h2"):
            self._text = []

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "td" and self._row is not None and self._text is not None:
            self._row.append("".join(self._text).strip())
            self._text = None
        elif tag == "h2" and self._text is not None:
            self.sections[-1]["title"] = "".join(self._text).strip()
            self._text = None
        elif tag == "tr" and self._row is not None:
            self.sections[-1]["rows"].append(self._row)
            self._row = None


def parse(text: str) -> _Page:
    p = _Page()
    p.feed(text)
    return p


def test_groups_order_and_variants(store_path):
    with Store(store_path, create=False) as st:
        groups = group_runs(st.runs())
    assert [g.title for g in groups] == [
        "toy on n1g8 (8 x A100), slot 240 s, elasticflow-artifact",
        "toy on n4g8 (32 x A100), slot 240 s, elasticflow-artifact"]
    # the paper's policy order, whatever the grid's order
    assert list(groups[0].runs.policy) == ["edf", "ef-accessctrl", "fifo"]
    assert groups[0].variants == {}
    g = groups[1]
    assert list(g.runs.policy) == ["gandiva", "fifo", "fifo"]
    assert [g.variants.get(k) for k in g.runs.key] == [None, "backfill=false", "backfill=true"]


def test_report_is_self_contained_with_every_run(store_path, report, capsys):
    text = report.read_text()
    page = parse(text)
    # nothing outside the file: every URL is a data: URI or a fragment, no <link>,
    # no external script, and a CSP that forbids other sources anyway
    assert page.urls and all(u.startswith(("data:image/png;base64,", "#")) for u in page.urls)
    assert "link" not in page.tags and not re.search(r"<script[^>]+src", text)
    assert "default-src 'none'" in text
    assert [len(s["rows"]) for s in page.sections] == [3, 3]
    assert [s["imgs"] for s in page.sections] == [1, 1]
    with Store(store_path, create=False) as st:
        runs = st.runs().set_index("key")
    assert sorted(k for s in page.sections for k in s["keys"]) == sorted(runs.index)
    for s in page.sections:
        for key, row in zip(s["keys"], s["rows"]):
            r = runs.loc[key]
            assert row[-1].startswith(key[:12])  # the <details> summary
            assert row[1] == r.status
            if r.status == "done":
                assert row[2] == f"{r.deadline_satisfactory_ratio:.3f}"
                assert row[5] == f"{r.jct_mean_s:,.0f}"
            else:
                assert row[2] == "\u2013"
    # every run's resolved scenario is on the page, exactly as stored
    for scn in runs.scenario:
        pre = json.dumps(scn, indent=2, sort_keys=True)
        assert pre.replace('"', "&quot;") in text
    # the failed run's error, escaped
    assert "ValueError: simulated crash &lt;in gandiva&gt;" in text
    labels = [row[0] for s in page.sections for row in s["rows"]]
    assert labels == ["EDF edf", "ElasticFlow ef-accessctrl", "FIFO fifo", "Gandiva gandiva",
                      "FIFO (backfill=false) fifo", "FIFO (backfill=true) fifo"]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                    "(Debian: apt-get install -y chromium; .ci/run does this)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    dom = parse(_dump_dom(report, tmp_path / "profile-a"))
    # the page's own script counted decoded images and the run rows the browser built
    assert dom.body.get("data-figures") == "2/2"
    assert dom.body.get("data-run-rows") == "6"
    assert [len(s["rows"]) for s in dom.sections] == [3, 3]
    # the check can fail: a report with one undecodable figure says so
    text = report.read_text()
    first = re.search(r'src="data:image/png;base64,([^"]+)"', text)
    assert first is not None
    broken = base64.b64encode(b"not a png" * 50).decode()
    bad = tmp_path / "broken.html"
    bad.write_text(text.replace(first.group(1), broken, 1))
    dom = parse(_dump_dom(bad, tmp_path / "profile-b"))
    assert dom.body.get("data-figures") == "1/2"


def _dump_dom(page: Path, profile: Path) -> str:
    assert CHROMIUM is not None
    proc = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom",
         page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_report_errors_exit_2_nothing_written(tmp_path, store_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", "--store", str(tmp_path / "none.sqlite"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "none.sqlite" in err and "--store" in err and "not found" in err
    assert not out.exists() and not (tmp_path / "none.sqlite").exists()
    Store(tmp_path / "empty.sqlite").close()
    assert main(["report", "--store", str(tmp_path / "empty.sqlite"), "--out", str(out)]) == 2
    assert "has no runs" in capsys.readouterr().err and not out.exists()
    assert main(["report", "--store", str(store_path), "--out", str(tmp_path)]) == 2
    assert "--out" in capsys.readouterr().err
    blocker = tmp_path / "empty.sqlite"  # a file where the report's folder should be
    assert main(["report", "--store", str(store_path), "--out",
                 str(blocker / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot write the report" in err and "--out" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.sqlite"]
