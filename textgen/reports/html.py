"""The report as one self-contained HTML page: inline CSS, the figure as a data: URI, no scripts."""

from __future__ import annotations

import base64
import html

from textgen.loaders.base import END_OF_DOCUMENT
from textgen.reports.summary import (
    SECTIONS,
    RunSummary,
    best_sentence,
    caption,
    char_title,
    config_rows,
    corpus_totals,
    fmt,
    fmt_error,
    headline,
    json_text,
    readable_token,
    vocabulary_title,
    source_table,
    subtitle,
    visible,
)

STYLE = """
:root { --ink: #1c2230; --muted: #5d6677; --line: #e2e5eb; --paper: #ffffff; --ground: #f3f4f7;
  --accent: #2f5fb3; --code: #f6f7f9; }
* { box-sizing: border-box; }
html { background: var(--ground); }
body { margin: 0; color: var(--ink);
  font: 15px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.wrap { max-width: 1100px; margin: 0 auto; padding: 0 24px; }
header { background: linear-gradient(135deg, #1f3b6e, #2f5fb3); color: #fff; padding: 28px 0 24px; }
header h1 { margin: 0 0 4px; font-size: 28px; font-weight: 650; letter-spacing: -0.01em; word-break: break-all; }
header .sub { color: #d5e0f5; margin: 0 0 18px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(165px, 1fr)); gap: 10px; }
.card { background: rgba(255, 255, 255, 0.12); border: 1px solid rgba(255, 255, 255, 0.22); border-radius: 10px;
  padding: 10px 14px; }
.card .label { font-size: 12px; text-transform: uppercase; letter-spacing: 0.06em; color: #d5e0f5;
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.card .value { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .detail { font-size: 12.5px; color: #e6edfa; }
nav { background: var(--paper); border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 1; }
nav a { display: inline-block; padding: 10px 12px 9px; color: var(--accent); text-decoration: none; font-size: 14px;
  border-bottom: 2px solid transparent; }
nav a:hover { border-bottom-color: var(--accent); }
main { padding: 20px 24px 56px; }
section { background: var(--paper); border: 1px solid var(--line); border-radius: 10px; padding: 6px 22px 18px;
  margin: 0 0 18px; }
h2 { font-size: 20px; margin: 16px 0 10px; }
h3 { font-size: 15px; margin: 18px 0 8px; color: var(--muted); }
p { margin: 8px 0; }
.muted { color: var(--muted); }
figure { margin: 6px 0 0; }
figure img { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; display: block; }
figcaption { color: var(--muted); font-size: 13.5px; margin-top: 8px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
table.compact { width: auto; min-width: 420px; }
table.sources td { white-space: nowrap; }
table.sources td.spec { white-space: normal; overflow-wrap: anywhere; min-width: 180px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; background: var(--code); white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fafbfc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; }
pre.text { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; font-size: 13px; line-height: 1.5;
  background: var(--code); border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; }
pre.passage { font-size: 14px; padding: 14px 16px; }
td.text { width: 70%; min-width: 320px; }
.chars { display: flex; flex-wrap: wrap; gap: 4px; margin: 6px 0; }
.ch { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace; font-size: 13px;
  min-width: 26px; text-align: center; padding: 2px 5px; border: 1px solid var(--line); border-radius: 5px;
  background: var(--code); }
.ch.esc { color: #9a3d00; background: #fff4e8; border-color: #f3d7bb; }
.mark { font-size: 0; }
.mark::before { content: attr(data-label); font: 600 10px/1 system-ui, sans-serif; color: #2f5fb3;
  background: #e6edfb; border: 1px solid #c4d3f2; border-radius: 3px; padding: 1px 3px; margin: 0 2px;
  vertical-align: 1px; }
.note { background: #fff8e6; border: 1px solid #f0dca8; border-radius: 6px; padding: 8px 12px; }
@media print { nav { display: none; } header { background: #1f3b6e; } section { break-inside: avoid-page; } }
"""


