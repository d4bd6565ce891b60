"""The HTML report page: one self-contained file that works offline and from a file:// URL.

plotly.js is written into the page once (with the first figure); every other figure is a
``Plotly.newPlot`` call on it. Nothing is fetched from the network.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from search.report.figures import Figure

__all__ = ["Table", "html_page"]


@dataclass(frozen=True)
class Table:
    caption: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    row_classes: tuple[str, ...]  # one per row, e.g. "pruned"
    numeric: frozenset[int] = frozenset()  # columns set right-aligned
    nowrap: frozenset[int] = frozenset()  # columns kept on one line

_STYLE = """
:root { --ink: #1d2430; --muted: #5b6576; --line: #dde2ea; --accent: #1f77b4; }
* { box-sizing: border-box; }
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       max-width: 72rem; margin: 2rem auto; padding: 0 1.25rem; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 .5rem; padding-bottom: .25rem;
     border-bottom: 1px solid var(--line); }
h3 { font-size: 1rem; margin: 1.25rem 0 .25rem; color: var(--muted); font-weight: 600; }
ul { margin: .25rem 0; padding-left: 1.25rem; }
li { margin: .15rem 0; }
.subtitle { color: var(--muted); margin: 0 0 1rem; }
nav { font-size: .9rem; color: var(--muted); }
nav a { color: var(--accent); text-decoration: none; margin-right: .75rem; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; margin: .5rem 0; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { background: #f4f6f9; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.pruned td { color: var(--muted); }
.note { color: var(--muted); font-size: .9rem; }
pre { background: #f4f6f9; padding: .75rem 1rem; overflow-x: auto; border-radius: 4px;
      font-size: .85rem; }
.figure { border: 1px solid var(--line); border-radius: 4px; padding: .25rem; margin: .5rem 0;
          overflow-x: auto; }
td.state { white-space: nowrap; }
"""


def html_page(title: str, subtitle: str, sections: Sequence[tuple[str, Sequence[str]]],
              table: Table, next_yaml: str, figures: Sequence[Figure]) -> str:
    import plotly.io as pio

    body = [f"<h1>{_e(title)}</h1>", f"<p class=\"subtitle\">{_e(subtitle)}</p>",
            "<nav>" + "".join(f"<a href=\"#{_anchor(h)}\">{_e(h)}</a>"
                              for h in [s[0] for s in sections] + ["Top trials", "Plots",
                                                                   "Next round spec"])
            + "</nav>"]
    for heading, lines in sections:
        body.append(f"<h2 id=\"{_anchor(heading)}\">{_e(heading)}</h2><ul>"
                    + "".join(f"<li>{_e(line)}</li>" for line in lines) + "</ul>")
    body.append(f"<h2 id=\"{_anchor('Top trials')}\">Top trials</h2>"
                f"<p class=\"note\">{_e(table.caption)}</p><table><thead><tr>"
                + "".join(f"<th>{_e(h)}</th>" for h in table.header) + "</tr></thead><tbody>")
    for row, cls in zip(table.rows, table.row_classes, strict=True):
        cells = "".join(f"<td class=\"{_cell_class(table, i)}\">{_e(c)}</td>"
                        for i, c in enumerate(row))
        body.append(f"<tr class=\"{_e(cls)}\">{cells}</tr>")
    body.append("</tbody></table>")
    body.append(f"<h2 id=\"{_anchor('Plots')}\">Plots</h2>")
    first = True
    for fig in figures:
        body.append(f"<h3>{_e(fig.caption)}</h3>")
        if fig.figure is None:
            continue
        body.append("<div class=\"figure\">" + pio.to_html(
            fig.figure, full_html=False, include_plotlyjs=first, div_id=f"figure-{fig.name}",
            config={"displaylogo": False, "responsive": True}) + "</div>")
        first = False
    body.append(f"<h2 id=\"{_anchor('Next round spec')}\">Next round spec</h2>"
                f"<pre>{_e(next_yaml)}</pre>")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _cell_class(table: Table, column: int) -> str:
    return " ".join(n for n, cols in (("num", table.numeric), ("state", table.nowrap))
                    if column in cols)


def _e(text: str) -> str:
    return html.escape(str(text))


def _anchor(heading: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in heading.lower()).strip("-")
