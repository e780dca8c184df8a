"""A page as a list of blocks, rendered both to HTML (figures embedded) and to Markdown.

The study's and the grid's reports are both written through :class:`Document`. Text blocks
take ``**bold**`` (kept as is in Markdown); :meth:`Document.folded` wraps blocks in a
``<details>`` element, closed until the reader opens it. Figures are embedded as 256-colour
PNGs (about a third of matplotlib's RGBA PNG) at their own size: a figure at most 1180 px wide
is shown unscaled, so its fonts keep their size.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Document", "html_table", "markdown_table", "png", "slug"]


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` as a Markdown table (floats to 3 significant digits, NaN blank)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            text = "" if not math.isfinite(value) else f"{value:.3g}"
        else:
            text = str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join([header, rule, *body])


def html_table(frame: pd.DataFrame) -> str:
    """``frame`` as an escaped HTML table (floats to 3 significant digits, NaN blank)."""
    return frame.to_html(
        index=False,
        border=0,
        classes="tbl",
        na_rep="",
        float_format=lambda v: f"{v:.3g}",
        escape=True,
    )


def slug(text: str) -> str:
    """A file-name-safe lowercase slug of ``text`` (at most 60 characters; "all" if empty)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60] or "all"


def png(fig: Figure) -> bytes:
    """``fig`` as a 256-colour PNG at 100 dpi (deterministic: same figure, same bytes)."""
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    buffer.seek(0)
    with Image.open(buffer) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def inline(text: str) -> str:
    """``text`` escaped for HTML, ``**bold**`` as ``<strong>``.

    Examples
    --------
    >>> inline("**LEEP** < NCE")
    '<strong>LEEP</strong> &lt; NCE'
    """
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))


@dataclass
class Document:
    """The report as a list of blocks rendered both to HTML and to Markdown."""

    title: str
    html: list[str] = field(default_factory=list)
    md: list[str] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)

    def heading(self, text: str, level: int = 2) -> None:
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")
        self.md.append(f"{'#' * level} {text}\n")

    def paragraph(self, text: str, css: str = "") -> None:
        attr = f' class="{css}"' if css else ""
        self.html.append(f"<p{attr}>{inline(text)}</p>")
        self.md.append(f"{text}\n")

    def bullets(self, items: Sequence[str], css: str = "") -> None:
        if not items:
            return
        attr = f' class="{css}"' if css else ""
        self.html.append(f"<ul{attr}>" + "".join(f"<li>{inline(i)}</li>" for i in items) + "</ul>")
        self.md.append("\n".join(f"- {i}" for i in items) + "\n")

    @contextmanager
    def folded(self, summary: str) -> Iterator[None]:
        """The blocks added inside the ``with`` are folded under ``summary`` (closed)."""
        self.html.append(f"<details><summary>{inline(summary)}</summary>")
        self.md.append(f"<details><summary>{html.escape(summary)}</summary>\n")
        yield
        self.html.append("</details>")
        self.md.append("</details>\n")

    def table(self, frame: pd.DataFrame, caption: str | None = None) -> None:
        if caption:
            self.html.append(f'<p class="caption">{html.escape(caption)}</p>')
            self.md.append(f"*{caption}*\n")
        self.html.append(html_table(frame))
        self.md.append(markdown_table(frame) + "\n")

    def details(self, summary: str, frame: pd.DataFrame) -> None:
        self.html.append(
            f"<details><summary>{html.escape(summary)}</summary>{html_table(frame)}</details>"
        )
        self.md.append(
            f"<details><summary>{summary}</summary>\n\n{markdown_table(frame)}\n\n</details>\n"
        )

    def figure(self, name: str, fig: Figure, caption: str) -> None:
        width, height = (round(v) for v in fig.get_size_inches() * 100)
        data = png(fig)
        self.figures[name] = data
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        self.html.append(
            f'<figure><img src="{uri}" width="{width}" height="{height}" '
            f'alt="{html.escape(caption)}"><figcaption>{inline(caption)}</figcaption></figure>'
        )
        self.md.append(f"![{caption}]({name})\n")

    def attach(self, name: str, fig: Figure, caption: str) -> None:
        """A figure written beside the page (linked from the Markdown, not embedded)."""
        self.figures[name] = png(fig)
        self.md.append(f"[{caption}]({name})\n")

    def render_html(self) -> str:
        style = (
            "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1180px;"
            "margin:0.8em auto;padding:0 1em;color:#222;line-height:1.4}"
            "h1{font-size:1.5em;margin:0.2em 0 0.3em;border-bottom:2px solid #444}"
            "h2{font-size:1.25em;border-bottom:1px solid #bbb;margin-top:1.6em}"
            "p.lead{font-size:1.05em;margin:0.3em 0}"
            "ul.verdict{margin:0.3em 0 0.5em;padding-left:1.3em}ul.verdict li{margin:0.1em 0}"
            "table.tbl{border-collapse:collapse;font-size:0.85em;margin:0.5em 0 1em}"
            "table.tbl th,table.tbl td{border:1px solid #ccc;padding:3px 7px;text-align:left}"
            "table.tbl th{background:#f0f0f0}table.tbl tr:nth-child(even){background:#fafafa}"
            "figure{margin:0.5em 0 1em}figure img{max-width:100%;height:auto}"
            "figcaption,.caption{font-size:0.9em;color:#555}"
            "details{margin:0.4em 0}details[open]{margin-bottom:1.2em}"
            "summary{cursor:pointer;color:#235;font-weight:600}"
        )
        body = "\n".join(self.html)
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(self.title)}</title>\n<style>{style}</style>\n</head>\n"
            f"<body>\n<h1>{html.escape(self.title)}</h1>\n{body}\n</body>\n</html>\n"
        )

    def render_md(self) -> str:
        return f"# {self.title}\n\n" + "\n".join(self.md)
