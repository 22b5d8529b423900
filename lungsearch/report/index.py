"""index.html of a report: the summary, the trials table, every front and Optuna plot in one file that works alone.

plotly.js and the PNGs are embedded, so the page can be mailed or moved by
itself; it also links every separate file the report wrote.
"""

from __future__ import annotations

import os

from lungsearch.report.frames import ACCURACY_NOTE
from search.overview import metric_name


def write_index(study, out_dir, text, notes, df, fronts, figures, written) -> str:
    """index.html: every figure and table of the report in one file that works alone (plotly.js and the PNGs
    are inside it), with links to the separate files."""
    import base64
    import html

    from plotly.offline import get_plotlyjs

    def link(path):
        name = os.path.basename(path)
        return f'<a href="{html.escape(name)}">{html.escape(name)}</a>'

    parts = [f"<h1>lungsearch report: {html.escape(study.study_name)}</h1>", f"<pre>{html.escape(text)}</pre>"]
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    shown = [c for c in ("trial", "state", "value", "val_accuracy", "train_seconds", "epochs", "param_count", "kept_model",
                         "degenerate", "warm_start") if c in df]
    parts.append(f"<h2>Trials</h2><p>Every trial with every parameter: {link(os.path.join(out_dir, 'trials.csv'))}. "
                 f"{html.escape(ACCURACY_NOTE)}.</p>")
    parts.append(df[shown].rename(columns={"value": metric_name(study), "val_accuracy": "val_acc (argmax)"})
                 .to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}", border=0, classes="trials"))
    parts.append("<h2>Pareto fronts</h2><p>A trial whose validation accuracy (argmax) is at or below the majority-class "
                 "rate, or whose AUC is at or below 0.5, is degenerate: marked x and never on a front. The dashed line is the "
                 "baseline of each plot's axis.</p>")
    for f in fronts:
        files = " | ".join(link(f[k]) for k in ("csv", "png", "html") if f.get(k))
        parts.append(f"<h3>{html.escape(f['title'])}</h3><p>{files}</p>")
        if f.get("png"):
            with open(f["png"], "rb") as fh:
                data = base64.b64encode(fh.read()).decode("ascii")
            parts.append(f'<img alt="{html.escape(f["stem"])}" src="data:image/png;base64,{data}">')
        else:
            parts.append("<p>(no completed trial records both values)</p>")
    if figures:
        parts.append("<h2>Optuna plots</h2>")
    for name, path, fig in figures:
        parts.append(f"<h3>{html.escape(name.replace('_', ' '))}</h3><p>{link(path)}</p>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
    parts.append("<h2>Files</h2><p>The separate .html files load plotly.min.js from this folder: copy the whole folder to "
                 "keep them working. This index.html works on its own.</p><ul>"
                 + "".join(f"<li>{link(p)}</li>" for p in written) + "</ul>")
    script = f"<script>{get_plotlyjs()}</script>" if figures else ""
    page = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
            f"<title>lungsearch report: {html.escape(study.study_name)}</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
            "pre{background:#f6f6f6;padding:1em;overflow-x:auto}.note{background:#fff4e0;padding:.6em}"
            "table.trials{border-collapse:collapse;font-size:13px}table.trials td,table.trials th{padding:2px 8px;"
            "border-bottom:1px solid #ddd;text-align:right}img{max-width:100%}</style>"
            f"{script}</head><body>{''.join(parts)}</body></html>")
    path = os.path.join(out_dir, "index.html")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(page)
    return path
