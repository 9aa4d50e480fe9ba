"""The report's figures, each a function returning PNG bytes (no files, no pyplot state).

matplotlib is imported inside the functions; figures are drawn on an Agg canvas. Labels
come from the catalogue; Chinese labels are used only when a CJK font is installed (else
matplotlib would draw empty boxes), otherwise the figures fall back to English and the
report says why in one line (catalogue key `fig.nofont`).

The font: CI installs Debian's `fonts-noto-cjk` (.ci/run); users install it the same way
(or have one already: macOS's PingFang SC, Windows's Microsoft YaHei are in CJK_FONTS).
"""

from __future__ import annotations

import io
from typing import Any, Callable

import numpy as np
import pandas as pd

from tune_gpt.report import fmt
from tune_gpt.report.i18n import translator
from tune_gpt.settings import SchedulerSettings

# Families known to cover simplified Chinese, in order of preference (sans first: the
# figures are otherwise drawn in DejaVu Sans).
CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Source Han Sans CN",
             "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "SimHei", "Microsoft YaHei",
             "PingFang SC", "Heiti SC", "Noto Serif CJK SC", "Source Han Serif SC",
             "AR PL UMing CN", "Noto Sans CJK JP", "Noto Sans CJK TC")

_rescanned = False


def _cjk_font() -> str | None:
    """The first CJK_FONTS family matplotlib can use, or None.

    matplotlib reads its font list from a cache (~/.cache/matplotlib/fontlist-*.json) made
    on first import, so a font installed after that is invisible to it. When no known
    family is in that list, the system font folders are scanned once per process (fc-list,
    ~0.3 s) and the files matplotlib has not seen are added; the cache file is left alone."""
    global _rescanned
    from matplotlib import font_manager

    def known() -> str | None:
        names = {f.name for f in font_manager.fontManager.ttflist}
        return next((n for n in CJK_FONTS if n in names), None)

    found = known()
    if found or _rescanned:
        return found
    _rescanned = True
    seen = {f.fname for f in font_manager.fontManager.ttflist}
    for path in font_manager.findSystemFonts():
        if path not in seen:
            try:
                font_manager.fontManager.addfont(path)
            except (OSError, RuntimeError, ValueError):  # a file FreeType cannot read
                continue
    return known()


def figure_language(lang: str) -> str:
    """The language figures can be drawn in: zh only with a CJK font available."""
    return "zh" if lang == "zh" and _cjk_font() else "en"


def _figure(w: float = 8.0, h: float = 4.8) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any, lang: str) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _rc(lang: str) -> dict[str, Any]:
    """zh: the CJK family itself as font.family (not only first in font.sans-serif), so each
    Text keeps it after the rc context ends; DejaVu Sans draws any glyph it lacks."""
    font = _cjk_font() if lang == "zh" else None
    return {"font.family": [font, "DejaVu Sans"], "axes.unicode_minus": False} if font else {}


def _empty(ax: Any, T: Callable[..., str]) -> None:
    ax.text(0.5, 0.5, T("fig.empty"), ha="center", va="center", transform=ax.transAxes, fontsize=14)


def _token_formatter() -> Any:
    """Tick labels 0, 500k, 1M, 2.5M instead of matplotlib's 1e7 offset."""
    from matplotlib.ticker import FuncFormatter

    def label(x: float, _pos: int) -> str:
        if abs(x) >= 1e9:
            return f"{x / 1e9:g}B"
        if abs(x) >= 1e6:
            return f"{x / 1e6:g}M"
        if abs(x) >= 1e3:
            return f"{x / 1e3:g}k"
        return f"{x:g}"

    return FuncFormatter(label)


def rungs(scheduler: SchedulerSettings, x_max: float) -> tuple[str, list[float]]:
    """(axis, rung positions): ASHA's rungs (SchedulerSettings.rungs) on the axis that
    matches the scheduler's time_attr ('tokens' or 'iter'); for time_s, flops or no ASHA,
    ('tokens', []). `scheduler` is meta.scheduler (max_t as the search ran it; `x_max`
    stands in for a meta.json of an older version that left it out)."""
    attr = scheduler.time_attr or "tokens"
    if scheduler.type != "asha" or attr not in ("tokens", "iter"):
        return "tokens", []
    return attr, scheduler.rungs(x_max)


