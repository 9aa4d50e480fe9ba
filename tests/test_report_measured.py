"""Reports lead with what the search measured: the slowness
section opens with the biggest measured lever and its gain, then the guide's ladder marked
measured / not measured here; the OOM section opens with the measured cause; and measured
peaks calibrate the "fits" verdicts. Each scenario is a hand-made table (test_report_data)."""

from __future__ import annotations

from functools import lru_cache
from unittest import mock

import pytest
from test_report_data import BASE, GB, assemble, report_of, section, trial

from tune_gpt.report import memory
from tune_gpt.report.rules import LEAD_MIN_GAIN, MEMORY_HEADROOM

CPU = dict(device="cpu", compile=False, dtype="float32", dropout=0.0)
CPU_META = dict(profile="cpu", device="cpu", resources={"cpu": 2, "gpu": 0},
                scheduler={"type": "fifo"}, importances={})


def eval_dominated_search():
    """Four CPU trials that evaluate every 8 iterations with eval_iters 88: evaluation is
    88% of each one's wall time (2*88 forwards of ~1/3 step per 8 steps: 7.33 : 1)."""
    items = [trial(f"e{i}", learning_rate=lr, eval_interval=8, eval_iters=88, max_iters=400,
                   tokens_per_s=8_000.0, **CPU)
             for i, lr in enumerate([3e-4, 1e-3, 3e-3, 1e-2])]
    return assemble(items, name="eval-dominated", memory_limit_bytes=None,
                    params={"learning_rate": {"loguniform": [1e-4, 1e-1]}}, **CPU_META)


def tuned_eval_iters_search():
    """The search tuned eval_iters itself (20 or 200, every 50 iterations): the 200s spend
    73% of their time evaluating, the 20s 21%."""
    items = [trial(f"q{i}", learning_rate=lr, eval_interval=50, eval_iters=ei, max_iters=400,
                   tokens_per_s=8_000.0, **CPU)
             for i, (lr, ei) in enumerate([(3e-4, 200), (1e-3, 20), (3e-3, 200), (1e-2, 20)])]
    return assemble(items, name="tuned-eval", memory_limit_bytes=None,
                    params={"learning_rate": {"loguniform": [1e-4, 1e-1]},
                            "eval_iters": {"choice": [20, 200]}}, **CPU_META)


SMALL = dict(batch_size=16, block_size=128, n_layer=4, n_head=4, n_embd=128)
BIG = dict(batch_size=64, block_size=256, n_layer=6, n_head=6, n_embd=384)
RATIOS = (1.60, 1.66, 1.72)     # measured peak / estimate of the trials that ran (median 1.66)
LIMIT = 2.4 * GB                # the halving rungs fit by the raw estimate, not once calibrated


def cpu_oom_search():
    """A CPU search whose small trials peaked at ~1.66x their estimate (the process's RSS)
    and whose big config ran out of a 2.4 GB limit."""
    items = []
    for i, ratio in enumerate(RATIOS):
        est = memory.need_bytes({**BASE, **CPU, **SMALL}, 65)
        items.append(trial(f"s{i}", learning_rate=1e-3 * (i + 1), max_iters=400,
                           peak_gb=ratio * est / GB, tokens_per_s=8_000.0, **CPU, **SMALL))
    items.append(trial("big", outcome="oom", error="RuntimeError: DefaultCPUAllocator: can't "
                       "allocate memory", **CPU, **BIG))
    return assemble(items, name="cpu-oom", memory_limit_bytes=int(LIMIT),
                    params={"learning_rate": {"loguniform": [1e-4, 1e-1]},
                            "batch_size": {"choice": [16, 64]}}, **CPU_META)


SCENARIOS = {"eval": eval_dominated_search, "tuned_eval": tuned_eval_iters_search,
             "cpu_oom": cpu_oom_search}


@lru_cache(maxsize=None)
def build(kind: str, lang: str = "en"):
    from tune_gpt.report import build_report

    with mock.patch("tune_gpt.report.build.make_figures", lambda *a: {}):
        return build_report(*SCENARIOS[kind](), lang=lang)


def first_sentence(markdown: str, number: int) -> str:
    """The paragraph right under section `number`'s heading."""
    return section(markdown, number).strip().split("\n\n")[1]