def _e(text) -> str:
    return html.escape(str(text))


# The end-of-document marker is drawn as a small "end" label: many fonts lack a glyph for U+2403 and would
# show an empty box. The character itself stays in the page (hidden by font-size 0), so copying keeps it.
END_MARK_HTML = (f'<span class="mark" data-label="end" title="U+{ord(END_OF_DOCUMENT):04X} end-of-document '
                 f'marker">{END_OF_DOCUMENT}</span>')


def _title(token: str) -> str:
    """The tooltip attribute of a vocabulary chip: a character's Unicode name (none for a longer token)."""
    return f' title="{_e(char_title(token))}"' if len(token) == 1 else ""


def _html_text(text: str) -> str:
    """Escaped, control characters made visible, end-of-document markers labelled."""
    return _e(visible(text)).replace(END_OF_DOCUMENT, END_MARK_HTML)


def _html_table(head: list[str] | None, rows: list[list[str]], numeric: set[int] = frozenset(),
                classes: dict[int, str] | None = None, table_class: str = "") -> str:
    """A table; cells are already HTML. ``numeric``: column indexes aligned right; ``classes``: a CSS class per
    column index; ``head`` None: no header row."""
    classes = classes or {}

    def cell(tag: str, index: int, content: str) -> str:
        names = (["num"] if index in numeric else []) + ([classes[index]] if index in classes else [])
        attribute = f' class="{" ".join(names)}"' if names else ""
        return f"<{tag}{attribute}>{content}</{tag}>"

    lines = [f'<div class="scroll"><table class="{table_class}">' if table_class else '<div class="scroll"><table>']
    if head is not None:
        lines.append("<thead><tr>" + "".join(cell("th", i, h) for i, h in enumerate(head)) + "</tr></thead>")
    lines.append("<tbody>")
    lines += ["<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>" for row in rows]
    lines.append("</tbody></table></div>")
    return "\n".join(lines)


def _html_pre(text: str, classes: str = "text") -> str:
    """``text`` in a <pre>, escaped; the newline after the start tag is there because HTML drops the first one."""
    return f'<pre class="{classes}">\n{_html_text(text)}</pre>'


