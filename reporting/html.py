"""One self-contained HTML page (inline CSS, no script, no server): matrix and coverage."""
from __future__ import annotations

from html import escape

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ccc;padding:2px 6px;vertical-align:top}
th{background:#f3f3f3;text-align:left;font-weight:600}
td.n{text-align:center;font-family:ui-monospace,monospace;white-space:nowrap}
td.pass{background:#dff3df}td.fail{background:#f8d4d4}td.dev{background:#fbefc5}
td.none{color:#aaa}td.gap{background:#eee;color:#666}
.small{color:#666;font-size:.9em}code{font-family:ui-monospace,monospace}
"""


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{CSS}</style></head>\n"
            f"<body><h1>{escape(title)}</h1>\n{body}\n</body></html>\n")


def table(header: list[str], rows: list[list[tuple[str, str]]]) -> str:
    """``rows``: cells as (text, css class); text is escaped here."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(
        f"<td class=\"{cls}\">{escape(text)}</td>" if cls else f"<td>{escape(text)}</td>"
        for text, cls in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"
