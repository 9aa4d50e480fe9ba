"""How good is the loss, and what does the model write: the loss references under the best
value (section 1) and the best trials' text samples (end of section 2).

A beginner cannot tell whether val_loss 1.7 is good. Two kinds of reference answer that:
ln(vocab), the loss of guessing uniformly (any data set), and nanoGPT's published validation
losses with their recipes, only for shakespeare_char (the data set they were measured on).
The samples are read from results/samples.json (search/samples.py), plain JSON: rendering
them needs neither torch nor Ray.
"""

from __future__ import annotations

import json
import math
from tune_gpt.data.doctor import DataReport
from tune_gpt.report import fmt
from tune_gpt.report.findings import Findings, Noise
from tune_gpt.report.md import Tr, table
from tune_gpt.report.results import Results
from tune_gpt.data.text import SHAKESPEARE_BYTES, SHAKESPEARE_VOCAB
from tune_gpt.report.rules import NANOGPT_CPU_VAL_LOSS, NANOGPT_GPU_VAL_LOSS, SAMPLE_SHOW_CHARS


def is_shakespeare_char(res: Results) -> bool:
    """tinyshakespeare at the character level: a vocabulary of 65 characters, and the data's
    name says shakespeare or its size is tinyshakespeare's (1,115,394 characters, within 1%).
    A BPE tokenizer or another vocabulary rules it out."""
    if res.vocab_size != SHAKESPEARE_VOCAB:
        return False
    doctor = DataReport.from_dict(res.meta.data_doctor) if res.meta.data_doctor else None
    if doctor is not None and doctor.tokenizer and doctor.tokenizer != "char":
        return False
    names = " ".join(str(x) for x in (res.meta.data, doctor and doctor.name,
                                      doctor and doctor.source) if x)
    if "shakespeare" in names.lower():
        return True
    total = (doctor.n_train or 0) + (doctor.n_val or 0) if doctor is not None else 0
    return abs(total - SHAKESPEARE_BYTES) <= 0.01 * SHAKESPEARE_BYTES  # ASCII: a byte a char


def loss_references(res: Results, f: Findings, T: Tr) -> list[str]:
    """"Is this loss good?": the best val_loss against ln(vocab) and, on shakespeare_char,
    nanoGPT's CPU recipe and GPU config, each difference marked ≈ within the noise."""
    s, noise = f.summary, f.noise
    best, vocab = s.best_val_loss, res.vocab_size
    if not fmt.ok(best) or not vocab or vocab < 2 or noise is None:
        return []
    refs = [(T("ref.uniform", vocab=fmt.count(vocab)), math.log(vocab), fmt.loss(math.log(vocab)))]
    if is_shakespeare_char(res):
        refs.append((T("ref.cpu"), NANOGPT_CPU_VAL_LOSS, f"~{NANOGPT_CPU_VAL_LOSS:.2f}"))
        refs.append((T("ref.gpu"), NANOGPT_GPU_VAL_LOSS, f"{NANOGPT_GPU_VAL_LOSS:.4f}"))
    rows = [[name, shown, _versus(best - ref, noise, T)] for name, ref, shown in refs]
    head = T("ref.head", loss=fmt.loss(best), tokens=fmt.tokens(s.best_tokens),
             pair=fmt.loss(noise.pair))
    return [head + "\n\n" + table([T("ref.col.ref"), T("ref.col.loss"),
                                   T("ref.col.vs", loss=fmt.loss(best))], rows)]


def _versus(diff: float, noise: Noise, T: Tr) -> str:
    d = fmt.loss(abs(diff))
    if not noise.real(diff):
        return T("ref.same", d=fmt.signed(diff))
    return T("ref.lower", d=d) if diff < 0 else T("ref.higher", d=d)


def samples_section(f: Findings, T: Tr) -> list[str]:
    """The best trials' text, decoded, in fenced blocks; nothing when the search recorded no
    samples (older searches), one line when it tried and could not."""
    sm = f.samples
    if not isinstance(sm, dict):
        return []
    out = [f"### {T('samples.title')}"]
    items = [x for x in sm.get("samples") or [] if isinstance(x, dict)]
    if not items:
        return out + [T("samples.none", why=str(sm.get("error") or "—"))]
    out.append(T("samples.intro", prompt=f"`{json.dumps(str(sm.get('prompt', '')))}`",
                 tokens=sm.get("max_new_tokens", "?"), seed=sm.get("seed", "?"),
                 temperature=sm.get("temperature", "?"), top_k=sm.get("top_k", "?"),
                 chars=SAMPLE_SHOW_CHARS))
    for x in items:
        trial, rank = x.get("trial_id", "?"), x.get("rank", "?")
        text = x.get("text")
        if not isinstance(text, str) or x.get("error"):
            out.append(T("samples.failed", rank=rank, trial=trial, why=str(x.get("error") or "—")))
            continue
        out.append(T("samples.trial", rank=rank, trial=trial, metric=sm.get("metric", "val_loss"),
                     loss=fmt.loss(x.get("value")), iter=fmt.count(x.get("iter"))))
        out.append(fenced(_clip(text, SAMPLE_SHOW_CHARS)))
    return out


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n].rstrip() + " …"


def fenced(text: str) -> str:
    """A code block that no run of backticks in the text can close early."""
    ticks, run = 3, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        ticks = max(ticks, run + 1)
    fence = "`" * ticks
    return f"{fence}text\n{text.rstrip()}\n{fence}"