def curves_png(curves: dict[str, pd.DataFrame], stopped: set[str],
               scheduler: SchedulerSettings, lang: str) -> bytes:
    """val_loss against tokens (or iterations, when ASHA counts those) per trial, with the
    rungs of the search's scheduler (meta.scheduler)."""
    import matplotlib as mpl

    T = translator(lang)
    col = "iter" if scheduler.time_attr == "iter" else "tokens"
    x_max = max((float(c[col].max()) for c in curves.values() if len(c)), default=0.0)
    axis, marks = rungs(scheduler, x_max)
    col = "iter" if axis == "iter" else "tokens"
    with mpl.rc_context(_rc(lang)):
        fig = _figure()
        ax = fig.subplots()
        ys = []
        colors = mpl.colormaps["tab10"]
        n_top = 0
        labelled_stop = False
        for tid, c in curves.items():
            c = c[np.isfinite(c["val_loss"])]
            if c.empty:
                continue
            ys += list(c["val_loss"])
            if tid in stopped:
                ax.plot(c[col], c["val_loss"], ls="--", lw=1.2, color="0.55", marker=".",
                        label=None if labelled_stop else T("fig.curves.stopped"))
                labelled_stop = True
            else:
                ax.plot(c[col], c["val_loss"], lw=2, marker="o", ms=3, color=colors(n_top % 10),
                        label=f"{tid} ({fmt.loss(c['val_loss'].min())})")
                n_top += 1
        if not ys:
            _empty(ax, T)
        else:
            lo, hi = min(ys), float(np.percentile(ys, 98))
            pad = 0.05 * max(hi - lo, 0.05)
            ax.set_ylim(lo - pad, hi + pad)
            for i, r in enumerate(marks):
                ax.axvline(r, color="tab:red", ls=":", lw=1)
                ax.text(r, 0.98, f"r{i}", transform=ax.get_xaxis_transform(), color="tab:red",
                        va="top", ha="center", fontsize=8,
                        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
            if marks:
                ax.plot([], [], color="tab:red", ls=":", label=T("fig.curves.rung"))
            ax.legend(fontsize=8, loc="upper right")
            if col == "tokens":
                ax.xaxis.set_major_formatter(_token_formatter())
        ax.set_title(T("fig.curves.title"))
        ax.set_xlabel(T("fig.curves.x.iter") if col == "iter" else T("fig.curves.x.tokens"))
        ax.set_ylabel(T("fig.curves.y"))
        ax.grid(alpha=0.3)
        return _png(fig, lang)


def importances_png(importances: dict[str, float], fallback: bool, lang: str) -> bytes:
    import matplotlib as mpl

    T = translator(lang)
    with mpl.rc_context(_rc(lang)):
        items = sorted(importances.items(), key=lambda kv: kv[1])
        fig = _figure(7, 0.9 + 0.45 * max(3, len(items)))
        ax = fig.subplots()
        if items:
            names, vals = zip(*items)
            bars = ax.barh(names, vals, color="tab:blue")
            ax.bar_label(bars, labels=[f"{v:.2f}" for v in vals], padding=3, fontsize=9)
            ax.set_xlim(0, max(vals) * 1.2 or 1)
        else:
            _empty(ax, T)
        ax.set_title(T("fig.imp.title.fallback") if fallback else T("fig.imp.title"))
        ax.set_xlabel(T("fig.imp.x.fallback") if fallback else T("fig.imp.x"))
        ax.set_ylabel(T("fig.imp.y"))
        ax.grid(axis="x", alpha=0.3)
        return _png(fig, lang)


def pareto_png(points: pd.DataFrame, front: list[str], budget: float | None, lang: str) -> bytes:
    """points: index trial_id, columns tokens_per_s and val_loss."""
    import matplotlib as mpl

    T = translator(lang)
    with mpl.rc_context(_rc(lang)):
        fig = _figure()
        ax = fig.subplots()
        p = points[np.isfinite(points["tokens_per_s"]) & np.isfinite(points["val_loss"])]
        if p.empty:
            _empty(ax, T)
        else:
            rest = p.drop(index=[i for i in front if i in p.index])
            ax.scatter(rest["tokens_per_s"], rest["val_loss"], s=30, color="0.6",
                       label=T("fig.pareto.other"))
            f = p.loc[[i for i in front if i in p.index]].sort_values("tokens_per_s")
            ax.plot(f["tokens_per_s"], f["val_loss"], "-o", color="tab:red", ms=7,
                    label=T("fig.pareto.front"))
            for tid, row in f.iterrows():
                ax.annotate(str(tid), (row["tokens_per_s"], row["val_loss"]), fontsize=8,
                            xytext=(4, 4), textcoords="offset points")
            if p["tokens_per_s"].max() / max(p["tokens_per_s"].min(), 1e-9) > 20:
                ax.set_xscale("log")
            ax.xaxis.set_major_formatter(_token_formatter())
            ax.legend(fontsize=9)
        ax.set_title(T("fig.pareto.title", budget=fmt.tokens(budget)))
        ax.set_xlabel(T("fig.pareto.x"))
        ax.set_ylabel(T("fig.pareto.y"))
        ax.grid(alpha=0.3)
        return _png(fig, lang)


def parallel_png(table: pd.DataFrame, log_knobs: set[str], value: pd.Series,
                 budget: float | None, lang: str) -> bytes:
    """Parallel coordinates: one vertical axis per tuned knob (scaled to its range, log for
    log-scale knobs) and a last one for val_loss itself, as Optuna draws it; one line per
    trial coloured by its val_loss."""
    import matplotlib as mpl
    from matplotlib.colors import Normalize

    from tune_gpt.report.stats import numeric

    T = translator(lang)
    with mpl.rc_context(_rc(lang)):
        fig = _figure(9, 5)
        ax = fig.subplots()
        v = pd.to_numeric(value, errors="coerce")
        ok = v.index[np.isfinite(v)]
        cols = [k for k in table.columns if numeric(table.loc[ok, k]).notna().any()]
        table = table.assign(val_loss=v) if cols else table
        cols = cols + ["val_loss"] if cols else cols
        if len(ok) == 0 or not cols:
            _empty(ax, T)
        else:
            scaled, bounds = {}, {}
            for k in cols:
                x = numeric(table.loc[ok, k])
                if k in log_knobs and (x > 0).all():
                    x = np.log10(x)
                lo, hi = float(x.min()), float(x.max())
                scaled[k] = (x - lo) / (hi - lo) if hi > lo else x * 0 + 0.5
                raw = numeric(table.loc[ok, k])
                bounds[k] = (fmt.value(k, float(raw.min())), fmt.value(k, float(raw.max())))
            vmin, vmax = float(v[ok].min()), float(v[ok].max())
            norm = Normalize(vmin, vmax if vmax > vmin else vmin + 1e-9)
            cmap = mpl.colormaps["viridis_r"]
            xs = range(len(cols))
            for tid in sorted(ok, key=lambda i: -v[i]):  # best drawn last, on top
                ax.plot(xs, [scaled[k][tid] for k in cols], color=cmap(norm(v[tid])), lw=1.8,
                        alpha=0.85, marker="o", ms=3)
            for i, k in enumerate(cols):
                ax.axvline(i, color="0.3", lw=0.8)
                box = {"facecolor": "white", "edgecolor": "0.7", "pad": 1.5}
                ax.text(i, -0.06, bounds[k][0], ha="center", va="top", fontsize=8, bbox=box)
                ax.text(i, 1.06, bounds[k][1], ha="center", va="bottom", fontsize=8, bbox=box)
            ax.set_xticks(list(xs), cols, rotation=20)
            ax.set_ylim(-0.15, 1.15)
            ax.set_yticks([])
            sm = mpl.cm.ScalarMappable(norm=norm, cmap=cmap)
            fig.colorbar(sm, ax=ax, label=T("fig.par.color"))
        ax.set_title(T("fig.par.title", budget=fmt.tokens(budget)))
        ax.set_xlabel(T("fig.par.x"))
        ax.set_ylabel(T("fig.par.y"))
        return _png(fig, lang)
