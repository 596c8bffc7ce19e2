"""The report's HTML pieces: page frame, style, sortable and filterable tables.

    page("title", body_html, root="../")
    table_html("videos", ["video", "events"], [[Cell("a.mp4"), Cell("3", 3)]], filter=True)

Tables sort on a header click (numbers by their value) and filter as one types, with a few
lines of inline script; without script they are plain tables. Nothing is fetched from the
network: every page works from a copied folder.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from html import escape

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;
 max-width:1100px}
h1{font-size:22px}
h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:13px}
td,th{padding:4px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:middle}
th{background:#f3f3f3}
table.sortable th{cursor:pointer;user-select:none}
th[data-dir=asc]::after{content:" \\25B2"}
th[data-dir=desc]::after{content:" \\25BC"}
.num{text-align:right;font-variant-numeric:tabular-nums}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.sw{display:inline-block;width:12px;height:10px;margin-right:4px;vertical-align:middle}
.warn{color:#b71c1c}
img.thumb{display:block;border:1px solid #ccc}
.strip{display:flex;flex-wrap:wrap;gap:4px}
.strip figure{margin:0;font-size:11px;color:#555;text-align:center}
.strip img{display:block;width:120px;border:1px solid #ccc}
p.boxes{font-size:12px;color:#444}
.missing{display:flex;align-items:center;justify-content:center;width:192px;height:108px;
 background:#eee;border:1px dashed #aaa;color:#666;font-size:12px;text-align:center}
nav{margin:8px 0 16px;font-size:14px}
nav a{margin-right:14px}
input.filter{margin:6px 0;padding:3px 6px;width:280px}
rect.event{fill:#e53935;fill-opacity:.18}
rect.event:hover{fill-opacity:.35}
rect.event:target{fill-opacity:.5;stroke:#b71c1c;stroke-width:2}
tr:target{background:#ffe0b2}
"""

SCRIPT = """<script>
for (const t of document.querySelectorAll('table.sortable'))
 t.tHead.querySelectorAll('th').forEach((th, i) => th.addEventListener('click', () => {
  const b = t.tBodies[0], asc = th.dataset.dir !== 'asc';
  t.tHead.querySelectorAll('th').forEach(h => delete h.dataset.dir);
  th.dataset.dir = asc ? 'asc' : 'desc';
  const k = r => {
   const c = r.cells[i], v = c.dataset.v ?? c.textContent.trim(), n = Number(v);
   return v !== '' && !isNaN(n) ? n : v;
  };
  const cmp = (p, q) => typeof p === typeof q ? (p < q ? -1 : p > q ? 1 : 0)
                                              : typeof p === 'number' ? -1 : 1;
  const rows = [...b.rows].filter(r => !r.classList.contains('detail'));
  const det = r => r.nextElementSibling?.classList.contains('detail') ? r.nextElementSibling : null;
  const pairs = rows.map(r => [r, det(r)]);
  pairs.sort((x, y) => cmp(k(x[0]), k(y[0])) * (asc ? 1 : -1))
   .forEach(([r, d]) => { b.appendChild(r); if (d) b.appendChild(d); });
 }));
for (const f of document.querySelectorAll('input.filter')) f.addEventListener('input', () => {
 const q = f.value.toLowerCase(), t = document.getElementById(f.dataset.table);
 let n = 0, prev = null;
 for (const r of t.tBodies[0].rows) {
  if (r.classList.contains('detail')) { r.hidden = prev.hidden; continue; }
  r.hidden = !r.textContent.toLowerCase().includes(q);
  n += !r.hidden;
  prev = r;
 }
 document.getElementById(f.dataset.table + '-count').textContent = n;
});
addEventListener('load', () => {
 const i = [...document.images];
 document.body.dataset.imagesShown = i.filter(x => x.complete && x.naturalWidth > 0).length
  + '/' + i.length;
});
</script>"""


@dataclass(frozen=True)
class Cell:
    html: str  # already escaped
    sort: float | str | None = None  # the value the column sorts by, if not the text
    num: bool = False


def text(value: object) -> Cell:
    return Cell(escape(str(value)))


def num(value: float | int | None, fmt: str = "{:.3f}") -> Cell:
    if value is None:
        return Cell("", "", num=True)
    return Cell(fmt.format(value), value, num=True)


def clock(t: dt.datetime | None) -> str:
    return "" if t is None else t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def table_html(table_id: str, headers: list[str], rows: list[list[Cell]], *,
               row_ids: list[str] | None = None, filter_label: str | None = None,
               details: list[str | None] | None = None) -> str:
    """A sortable table (and a filter box above it when ``filter_label`` is given).

    ``details[i]`` (HTML), when given, is a full-width row under row ``i`` that sorting and
    filtering keep with it (an event's strip of frames)."""
    out = []
    if filter_label:
        out.append(f"<div><input class='filter' data-table='{table_id}' type='search' "
                   f"placeholder='{escape(filter_label)}'> <small><span id='{table_id}-count'>"
                   f"{len(rows)}</span> of {len(rows)} shown</small></div>")
    out.append(f"<table class='sortable' id='{table_id}'><thead><tr>"
               + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr></thead><tbody>")
    for i, row in enumerate(rows):
        rid = f" id='{row_ids[i]}'" if row_ids else ""
        cells = "".join(
            "<td" + (" class='num'" if c.num else "")
            + (f" data-v='{escape(str(c.sort))}'" if c.sort is not None else "")
            + f">{c.html}</td>" for c in row)
        out.append(f"<tr{rid}>{cells}</tr>")
        if details and details[i]:
            out.append(f"<tr class='detail'><td colspan='{len(headers)}'>{details[i]}</td></tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def kv_table(rows: list[tuple[str, str]]) -> str:
    """A two-column table of names and values (summary, options)."""
    return ("<table>" + "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>"
                                for k, v in rows) + "</table>")


def page(title: str, body: list[str]) -> str:
    return "\n".join([
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>", *body, SCRIPT,
        "</body></html>"])
