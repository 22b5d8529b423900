"""One Pareto front drawn twice: a PNG (matplotlib) and an interactive HTML page (plotly).

Both draw the same points, baseline and axis (a log axis with the same ticks
and short labels where parameter counts span more than 20x); degenerate trials
are marked and kept off the front. :func:`write_html` writes any plotly figure
so that it shares plotly.min.js with its folder and says so where that file
is missing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lungsearch.report.frames import plotted, short

DEGENERATE_LABEL = "degenerate (val_acc <= majority rate, or AUC <= 0.5): off the front"


def log_x(df: pd.DataFrame, cost: str) -> bool:
    """Parameter counts spanning more than 20x are drawn on a log axis (the same in the PNG and the HTML)."""
    values = df[cost].dropna()
    return cost == "param_count" and len(values) > 0 and values.max() / max(values.min(), 1) > 20


def count_label(value: float, _pos=None) -> str:
    """``20k``, ``1.5M``: tick labels short enough not to run into each other."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def log_ticks(low: float, high: float) -> list[float]:
    """1, 2 and 5 times each power of ten that falls in [low, high] (only the powers beyond 3 decades), one tick
    below and above: the same ticks in the PNG and the HTML."""
    subs = (1.0, 2.0, 5.0) if np.log10(high / max(low, 1)) < 3 else (1.0,)
    ticks = [m * 10.0**e for e in range(int(np.floor(np.log10(max(low, 1)))), int(np.ceil(np.log10(high))) + 1) for m in subs]
    inside = [t for t in ticks if low <= t <= high]
    below = [t for t in ticks if t < low][-1:]
    above = [t for t in ticks if t > high][:1]
    return below + inside + above


def front_png(df, front, y, cost, path, title, y_label, x_label, baseline=None) -> str:
    """The front of ``y`` (max) vs ``cost`` (min) over every completed trial of ``df``, with ``baseline`` (value, label) dashed, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    fig, ax = plt.subplots(figsize=(7, 5.2), dpi=120)
    done = plotted(df, y, cost)
    bad = done["degenerate"] if "degenerate" in done else pd.Series(False, index=done.index)
    ax.scatter(done[~bad][cost], done[~bad][y], color="0.7", label="completed trials")
    if bad.any():
        ax.scatter(done[bad][cost], done[bad][y], color="tab:orange", marker="x", s=60, zorder=3,
                   label=DEGENERATE_LABEL)
        for _, r in done[bad].iterrows():
            ax.annotate(f"#{int(r['trial'])}", (r[cost], r[y]), textcoords="offset points", xytext=(4, 4), fontsize=8, color="tab:orange")
    if baseline is not None:
        ax.axhline(baseline[0], color="tab:orange", ls="--", lw=1, label=baseline[1])
    if not front.empty:
        ax.step(front[cost], front[y], where="post", color="tab:red", alpha=0.6)
        ax.scatter(front[cost], front[y], color="tab:red", label="Pareto front", zorder=3)
    for _, r in front.iterrows():
        ax.annotate(f"#{int(r['trial'])}", (r[cost], r[y]), textcoords="offset points", xytext=(4, -10), fontsize=8)
    if log_x(done, cost):
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(log_ticks(done[cost].min(), done[cost].max())))
        ax.xaxis.set_major_formatter(FuncFormatter(count_label))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(done[cost].min() / 1.25, done[cost].max() * 1.25)
    elif cost == "param_count":
        ax.xaxis.set_major_formatter(FuncFormatter(count_label))
    ax.set_xlabel(x_label + (" (log scale)" if log_x(done, cost) else ""))
    ax.set_ylabel(y_label)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8, frameon=False)  # below: never over a point
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def front_html(df, front, y, cost, path, title, y_label, x_label, baseline=None) -> str:
    """The same front as :func:`front_png`, as an interactive page whose points show each trial's params."""
    import plotly.graph_objects as go

    done = plotted(df, y, cost)
    bad = done["degenerate"] if "degenerate" in done else pd.Series(False, index=done.index)
    params = [c for c in df.columns if c.startswith("params_")]

    def hover(frame):
        return [f"trial #{int(r['trial'])}<br>{y}={r[y]:.4f}<br>{cost}={r[cost]:,.1f}<br>"
                + "<br>".join(f"{c[7:]}={short(r[c])}" for c in params if pd.notna(r[c])) for _, r in frame.iterrows()]

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=done[~bad][cost], y=done[~bad][y], mode="markers", name="completed trials",
                             marker={"color": "lightgray", "size": 9}, hovertext=hover(done[~bad]), hoverinfo="text"))
    if bad.any():
        fig.add_trace(go.Scatter(x=done[bad][cost], y=done[bad][y], mode="markers", name=DEGENERATE_LABEL,
                                 marker={"color": "darkorange", "size": 11, "symbol": "x"}, hovertext=hover(done[bad]), hoverinfo="text"))
    fig.add_trace(go.Scatter(x=front[cost], y=front[y], mode="lines+markers", line_shape="hv", name="Pareto front",
                             marker={"color": "crimson", "size": 11}, hovertext=hover(front), hoverinfo="text"))
    if baseline is not None:
        fig.add_hline(y=baseline[0], line_dash="dash", line_color="darkorange", annotation_text=baseline[1],
                      annotation_position="bottom right")
    fig.update_layout(title=title, xaxis_title=x_label, yaxis_title=y_label, template="plotly_white")
    if log_x(done, cost):
        ticks = log_ticks(done[cost].min(), done[cost].max())
        fig.update_xaxes(type="log", title=x_label + " (log scale)", tickvals=ticks, ticktext=[count_label(v) for v in ticks])
    write_html(fig, path)
    return path


NEEDS_PLOTLY = ("<p id=\"lungsearch-needs-plotly\" style=\"font:15px sans-serif;color:#a00;margin:1em\">This interactive figure "
                "loads plotly.min.js from the report folder it was written to, and that file is not beside it here. Copy the "
                "whole folder, or open index.html: it holds every figure of the report in one file.</p>")


def write_html(fig, path: str) -> None:
    """An interactive figure that shares plotly.min.js with its folder (4.8 MB once, not per file), and says so
    in the page where that file is missing instead of showing a blank page."""
    fig.write_html(path, include_plotlyjs="directory")
    with open(path, encoding="utf-8") as fh:
        page = fh.read()
    page = page.replace("<body>", "<body>\n" + NEEDS_PLOTLY, 1).replace(
        "</body>", "<script>if (window.Plotly) document.getElementById('lungsearch-needs-plotly').remove();</script>\n</body>", 1)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(page)