# ----------------------------------------------------------------------------- part 1: slowness

def test_an_eval_dominated_search_opens_its_slowness_section_with_evaluation():
    r = build("eval")
    s = r.findings.slow
    assert s.lead is not None and s.lead.key == "fewer_evals"
    share = s.lead.eval_share
    assert share == pytest.approx(0.88, abs=0.005)
    assert s.lead.changes == {"eval_interval": (8, 528)}
    # the remaining time: the training (1 - share) plus the evaluations left (share / 66)
    assert s.lead.speedup == pytest.approx(1 / ((1 - share) + share * 8 / 528))
    lead = first_sentence(r.markdown, 4)
    assert lead.startswith("Evaluation is the biggest measured cost: 88% of `e")
    assert "eval_interval 8→528 makes it ~7.5× faster" in lead
    assert "(4 of 4 trials spend over 25% of theirs evaluating)" in lead and "at most 8.3×" in lead
    zh = first_sentence(build("eval", "zh").markdown, 4)
    assert zh.startswith("评估是实测中最大的开销：占 `e") and "88%" in zh and "约 7.5×" in zh


def test_the_ladder_follows_the_lead_marked_measured_or_not():
    text = section(build("eval").markdown, 4)
    ladder = text[text.index("Remedies, in the guide's order:"):]
    lines = [x for x in ladder.splitlines() if x[:2] in ("1.", "2.", "3.", "4.")]
    assert [x.split(" · ")[0] for x in lines] == [
        "1. *not measured here*",   # no trial tried compile=True
        "2. *not measured here*",   # no pair of trials differs only in batch_size
        "3. *measured here*",       # from the measured evaluation time
        "4. *not measured here*"]
    assert text.index("Evaluation is the biggest") < text.index("**compile=True**")
    zh = section(build("eval", "zh").markdown, 4)
    assert "1. *本次未实测* · **启用编译 compile=True**" in zh


def test_a_tuned_eval_knob_that_causes_the_slowness_is_named():
    r = build("tuned_eval")
    assert r.findings.slow.lead.key == "tuned_eval"
    assert r.findings.slow.lead.changes == {"eval_iters": (200, 20)}
    lead = first_sentence(r.markdown, 4)
    assert lead.startswith("Evaluation is 73% of `q")
    assert "the search's own eval_iters is the cause (200 there, 20 in the trials that evaluate least)" in lead
    assert "eval_iters 200→20 makes it ~2.9× faster" in lead
    zh = first_sentence(build("tuned_eval", "zh").markdown, 4)
    assert "本次搜索调节的 eval_iters" in zh and "eval_iters 200→20" in zh


def test_the_planted_search_leads_with_its_biggest_measured_lever():
    """compile cannot be measured there (no trial with it on and off), batch 32→64 gave
    1.32x, evaluation costs t_slow 73%: evaluation leads (the wording is the point here)."""
    s = report_of("planted").findings.slow
    assert s.lead.key == "fewer_evals" and s.lead.speedup > s.remedies[1].speedup > LEAD_MIN_GAIN
    lead = first_sentence(report_of("planted").markdown, 4)
    assert lead.startswith("Evaluation is the biggest measured cost: 73% of `t_slow`'s wall time")


def test_a_measured_compile_pair_leads_when_it_is_the_biggest_lever():
    """On a GPU, two trials equal but for compile (0.6x tokens/s without it), light evals:
    compile leads, with the measured ratio; a light search without such a pair leads with
    nothing (no false alarm)."""
    from tune_gpt.report.diagnose import diagnose_slowness
    from tune_gpt.report.results import prepare

    items = [trial("on", compile=True), trial("off", compile=False), trial("other", n_layer=4)]
    s = diagnose_slowness(prepare(*assemble(items)))
    assert s.lead is not None and s.lead.key == "compile" and s.lead.trials == ["off"]
    assert s.lead.speedup == pytest.approx(1 / 0.6)
    from tune_gpt.report.i18n import translator
    from tune_gpt.report.render_resources import _slow_lead

    assert _slow_lead(s, translator("en")).startswith(
        "compile=True is the biggest measured lever: compile false→true gave 1.67× tokens/s here")
    quiet = diagnose_slowness(prepare(*assemble([trial("a"), trial("b", n_layer=4)])))
    assert quiet.lead is None and not quiet.slow


