"""The figures of a zh report: Chinese text, drawn in a CJK font that has every glyph.

Checked without OCR: each figure is caught just before it is saved, and its Text objects
tell what string matplotlib was handed and which font family it resolves to; the font's
character map then shows that no character would be drawn as an empty box."""

from __future__ import annotations

import os
import re
from functools import lru_cache

import pytest
from test_report_data import planted_search, report_of

from tune_gpt.report import build_report, figures

HAN = re.compile(r"[\u4e00-\u9fff]")


def cjk_font_or_skip() -> str:
    font = figures._cjk_font()
    if font is None:
        if os.environ.get("CI"):  # .ci/run installs fonts-noto-cjk: missing there is a failure
            pytest.fail("no CJK font in CI: .ci/run should have installed fonts-noto-cjk")
        pytest.skip("no CJK font installed (Debian/Ubuntu: apt-get install fonts-noto-cjk)")
    return font


def drawn_figures(monkeypatch, lang: str) -> dict[str, object]:
    """{file name: matplotlib Figure} of the planted search's report, caught in _png."""
    caught: list[object] = []
    real = figures._png

    def keep(fig, lang):
        caught.append(fig)
        return real(fig, lang)

    monkeypatch.setattr(figures, "_png", keep)
    report = build_report(*planted_search(), lang=lang)
    assert len(caught) == len(report.figures) == 4
    return dict(zip(report.figures, caught))  # make_figures draws them in this order


@lru_cache(maxsize=None)
def glyphs(family: tuple[str, ...]) -> frozenset[int]:
    """Code points the fonts of a family list can draw (matplotlib falls back along it)."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    out: set[int] = set()
    for name in family:
        path = font_manager.findfont(font_manager.FontProperties(family=name))
        out |= set(FT2Font(path).get_charmap())
    return frozenset(out)


def test_zh_figures_have_chinese_labels_in_a_cjk_font(monkeypatch):
    font = cjk_font_or_skip()
    from matplotlib.text import Text

    for name, fig in drawn_figures(monkeypatch, "zh").items():
        ax = fig.axes[0]
        labels = [ax.title, ax.xaxis.label, ax.yaxis.label]
        legend = ax.get_legend()
        entries = legend.get_texts() if legend else []
        if name in ("curves.png", "pareto.png"):
            assert any(HAN.search(t.get_text()) for t in entries), name
        for t in labels:
            assert HAN.search(t.get_text()), (name, t.get_text())
        for t in labels + list(entries):
            assert t.get_fontname() == font and t.get_fontfamily()[0] == font, (name, t.get_text())
        for t in fig.findobj(Text):  # every string on the figure, ticks and colorbar included
            missing = {c for c in t.get_text() if not c.isspace() and ord(c) not in glyphs(tuple(t.get_fontfamily()))}
            assert not missing, (name, t.get_text(), missing)


def test_zh_report_without_a_cjk_font_has_english_figures_and_says_why(monkeypatch):
    monkeypatch.setattr(figures, "_cjk_font", lambda: None)
    seen: list[str] = []

    def make(res, found, lang):
        seen.append(lang)
        return {"curves.png": b""}

    monkeypatch.setattr("tune_gpt.report.build.make_figures", make)
    md = build_report(*planted_search(), lang="zh").markdown
    assert seen == ["en"]
    title, note = md.split("\n\n")[:2]
    assert title.startswith("# ") and note.startswith("> 图中文字为英文") and "fonts-noto-cjk" in note
    assert md.count("fonts-noto-cjk") == 1


def test_no_font_note_when_the_figures_match_the_report(monkeypatch):
    monkeypatch.setattr("tune_gpt.report.build.make_figures", lambda *a: {"curves.png": b""})
    monkeypatch.setattr(figures, "_cjk_font", lambda: "Noto Sans CJK SC")
    assert "fonts-noto-cjk" not in build_report(*planted_search(), lang="zh").markdown
    assert "fonts-noto-cjk" not in report_of("planted", "en", figures=False).markdown


def test_a_font_installed_after_matplotlibs_cache_is_found(monkeypatch):
    """matplotlib's cached font list predates an apt-get install: one rescan finds it."""
    cjk_font_or_skip()
    from matplotlib import font_manager

    fm = font_manager.fontManager
    files = {f.fname for f in fm.ttflist if f.name in figures.CJK_FONTS}
    stale = [f for f in fm.ttflist if f.fname not in files]  # the list cached before the install
    monkeypatch.setattr(fm, "ttflist", stale)
    monkeypatch.setattr(figures, "_rescanned", True)
    assert figures._cjk_font() is None  # the cached list alone: no CJK font in it
    monkeypatch.setattr(figures, "_rescanned", False)
    assert figures._cjk_font() in figures.CJK_FONTS and figures._rescanned
