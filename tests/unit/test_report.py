"""``labkit report``: one offline HTML page of an executed run, every notebook in order."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from labkit import report, runner
from labkit.cli import main
from labkit.errors import InputError

REMOTE_SRC = re.compile(
    r"<(?:script|link|img|iframe)\b[^>]*(?:src|href)\s*=\s*[\"']?https?://", re.I
)


def _notebook(path: Path, *sources: str) -> None:
    cells = [new_code_cell(sources[0]), new_markdown_cell(f"## Section of {path.stem}")]
    cells[0].metadata["tags"] = ["parameters"]
    cells += [new_code_cell(s) for s in sources[1:]]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three tiny notebooks executed by the real runner (papermill), widgets included."""
    source = tmp_path_factory.mktemp("nbs")
    _notebook(source / "00_first.ipynb", "x = 1", "print('first output', x)")
    _notebook(
        source / "01_widgets.ipynb",
        "name = 'myrepo'",
        "import ipywidgets as w\nfrom IPython.display import display\n"
        "display(w.Text(value=name, description='repository name'))\n"
        "print('✅ repository name: ' + name)",
        "from IPython.display import HTML\nHTML('<b>rich html output</b>')",
        "print('$ math-like $x^2$ text')",
    )
    _notebook(source / "02_last.ipynb", "y = 2", "print('last output', y)")
    out = tmp_path_factory.mktemp("run")
    runs = runner.run_notebooks(
        output_dir=out, notebook_dir=source, cell_timeout=60, log_output=False
    )
    assert all(r.ok for r in runs), [str(r) for r in runs]
    return out


def test_report_is_offline_and_has_every_notebook_in_order(run_dir: Path, tmp_path: Path):
    path = report.build_report(run_dir, tmp_path / "report.html")
    page = path.read_text(encoding="utf-8")
    # Nothing fetched from the network: no remote script/link/img/iframe at all.
    assert not REMOTE_SRC.search(page), REMOTE_SRC.findall(page)[:3]
    assert report.remote_references(page) == []
    head = page.lower().split("<main>")[0]
    for cdn in ("require.js", "mathjax", "html-manager", "mermaid"):
        assert cdn not in head, cdn
    # Every notebook, in run order, with its outputs.
    main_part = page[page.index("<main>") :]
    headings = [
        main_part.find(f'id="notebook-{stem}"') for stem in ("00_first", "01_widgets", "02_last")
    ]
    assert -1 not in headings and headings == sorted(headings), headings
    outputs = ["first output 1", "✅ repository name: myrepo", "rich html output", "last output 2"]
    at = [page.index(text) for text in outputs]
    assert at == sorted(at)
    assert page.count("✅ passed") >= 3
    # A widget has no frontend in a static page: its repr ("Text(value=…)") is dropped.
    assert "Text(value=" not in page


def test_report_leaves_out_widget_state_and_cdn_scripts(run_dir: Path):
    executed = nbformat.read(run_dir / "01_widgets.ipynb", as_version=4)
    # papermill kept the widget state: the stock template would load the CDN manager.
    assert "widgets" in executed.metadata
    page = report.render(report.executed_notebooks(run_dir))
    assert "application/vnd.jupyter.widget-state+json" not in page
    assert "<script src=" not in page


def test_strip_remote_removes_cdn_tags():
    page = (
        '<head><script src="https://cdnjs.cloudflare.com/require.min.js"></script>'
        "<link rel='stylesheet' href='http://example.com/x.css'>"
        '<script src="//cdn.example.com/y.js"></script><script>var ok = 1;</script></head>'
    )
    stripped = report.strip_remote(page)
    assert stripped == "<head><script>var ok = 1;</script></head>"
    assert report.remote_references(stripped) == []


def test_cli_report_writes_the_page(run_dir: Path, tmp_path: Path, capsys):
    target = tmp_path / "out" / "handout.html"
    assert main(["report", str(run_dir), "-o", str(target)]) == 0
    assert target.exists() and str(target) in capsys.readouterr().out


def test_report_of_an_empty_folder_says_what_to_do(tmp_path: Path):
    with pytest.raises(InputError, match="No executed notebooks"):
        report.executed_notebooks(tmp_path)
    assert main(["report", str(tmp_path / "missing")]) == 2


@pytest.mark.parametrize(
    ("argv", "resets"),
    [
        (["run", "--until", "03"], True),  # an instructor's jump: from a clean lab
        (["run", "--from", "00", "--until", "03"], True),
        (["run", "--from", "02", "--until", "03"], False),  # continuing: keep the lab
        (["run"], False),
        (["run", "--until", "03", "--no-reset"], False),
        (["run", "--from", "02", "--reset"], True),
    ],
)
def test_run_resets_only_when_jumping_from_00(argv, resets):
    from labkit.cli import _resets, build_parser

    assert _resets(build_parser().parse_args(argv)) is resets


def test_cli_has_report_and_reset():
    from labkit.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["run", "--until", "04", "--report"])
    assert args.report and args.until == "04"
    assert parser.parse_args(["reset", "-p", "repository_name", "x1"]).handler
    assert parser.parse_args(["report", "runs/x", "-o", "r.html"]).output == Path("r.html")