# ----------------------------------------------------------------------------- part 4: memory

def test_measured_peaks_calibrate_the_fits_verdicts():
    r = build("cpu_oom")
    o = r.findings.oom
    cal = o.calibration
    assert cal is not None and cal.n == 3 and cal.device == "cpu"
    assert cal.ratio == pytest.approx(1.66, abs=1e-6) and cal.factor == cal.ratio
    (case,) = o.cases
    headroom = MEMORY_HEADROOM * LIMIT
    for rung in case.ladder:
        if rung.applicable:
            assert rung.fits is (rung.mem_bytes * cal.ratio <= headroom)
    # the halving rungs fit by the raw estimate but not by what this device measured
    batch, block, accum, model, precision = case.ladder
    for rung in (batch, block, accum, precision):
        assert rung.mem_bytes <= headroom and rung.fits is False
    assert model.fits is True
    text = section(r.markdown, 3)
    assert ("Measured peaks were 1.66× the estimate (median of 3 trial(s) that ran, 1.60×–1.72×), "
            "so every verdict below uses the estimate × 1.66 (on a CPU the peak is the whole "
            "process") in text
    step1 = next(x for x in text.splitlines() if x.startswith("1. **Smaller batch_size**"))
    assert "at the measured ratio" in step1 and step1.endswith("(❌ still too big)")
    assert "✅" in next(x for x in text.splitlines() if x.startswith("4. **Smaller model**"))


def test_a_cpu_oom_section_opens_with_the_measured_cause_and_the_calibrated_remedy():
    r = build("cpu_oom")
    lead = r.findings.oom.lead
    assert lead.case.trial_id == "big" and lead.part == "activations" and lead.share > 0.5
    assert lead.remedy is r.findings.oom.cases[0].ladder[3]  # the first that fits, calibrated
    first = first_sentence(r.markdown, 3)
    assert first.startswith("`big` ran out of memory under a 2.4 GB limit: it needs ~2.9 GB, "
                            "~4.8 GB at the measured ratio")
    assert "of it activations (batch_size 64 × block_size 256)" in first
    assert "the first remedy below that fits, n_layer 6→4, n_embd 384→240" in first
    zh = first_sentence(build("cpu_oom", "zh").markdown, 3)
    assert zh.startswith("`big` 显存不够（显存上限 2.4 GB）：约需 2.9 GB，按实测比例约 4.8 GB")
    assert "实测峰值是估算值的 1.66×" in section(build("cpu_oom", "zh").markdown, 3)


def test_a_ratio_below_one_never_loosens_a_verdict():
    o = report_of("planted").findings.oom
    assert o.calibration.ratio == pytest.approx(0.93) and o.calibration.factor == 1.0
    text = section(report_of("planted").markdown, 3)
    assert "not above it, so the verdicts use the estimate as it is" in text
    assert "at the measured ratio" not in text


def test_the_larger_batch_verdict_uses_the_calibrated_ratio_too():
    trials, curves, meta = cpu_oom_search()
    small = trials["trial_id"] == "s0"
    trials.loc[small, "batch_size"] = 8      # a debugging-size batch: "larger batch" applies
    from tune_gpt.report.diagnose import diagnose_slowness
    from tune_gpt.report.results import prepare

    res = prepare(trials, curves, {**meta, "memory_limit_bytes": int(0.1 * GB)})
    larger = diagnose_slowness(res).remedies[1]
    assert larger.applicable and larger.changes == {"batch_size": (8, 16)}
    ratio = memory.calibration(res.trials, "cpu").factor
    assert larger.mem_bytes <= MEMORY_HEADROOM * 0.1 * GB < larger.mem_bytes * ratio
    assert larger.fits is False


# ----------------------------------------------------------------------------- no false alarms

def test_a_clean_search_leads_with_no_alarm():
    r = report_of("clean")
    assert r.findings.slow.lead is None and r.findings.oom.lead is None
    assert first_sentence(r.markdown, 4) == "No trial stands out as slow."
    assert first_sentence(r.markdown, 3).startswith("None found")
    assert "biggest measured" not in r.markdown and "measured ratio" not in r.markdown
    assert first_sentence(report_of("clean", "zh").markdown, 4) == "没有明显偏慢的试验。"
