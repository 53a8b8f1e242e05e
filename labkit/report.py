"""One HTML page of an executed run, readable offline (``labkit report RUN_DIR``).

An instructor hands it out after a demo: every executed notebook of the run, in order,
with its outputs, in a single self-contained file. nbconvert's stock HTML templates load
require.js, MathJax, Mermaid and the widget manager from CDNs; this report renders with
a template that drops all of them, embeds images, and replaces live widgets by the
plain-text twins the kit prints beside them. No ``<script src>`` or ``<link href>``
points off the page, so it reads the same on a plane.
"""

from __future__ import annotations

import copy
import html
import re
from datetime import datetime
from pathlib import Path

import nbformat

from labkit.errors import InputError

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: ipywidgets' own text/plain repr, e.g. "VBox(children=(…))": meaningless on paper.
_WIDGET_REPR = re.compile(r"^[A-Z][A-Za-z]*\(")
#: Any <script>, <link>, <img>, <iframe> … whose src/href points at another host.
_REMOTE_TAG = re.compile(
    r"<(script|link)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//[^>]*>(?:\s*</\1>)?",
    re.I,
)

# The lab template without anything remote: no require.js, widget manager, MathJax,
# Mermaid. Its CSS (JupyterLab's light theme and Pygments) is inlined by nbconvert.
_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}
<style type="text/css">
  .labkit-report-nav { font-family: sans-serif; margin: 1em 0 2em 0; }
  .labkit-report-nav td, .labkit-report-nav th { padding: 2px 12px 2px 0; text-align: left; }
  .labkit-report-notebook { border-top: 3px solid #ff9900; margin-top: 2.5em; }
</style>
{%- endblock html_head_css -%}
"""
_TEMPLATE_NAME = "labkit_report.html.j2"


def executed_notebooks(run_dir: Path) -> list[Path]:
    """The run's notebooks (``NN_*.ipynb``) in lab order."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(
            f"{run_dir} is not a folder.",
            why="labkit report reads the executed notebooks that `labkit run` wrote.",
            fix="Pass the run's output folder, e.g. runs/20261127-101500.",
        )
    found = sorted(p for p in run_dir.glob("[0-9][0-9]_*.ipynb") if p.is_file())
    if not found:
        raise InputError(
            f"No executed notebooks in {run_dir}.",
            why="Expected files like 00_start_here.ipynb written by `labkit run`.",
            fix="Run `labkit run -o DIR` first, then `labkit report DIR`.",
        )
    return found


def _outcome(nb: nbformat.NotebookNode) -> tuple[str, str]:
    """('✅', '12.3 s') from papermill's metadata; ('❌', …) for a failed notebook."""
    meta = nb.metadata.get("papermill", {})
    duration = meta.get("duration")
    took = f"{duration:.1f} s" if isinstance(duration, int | float) else ""
    failed = bool(meta.get("exception")) or any(
        c.get("metadata", {}).get("papermill", {}).get("exception") for c in nb.cells
    )
    return ("❌ failed" if failed else "✅ passed"), took


def _offline_outputs(cell: nbformat.NotebookNode) -> None:
    """Widgets cannot run in a static page: keep their plain-text twin, or nothing."""
    if cell.get("cell_type") != "code":
        return
    kept = []
    for output in cell.get("outputs", []):
        data = output.get("data")
        if data and WIDGET_VIEW in data:
            data.pop(WIDGET_VIEW)
            plain = str(data.get("text/plain", ""))
            if not plain or _WIDGET_REPR.match(plain) or set(data) == set():
                continue  # the form printed its own twin next to it
        kept.append(output)
    cell["outputs"] = kept


def combined_notebook(paths: list[Path]) -> nbformat.NotebookNode:
    """All notebooks as one: a contents table, then each notebook under its own heading."""
    combined = nbformat.v4.new_notebook()
    rows = []
    for i, path in enumerate(paths):
        nb = nbformat.read(path, as_version=4)
        status, took = _outcome(nb)
        anchor = f"notebook-{path.stem}"
        rows.append(
            f"<tr><td>{i + 1}</td><td><a href='#{anchor}'>{html.escape(path.name)}</a></td>"
            f"<td>{status}</td><td>{took}</td></tr>"
        )
        heading = nbformat.v4.new_markdown_cell(
            f"<div class='labkit-report-notebook' id='{anchor}'></div>\n\n"
            f"# {path.name}\n\n*{status}{', ' + took if took else ''}*"
        )
        combined.cells.append(heading)
        for n, cell in enumerate(nb.cells):
            cell = copy.deepcopy(cell)
            cell["id"] = f"{path.stem[:2]}-{n}"  # unique across the combined notebooks
            cell.get("metadata", {}).pop("papermill", None)
            _offline_outputs(cell)
            combined.cells.append(cell)
        if not combined.metadata.get("kernelspec") and nb.metadata.get("kernelspec"):
            combined.metadata["kernelspec"] = nb.metadata["kernelspec"]
            combined.metadata["language_info"] = nb.metadata.get("language_info", {})
    generated = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    contents = nbformat.v4.new_markdown_cell(
        f"# ECS Lab Kit: executed run\n\nGenerated {generated}, {len(paths)} notebook(s).\n\n"
        "<table class='labkit-report-nav'><thead><tr><th>#</th><th>notebook</th>"
        f"<th>result</th><th>time</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    combined.cells.insert(0, contents)
    return combined


def strip_remote(page: str) -> str:
    """Drop any <script src=…> / <link href=…> that points at another host."""
    return _REMOTE_TAG.sub("", page)


def remote_references(page: str) -> list[str]:
    """The <script>/<link> tags that would fetch from the network (empty = offline)."""
    return [m.group(0) for m in _REMOTE_TAG.finditer(page)]


def render(paths: list[Path]) -> str:
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[DictLoader({_TEMPLATE_NAME: _TEMPLATE})],
        template_file=_TEMPLATE_NAME,
        embed_images=True,
        sanitize_html=False,
    )
    body, _resources = exporter.from_notebook_node(
        combined_notebook(paths), resources={"metadata": {"name": "ECS Lab Kit run"}}
    )
    return strip_remote(body)


def build_report(run_dir: Path, output: Path | None = None) -> Path:
    """Write ``output`` (default RUN_DIR/report.html) for the run in ``run_dir``; its path."""
    paths = executed_notebooks(Path(run_dir))
    output = Path(output) if output else Path(run_dir) / "report.html"
    page = render(paths)
    left = remote_references(page)
    if left:  # strip_remote ran, so this is a bug, not the user's problem
        raise AssertionError(f"report still references remote files: {left[:3]}")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    return output