def _html_sections(summary: RunSummary, figure_png: bytes | None) -> dict[str, str]:
    """The body of each section by anchor (a section left out is absent)."""
    body: dict[str, str] = {}

    if figure_png is not None:
        data = base64.b64encode(figure_png).decode("ascii")
        body["loss"] = (f'<figure><img alt="Loss curves of {_e(summary.name)}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{_e(caption(summary))}</figcaption></figure>")
    else:
        body["loss"] = '<p class="note">No metrics have been logged yet, so there is nothing to plot.</p>'

    if summary.samples:
        rows = [[f"{row['update']:,}", fmt(row.get("epoch"), ".2f"), fmt(row.get("smooth_loss"), ".3f"),
                 _html_pre(row.get("text", ""))] for row in summary.samples]
        body["samples"] = (f'<p class="muted">{len(summary.samples)} samples of '
                           f'{summary.record.train.sample_length} characters, drawn from the model as '
                           "it was at each sampling point (temperature 1). Control characters other than newline "
                           "and tab are written as escapes such as \\x0c.</p>"
                           + _html_table(["update", "epoch", "smooth loss", "text"], rows, {0, 1, 2}, {3: "text"}))
    else:
        body["samples"] = '<p class="note">No samples have been written yet.</p>'

    best = f"<p>{_e(best_sentence(summary))}</p>"
    if summary.passage is None:
        body["passage"] = best + '<p class="note">best_passage.txt is written when training finishes; ' \
                                 "this run has not finished.</p>"
    else:
        body["passage"] = (best + f'<p class="muted">{len(summary.passage):,} characters sampled from the best model '
                           f"(temperature 1).</p>{_html_pre(summary.passage, 'text passage')}")

    gradcheck = summary.record.extra.get("gradcheck")
    if isinstance(gradcheck, dict) and gradcheck:
        rows = [[f"<code>{_e(name)}</code>", _e(fmt_error(error))] for name, error in gradcheck.items()]
        body["gradcheck"] = ("<p>Largest relative error |g<sub>a</sub> − g<sub>n</sub>| / max(eps, |g<sub>a</sub>| "
                             "+ |g<sub>n</sub>|) between analytic and centred-difference gradients, per parameter."
                             "</p>" + _html_table(["parameter", "max relative error"], rows, {1},
                                                             table_class="compact"))

    columns, rows, numeric = source_table(summary)

    def source_cell(column: str, text: str) -> str:
        if column == "spec":
            return f'<span class="mono">{_e(text)}</span>'
        if column == "sha256":
            return f'<span class="mono" title="{_e(text)}">{_e(text[:12])}…</span>'
        return _e(text)

    rows = [[source_cell(column, text) for column, text in zip(columns, row)] for row in rows]
    corpus = _html_table(columns, rows, numeric, {0: "spec"}, table_class="sources")
    corpus += "<h3>Totals</h3>" + _html_table(None, [[_e(k), _e(v)] for k, v in corpus_totals(summary)], {1},
                                              table_class="compact")
    if summary.chars is not None:
        chips = "".join(
            f'<span class="ch{" esc" if readable_token(c) != c else ""}"'
            f'{_title(c)}>{_html_text(readable_token(c))}</span>' for c in summary.chars)
        corpus += (f"<h3>{_e(vocabulary_title(summary))}</h3>"
                   f'<div class="chars">{chips}</div><p class="muted">Escapes: \\n newline, \\t tab, ␣ space, '
                   "U+XXXX an invisible character, <i>end</i> the end-of-document marker U+2403. Hover a "
                   "character for its Unicode name.</p>")
    else:
        corpus += '<p class="note">vocab.json is missing.</p>'
    body["corpus"] = corpus

    rows = [[_e(group), f"<code>{_e(key)}</code>", f'<span class="mono">{_e(value)}</span>', _e(meaning)]
            for group, key, value, meaning in config_rows(summary)]
    configuration = _html_table(["group", "setting", "value", "meaning"], rows)
    resumes = summary.record.resumes
    if resumes:
        rows = [[fmt(r.get("at_update"), ","), _e(json_text(r.get("changes") or {})), _e(r.get("when", ""))]
                for r in resumes if isinstance(r, dict)]
        configuration += "<h3>Resumed</h3>" + _html_table(["at update", "changes", "when"], rows, {0})
    body["configuration"] = configuration
    return body


def render_html(summary: RunSummary, figure_png: bytes | None) -> str:
    """The whole report page: inline CSS, the figure as a data: URI, no external resources, no scripts."""
    cards = "".join(f'<div class="card"><div class="label">{_e(label)}</div><div class="value">{_e(value)}</div>'
                    f'<div class="detail">{_e(detail)}</div></div>' for label, value, detail in headline(summary))
    body = _html_sections(summary, figure_png)
    present = [(anchor, title) for anchor, title in SECTIONS if anchor in body]
    nav = "".join(f'<a href="#{anchor}">{_e(title)}</a>' for anchor, title in present)
    sections = "\n".join(f'<section id="{anchor}"><h2>{_e(title)}</h2>\n{body[anchor]}</section>'
                         for anchor, title in present)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>textgen run {_e(summary.name)}</title>
<style>{STYLE}</style>
</head>
<body>
<header><div class="wrap">
<h1>textgen run <span class="mono">{_e(summary.name)}</span></h1>
<p class="sub">{_e(subtitle(summary))}</p>
<div class="cards">{cards}</div>
</div></header>
<nav><div class="wrap">{nav}</div></nav>
<main class="wrap">
{sections}
</main>
</body>
</html>
"""
