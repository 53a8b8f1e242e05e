"""Showing things: tables, notes, links, the error box and the lab's pictures.

Every helper sends a MIME bundle holding both ``text/html`` and ``text/plain``, because
nbconvert and papermill have no widget frontend and CI logs are plain text.

This is the bottom of labkit: it imports nothing of labkit but the errors, so every
module may use it (``labkit.views`` holds the console-like views of the lab's resources).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from labkit.errors import LabkitError

# -- showing things -------------------------------------------------------------------


def in_kernel() -> bool:
    """True inside a Jupyter kernel (not a terminal IPython, not plain Python)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ != "TerminalInteractiveShell"


def show(html_text: str, plain_text: str) -> None:
    """Display rich HTML in a notebook (plain text for logs); print plain text elsewhere."""
    if in_kernel():
        from IPython.display import display

        display({"text/html": html_text, "text/plain": plain_text}, raw=True)
    else:
        print(plain_text)


def cell_text(value: Any) -> str:
    """A table cell as text: times to the second, None as empty."""
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    return "" if value is None else str(value)


def short_arn(arn: str | None) -> str:
    """``arn:…:service/ECSCluster/MYSERVICE1234`` → ``MYSERVICE1234``, as the console shows."""
    return str(arn or "").rsplit("/", 1)[-1]


def balancing_name(arn: str | None) -> str:
    """``…:targetgroup/NAME/ID`` (or ``…:loadbalancer/net/NAME/ID``) → NAME, as the
    console shows target groups and load balancers."""
    parts = str(arn or "").split("/")
    return parts[-2] if len(parts) >= 3 else short_arn(arn)


def table_markup(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> tuple[str, str]:
    """A small table as (HTML, plain text): bold title, header row, "(none)" when empty."""
    cell_style = "text-align:left;padding:1px 14px 1px 0"
    cells = [[cell_text(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    plain = [title, "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    plain += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    if not cells:
        plain.append("(none)")
    head = "".join(f"<th style='{cell_style}'>{html.escape(c)}</th>" for c in columns)
    body = (
        "".join(
            "<tr>" + "".join(f"<td style='{cell_style}'>{html.escape(v)}</td>" for v in r) + "</tr>"
            for r in cells
        )
        or f"<tr><td colspan='{len(columns)}'><i>(none)</i></td></tr>"
    )
    return (
        f"<div style='margin-top:6px'><b>{html.escape(title)}</b><table><thead><tr>{head}"
        f"</tr></thead><tbody>{body}</tbody></table></div>",
        "\n".join(plain),
    )


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Show a small table (see :func:`table_markup`)."""
    show(*table_markup(title, columns, rows))


def note(text: str, emoji: str = "ℹ️") -> None:
    """A callout (a line break in ``text`` shows as one)."""
    show(
        f"<div style='padding:6px 10px;border-left:4px solid #1f77b4;background:#f3f8fc;"
        f"color:#111'>{emoji} {html.escape(text).replace(chr(10), '<br>')}</div>",
        f"{emoji} {text}",
    )


def link(url: str, text: str = "") -> None:
    """A clickable link (plain text shows the URL)."""
    label = text or url
    show(
        f"<a href='{html.escape(url)}' target='_blank'>{html.escape(label)}</a>",
        f"{label}: {url}" if text else url,
    )


# -- errors: what / why / what to do --------------------------------------------------


def error_box(error: LabkitError) -> tuple[str, str]:
    """The HTML and plain-text box a LabkitError shows instead of a traceback wall."""
    rows = [("❌", error.what), ("Why", error.why), ("What to do", error.fix)]
    rows = [(k, v) for k, v in rows if v]
    plain = "\n".join(f"{k}: {v}" if k != "❌" else f"❌ {v}" for k, v in rows)
    body = "".join(
        f"<tr><td style='vertical-align:top;padding-right:8px'><b>{html.escape(k)}</b></td>"
        f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    kind = html.escape(type(error).__name__)
    return (
        "<div style='border:2px solid #d62728;border-radius:6px;padding:8px 12px;"
        f"background:#fff5f5;color:#111'><div style='color:#d62728'><b>{kind}</b></div>"
        f"<table>{body}</table></div>",
        f"{type(error).__name__}\n{plain}",
    )


def explain(exc: BaseException) -> LabkitError:
    """A LabkitError for ``exc``: itself, or an AWS/Docker error put in what/why/fix terms."""
    if isinstance(exc, LabkitError):
        return exc
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    from labkit.errors import BackendError, CredentialsMissing

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "Error")
        operation = getattr(exc, "operation_name", "the request")
        fix = "Read the message; re-run the notebook's earlier cells, then this one."
        if "AccessDenied" in code or "Unauthorized" in code:
            fix = "Your credentials may not allow this; the lab's policy limits what you can do."
        elif code.endswith("NotFoundException") or code.endswith("NotFound"):
            fix = "Something this step needs is missing: run the earlier notebooks in order."
        return BackendError(
            f"AWS refused {operation}.", why=f"{code}: {error.get('Message')}", fix=fix
        )
    if isinstance(exc, NoCredentialsError):
        return CredentialsMissing(
            "No AWS credentials were found.",
            why=str(exc),
            fix="Run `aws configure`, or use backend = 'sandbox'.",
        )
    if isinstance(exc, EndpointConnectionError):
        return BackendError(
            "The AWS endpoint did not answer.",
            why=str(exc),
            fix="Start the sandbox (notebook 00 or `labkit sandbox up`) or check AWS_ENDPOINT_URL.",
        )
    return BackendError(
        f"{type(exc).__name__}: {exc}",
        fix="Re-run the cell; if it persists, run `labkit check` to see which task is not done.",
    )


def _labkit_exception_handler(shell, etype, value, tb, tb_offset=None):
    """IPython custom exception handler: a short box, and a one-line error output.

    The error output (not only the box) matters: papermill fails a run on it.
    """
    value = explain(value)
    show(*error_box(value))
    stb = [f"{etype.__name__}: {value.what} (details above)"]
    shell._showtraceback(etype, value, stb)
    return stb


def install_error_display() -> bool:
    """Show LabkitError (and botocore's errors) as a box in IPython kernels.

    Called when labkit is imported; anything else keeps IPython's usual traceback."""
    if not in_kernel():
        return False
    from botocore.exceptions import BotoCoreError, ClientError
    from IPython import get_ipython

    handled = (LabkitError, ClientError, BotoCoreError)
    get_ipython().set_custom_exc(handled, _labkit_exception_handler)
    return True


# -- the lab's pictures (SVG, with a text twin, in resources/diagrams/) ----------------

DIAGRAMS = Path(__file__).resolve().parent / "resources" / "diagrams"


def diagram(name: str) -> None:
    """Show ``resources/diagrams/<name>.svg`` with ``<name>.txt`` as its plain text."""
    show((DIAGRAMS / f"{name}.svg").read_text(), (DIAGRAMS / f"{name}.txt").read_text().rstrip())


def lab_diagram() -> None:
    """Task 1 → Task 4 → the load balancer → your page."""
    diagram("lab")


def load_balancer_diagram() -> None:
    """Load balancer → listener → target group → targets → tasks (and Cloud Map)."""
    diagram("load-balancer")


def page_view(page) -> None:
    """The fetched page, rendered in a sandboxed iframe (plain text: status and title)."""
    srcdoc = html.escape(page.body, quote=True)
    show(
        f'<div>{html.escape(str(page))}</div><iframe sandbox srcdoc="{srcdoc}" '
        "style='width:100%;height:320px;border:1px solid #ccc'></iframe>",
        str(page),
    )
