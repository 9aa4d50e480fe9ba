"""The catalogues (tune_gpt/report/locales/*.yaml): the same keys and placeholders in every
language, and shipped with the package."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from string import Formatter

import pytest

from tune_gpt.errors import UserError
from tune_gpt.report import i18n
from tune_gpt.report.i18n import LANGS, catalogue, translator

ROOT = Path(__file__).parents[1]
LOCALES = Path(i18n.__file__).parent / "locales"


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in Formatter().parse(text) if name is not None}


def test_every_language_has_a_yaml_file_and_nothing_else_is_there():
    assert sorted(p.stem for p in LOCALES.glob("*.yaml")) == sorted(LANGS)


def test_catalogues_have_the_same_keys_and_placeholders():
    en = catalogue("en")
    for lang in LANGS:
        cat = catalogue(lang)
        assert cat.keys() == en.keys(), lang
        for key, text in cat.items():
            assert isinstance(text, str) and text.strip(), (lang, key)
            assert placeholders(text) == placeholders(en[key]), (lang, key)


def test_translator_fills_placeholders_and_reads_each_file_once():
    assert translator("en")("title", name="demo") == "Tuning report: demo"
    assert translator("zh")("title", name="demo") == "调优报告：demo"
    assert catalogue("zh") is catalogue("zh")  # cached


def test_unknown_language_is_a_user_error():
    with pytest.raises(UserError, match="--lang must be one of en, zh"):
        translator("fr")


def test_the_locales_are_package_data():
    """A non-editable install has them only if pyproject's package-data names them."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["tune_gpt"]
    for path in LOCALES.glob("*.yaml"):
        rel = path.relative_to(ROOT / "tune_gpt").as_posix()
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), rel
