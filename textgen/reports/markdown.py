"""The report in Markdown, the same sections as the HTML page, the figure as a file beside it."""

from __future__ import annotations

from textgen.loaders.base import END_OF_DOCUMENT
from textgen.reports.summary import (
    SECTIONS,
    RunSummary,
    best_sentence,
    caption,
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


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(head: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    align = ["---:" if i in numeric else "---" for i in range(len(head))]
    lines = ["| " + " | ".join(_md_cell(h) for h in head) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _md_code(text: str) -> str:
    """A fenced block holding ``text`` verbatim: the fence is longer than any run of backticks inside."""
    longest, run = 0, 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}{'' if text.endswith(chr(10)) else chr(10)}{fence}"


def render_markdown(summary: RunSummary, figure_name: str | None) -> str:
    """The report in Markdown, the figure referenced as the relative file ``figure_name``."""
    parts = [f"# textgen run {summary.name}",
             subtitle(summary),
             _md_table(["measure", "value", "detail"], [[label, value, detail] for label, value, detail in headline(summary)])]
    titles = dict(SECTIONS)

    parts.append(f"## {titles['loss']}")
    if figure_name is not None:
        parts += [f"![Loss curves of {summary.name}]({figure_name})", f"*{caption(summary)}*"]
    else:
        parts.append("No metrics have been logged yet, so there is nothing to plot.")

    parts.append(f"## {titles['samples']}")
    if summary.samples:
        parts.append(f"{len(summary.samples)} samples of {summary.record.train.sample_length} characters, "
                     "drawn from the model as it was at each sampling point (temperature 1).")
        for row in summary.samples:
            parts.append(f"### Update {row['update']:,} · epoch {fmt(row.get('epoch'), '.2f')} · smooth loss "
                         f"{fmt(row.get('smooth_loss'), '.3f')}")
            parts.append(_md_code(visible(row.get("text", ""))))
    else:
        parts.append("No samples have been written yet.")

    parts += [f"## {titles['passage']}", best_sentence(summary)]
    if summary.passage is None:
        parts.append("best_passage.txt is written when training finishes; this run has not finished.")
    else:
        parts += [f"{len(summary.passage):,} characters sampled from the best model (temperature 1).",
                  _md_code(visible(summary.passage))]

    gradcheck = summary.record.extra.get("gradcheck")
    if isinstance(gradcheck, dict) and gradcheck:
        parts += [f"## {titles['gradcheck']}",
                  ("Largest relative error |ga − gn| / max(eps, |ga| + |gn|) between analytic and centred-difference "
                   "gradients, per parameter."),
                  _md_table(["parameter", "max relative error"],
                            [[f"`{name}`", fmt_error(error)] for name, error in gradcheck.items()], {1})]

    parts.append(f"## {titles['corpus']}")
    columns, rows, numeric = source_table(summary)
    parts.append(_md_table(columns, [[f"`{row[0]}`", *row[1:-1], f"`{row[-1][:12]}…`"] for row in rows], numeric))
    parts += ["### Totals", _md_table(["", ""], [[k, v] for k, v in corpus_totals(summary)], {1})]
    if summary.chars is not None:
        marker = f", {END_OF_DOCUMENT} the end-of-document marker (U+2403)" if END_OF_DOCUMENT in summary.chars else ""
        parts += [f"### {vocabulary_title(summary)}",
                  _md_code(" ".join(readable_token(c) for c in summary.chars)),
                  f"Escapes: \\n newline, \\t tab, ␣ space, U+XXXX an invisible character{marker}."]
    else:
        parts.append("vocab.json is missing.")

    parts.append(f"## {titles['configuration']}")
    parts.append(_md_table(["group", "setting", "value", "meaning"],
                           [[g, f"`{k}`", v, m] for g, k, v, m in config_rows(summary)]))
    resumes = summary.record.resumes
    if resumes:
        parts += ["### Resumed", _md_table(["at update", "changes", "when"],
                                           [[fmt(r.get("at_update"), ","), json_text(r.get("changes") or {}),
                                             str(r.get("when", ""))] for r in resumes if isinstance(r, dict)], {0})]
    return "\n\n".join(parts) + "\n"
