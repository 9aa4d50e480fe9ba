"""Every sentence the report writes, in English and in Chinese: the catalogues are data,
`locales/en.yaml` and `locales/zh.yaml` (key -> text, placeholders in {braces}).

The Chinese uses the beginner's guide's own terms (显存, 梯度累积, 过拟合, 训练太慢, 学习率,
混合精度, 权重衰减 ...). Knob names stay as they are in both languages: they are what the
user types. A missing key in one language is a bug (tests compare the key sets).

    T = translator("zh");  T("oom.none")
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Callable

from tune_gpt.errors import UserError

LANGS = ("en", "zh")


@lru_cache(maxsize=None)
def catalogue(lang: str) -> dict[str, str]:
    """The catalogue of `lang` (one of LANGS), read once from locales/<lang>.yaml."""
    import yaml

    if lang not in LANGS:
        raise UserError(f"--lang must be one of {', '.join(LANGS)}, got {lang!r}")
    text = resources.files("tune_gpt.report").joinpath("locales", f"{lang}.yaml").read_text("utf-8")
    table = yaml.safe_load(text)
    # a shipped file, so a wrong shape is a bug in the package, not a user error
    if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in table.items()):
        raise ValueError(f"locales/{lang}.yaml must map keys to strings")
    return table


def translator(lang: str) -> Callable[..., str]:
    """T(key, **values) -> the sentence in `lang`, values filled in."""
    table = catalogue(lang)

    def T(key: str, **values: object) -> str:
        return table[key].format(**values) if values else table[key]

    return T
