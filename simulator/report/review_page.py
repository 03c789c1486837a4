"""The review report as a self-contained HTML page and as Markdown (SPEC §9: review.html, review.md).

A report is a list of `Section`s (paragraphs, `Table`s of display strings,
figures) built once from a `ReviewResult` (`simulator.report.review`) and
rendered twice: `render_html` (inline CSS, figures as base64 PNG `data:` URIs,
nothing fetched from the network) and `render_markdown` (GitHub tables, figures
as PNG files written next to it, for pasting into a pull request). Every piece
of text goes through `html.escape` in HTML and pipe-escaping in Markdown.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

@dataclass(frozen=True)
class Table:
    """A table of display strings; `row_classes` (one per row, may be "") style rows in HTML."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    row_classes: tuple[str, ...] = ()
    caption: str = ""
    numeric: tuple[bool, ...] = ()  # right-align these columns


@dataclass(frozen=True)
class Image:
    """A rendered figure: its file name next to review.md, alt text and its bytes (SVG when the name ends in .svg)."""

    name: str
    alt: str
    png: bytes


@dataclass(frozen=True)
class Section:
    """One titled part of the report, rendered in order: paragraphs, tables, figures, then code."""

    id: str
    title: str
    paragraphs: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    figures: tuple[Image, ...] = ()
    code: str = ""  # preformatted text (e.g. the config)
    notes: tuple[str, ...] = field(default=())  # paragraphs after the tables and figures
    level: int = 2  # heading level: 2 for a report's sections, 3 for parts of one candidate's section


@dataclass(frozen=True)
class Report:
    """A whole report: a title, the verdict banner (`verdict` is fail | inconclusive | pass) and sections."""

    title: str
    verdict: str
    verdict_text: str
    verdict_details: tuple[str, ...]
    sections: tuple[Section, ...]


CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 2rem auto;
       max-width: 1150px; color: #1f2933; line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .3rem; } h3 { font-size: 1.05rem; margin-top: 1.6rem; } h2 { border-bottom: 1px solid #d9e2ec; padding-bottom: .2rem;
       margin-top: 2.2rem; font-size: 1.25rem; }
.verdict { border-radius: 8px; padding: 1rem 1.3rem; margin: 1rem 0 1.5rem; border: 2px solid; }
.verdict .label { font-size: 1.7rem; font-weight: 700; letter-spacing: .04em; }
.verdict ul { margin: .4rem 0 0; }
.verdict-pass { background: #e8f5e9; border-color: #2e7d32; } .verdict-pass .label { color: #2e7d32; }
.verdict-fail { background: #ffebee; border-color: #c62828; } .verdict-fail .label { color: #c62828; }
.verdict-inconclusive { background: #fff8e1; border-color: #ef6c00; } .verdict-inconclusive .label { color: #ef6c00; }
.verdict-summary { background: #e3f2fd; border-color: #1565c0; } .verdict-summary .label { color: #1565c0; font-size: 1.2rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .86rem; }
caption { text-align: left; font-weight: 600; padding: .3rem 0; }
th, td { border: 1px solid #d9e2ec; padding: .25rem .55rem; vertical-align: top; }
th { background: #f0f4f8; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.fail td { background: #ffebee; } tr.inconclusive td { background: #fff8e1; }
tr.insufficient_data td { background: #eceff1; } tr.pass td { background: #f1f8e9; }
tr.moved td { background: #e3f2fd; }
img { max-width: 100%; border: 1px solid #d9e2ec; margin: .5rem 0; }
pre { background: #f5f7fa; padding: .8rem; overflow-x: auto; font-size: .8rem; border: 1px solid #d9e2ec; }
.muted { color: #52606d; font-size: .9rem; }
"""


def _html_table(table: Table) -> str:
    esc = html.escape
    numeric = table.numeric or tuple(False for _ in table.headers)
    head = "".join(f"<th>{esc(h)}</th>" for h in table.headers)
    body = []
    for index, row in enumerate(table.rows):
        css = table.row_classes[index] if index < len(table.row_classes) else ""
        cells = "".join(f'<td class="num">{esc(c)}</td>' if numeric[i] else f"<td>{esc(c)}</td>"
                        for i, c in enumerate(row))
        body.append(f'<tr class="{esc(css)}">{cells}</tr>' if css else f"<tr>{cells}</tr>")
    caption = f"<caption>{esc(table.caption)}</caption>" if table.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html_figure(figure: Image) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    kind = "svg+xml" if figure.name.endswith(".svg") else "png"
    return f'<img alt="{html.escape(figure.alt)}" src="data:image/{kind};base64,{data}">'


def _html_section(section: Section) -> str:
    esc = html.escape
    heading = f"h{section.level}"
    parts = [f'<section id="{esc(section.id)}"><{heading}>{esc(section.title)}</{heading}>']
    parts += [f"<p>{esc(p)}</p>" for p in section.paragraphs]
    parts += [_html_table(t) for t in section.tables]
    parts += [_html_figure(f) for f in section.figures]
    parts += [f'<p class="muted">{esc(p)}</p>' for p in section.notes]
    if section.code:
        parts.append(f"<pre>{esc(section.code)}</pre>")
    return "\n".join(parts) + "</section>"


def render_html(report: Report) -> str:
    """A self-contained page: inline CSS, inline images, no scripts, no external references."""
    esc = html.escape
    details = "".join(f"<li>{esc(d)}</li>" for d in report.verdict_details)
    banner = (f'<div id="verdict" class="verdict verdict-{esc(report.verdict)}">'
              f'<div class="label">{esc(report.verdict_text)}</div><ul>{details}</ul></div>')
    sections = "\n".join(_html_section(s) for s in report.sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(report.title)}</title><style>{CSS}</style></head>\n"
            f"<body><h1>{esc(report.title)}</h1>\n{banner}\n{sections}\n</body></html>\n")


def _md(text: str) -> str:
    """A table cell: pipes escaped, newlines flattened."""
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(table: Table) -> str:
    numeric = table.numeric or tuple(False for _ in table.headers)
    lines = [f"**{_md(table.caption)}**", ""] if table.caption else []
    lines.append("| " + " | ".join(_md(h) for h in table.headers) + " |")
    lines.append("|" + "|".join(" ---: " if n else " --- " for n in numeric) + "|")
    lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def render_markdown(report: Report) -> str:
    """The same report in GitHub Markdown; figures are referenced by file name (written beside it)."""
    icon = {"pass": "✅", "fail": "❌", "inconclusive": "⚠️"}.get(report.verdict, "")
    parts = [f"# {report.title}", "", f"> ## {icon} {report.verdict_text}".rstrip()]
    parts += [f"> - {d}" for d in report.verdict_details]
    for section in report.sections:
        parts += ["", f"{'#' * section.level} {section.title}", ""]
        parts += [p + "\n" for p in section.paragraphs]
        parts += [_md_table(t) + "\n" for t in section.tables]
        parts += [f"![{f.alt}]({f.name})\n" for f in section.figures]
        parts += [f"_{n}_\n" for n in section.notes]
        if section.code:
            parts += ["```", section.code, "```"]
    return "\n".join(parts).rstrip() + "\n"
