"""A page as a list of blocks, rendered both to HTML (figures embedded) and to Markdown.

The study's and the grid's reports are both written through :class:`Document`.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Sequence
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
    """``fig`` as PNG bytes at 100 dpi."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


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

    def paragraph(self, text: str) -> None:
        self.html.append(f"<p>{html.escape(text)}</p>")
        self.md.append(f"{text}\n")

    def bullets(self, items: Sequence[str]) -> None:
        if not items:
            return
        self.html.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>")
        self.md.append("\n".join(f"- {i}" for i in items) + "\n")

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
        data = png(fig)
        self.figures[name] = data
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        self.html.append(
            f'<figure><img src="{uri}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
        self.md.append(f"![{caption}]({name})\n")

    def render_html(self) -> str:
        style = (
            "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1150px;"
            "margin:2em auto;padding:0 1em;color:#222;line-height:1.45}"
            "h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #bbb;margin-top:2em}"
            "table.tbl{border-collapse:collapse;font-size:0.85em;margin:0.5em 0 1em}"
            "table.tbl th,table.tbl td{border:1px solid #ccc;padding:3px 7px;text-align:left}"
            "table.tbl th{background:#f0f0f0}table.tbl tr:nth-child(even){background:#fafafa}"
            "figure{margin:1em 0}figure img{max-width:100%}"
            "figcaption,.caption{font-size:0.9em;color:#555}"
            "details{margin:0.5em 0 1em}summary{cursor:pointer;color:#235}"
        )
        body = "\n".join(self.html)
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(self.title)}</title>\n<style>{style}</style>\n</head>\n"
            f"<body>\n<h1>{html.escape(self.title)}</h1>\n{body}\n</body>\n</html>\n"
        )

    def render_md(self) -> str:
        return f"# {self.title}\n\n" + "\n".join(self.md)
