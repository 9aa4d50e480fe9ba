"""Every sentence the report writes, in English and in Chinese, in one catalogue.

The Chinese uses the beginner's guide's own terms (显存, 梯度累积, 过拟合, 训练太慢, 学习率,
混合精度, 权重衰减 ...). Knob names stay as they are in both languages: they are what the
user types. A missing key in one language is a bug (tests compare the key sets).

    T = translator("zh");  T("oom.none")
"""

from __future__ import annotations

from typing import Callable

from tune_gpt.errors import UserError

LANGS = ("en", "zh")

EN: dict[str, str] = {
    # --- title and summary
    "title": "Tuning report: {name}",
    "intro": "Search `{name}` on `{data}` ({profile} profile, device {device}), started {started}. "
             "Objective: {mode} `{metric}`. Sampler: {sampler}. Scheduler: {scheduler}.",
    "sched.asha": "ASHA on {time_attr} (grace_period {grace}, reduction_factor {rf}, max_t {max_t})",
    "sched.none": "none (every trial ran to the end)",
    "s1": "1. Summary",
    "best": "**Best val_loss: {loss}** — trial `{trial}` ({outcome}, {tokens} tokens, {iters} iterations).",
    "best.none": "**No trial finished with a finite val_loss**, so there is nothing to recommend yet; "
                 "the sections below say why the trials failed.",
    "units.time": "h|min|s",
    "budget": "Budget spent: {trials} trials, {iters} iterations, {tokens} tokens, {wall} wall time.",
    "outcomes": "Trials by outcome: {list}.",
    "errors": "Errors:",
    "best.config": "Full configuration of the best trial (also in `best_config.yaml`):",
    # --- leaderboard
    "s2": "2. Leaderboard",
    "lb.intro": "The {n} best trials by best val_loss. Only the knobs that differ between them are "
                "shown. *val_loss @ {budget}* is each trial's val_loss at {budget} tokens, the equal "
                "budget that every compared trial reached, so a trial that trained longer does not "
                "win just for that.",
    "lb.none": "No trial has a finite val_loss.",
    "lb.trial": "trial", "lb.outcome": "outcome", "lb.best": "best val_loss",
    "lb.at": "val_loss @ {budget}", "lb.tokens": "tokens", "lb.speed": "tokens/s",
    "fig.curves.caption": "val_loss curves of the top trials (solid) and of trials ASHA stopped early "
                          "(dashed); vertical lines are ASHA's rungs.",
    # --- OOM
    "s3": "3. Out of memory (显存不够)",
    "oom.none": "None found: no trial ran out of memory (oom) or was predicted to (predicted_oom).",
    "oom.intro": "{n} trial(s) ran out of memory (oom) or were predicted not to fit (predicted_oom). "
                 "Memory limit: {limit}.",
    "oom.limit.unknown": "unknown",
    "oom.col.peak": "measured peak", "oom.col.est": "estimate", "oom.col.tpi": "tokens/iter",
    "oom.rescue": "Trial `{rescue}` re-ran `{trial}` with half the batch_size and twice the "
                  "gradient_accumulation_steps: {outcome}, best val_loss {loss}.",
    "oom.ladder": "Remedies for `{trial}` ({config}; needs ~{mem}), in the guide's order — try the "
                  "first one that fits:",
    "oom.smaller_batch": "**Smaller batch_size** (most effective) — {changes}: needs ~{mem}. "
                         "tokens/iter halves to {tpi}, so gradients get noisier.",
    "oom.smaller_block": "**Smaller block_size** — {changes}: needs ~{mem}. Attention memory grows "
                         "with block_size², but the model sees less context; tokens/iter becomes {tpi}.",
    "oom.grad_accum": "**Gradient accumulation** — {changes} keeps {tpi} tokens/iter and needs "
                      "~{mem}: the same training, each step just takes two micro-batches.",
    "oom.smaller_model": "**Smaller model** — {changes}: needs ~{mem}; fewer parameters, usually a "
                         "somewhat higher loss.",
    "oom.mixed_precision": "**Mixed precision** — {changes}: needs ~{mem} (activations in 16 bits; "
                           "use float16 on GPUs without bfloat16).",
    "oom.na": "not applicable here ({why}).",
    "oom.na.min": "{knob} is already {value}",
    "oom.na.dtype": "dtype is already {value}",
    "oom.combined": "No single step fits. Applied on top of each other in the guide's order (the "
                    "batch halved through accumulation): {changes} needs ~{mem}, which fits, at {tpi} "
                    "tokens/iter.",
    "oom.combined.nofit": "No single step fits, and even all of them together ({changes}) need ~{mem}: "
                          "this configuration is too big for this device; take a smaller model.",
    "oom.fits": "fits", "oom.nofit": "still too big", "oom.fit.unknown": "limit unknown",
    "oom.source": "Memory needs are estimates from {source}.",
    "oom.source.formula": "a rough formula (weights, gradients, AdamW state, activations, logits)",
    # --- slowness
    "s4": "4. Training too slow (训练太慢)",
    "slow.intro": "Training speed per trial (tokens/s while training; MFU = share of the device's "
                  "peak FLOP/s actually used; eval share = time spent evaluating / wall time).",
    "slow.col.mfu": "MFU", "slow.col.eval": "eval share", "slow.col.flags": "flags",
    "slow.flag.slow": "slow", "slow.flag.eval_heavy": "eval-heavy",
    "slow.flag.compile_off": "compile off", "slow.flag.small_batch": "small batch",
    "slow.legend": "Flags: *slow* = {basis} below {frac} of the search's median; *eval-heavy* = more "
                   "than {share} of wall time evaluating; *small batch* = batch_size ≤ {small}; "
                   "*compile off* = compile=false on a GPU.",
    "slow.basis.mfu": "MFU", "slow.basis.tps": "tokens/s",
    "slow.none": "No trial stands out as slow.",
    "slow.some": "Trials with a flag: {ids}.",
    "slow.remedies": "Remedies, in the guide's order:",
    "slow.compile": "**compile=True** (most effective) — {which}. {measured}",
    "slow.compile.which": "{n} trial(s) trained with compile off ({ids})",
    "slow.compile.all_on": "every trial already used compile=True",
    "slow.compile.measured": "Measured here: compile {lo}→{hi} gave {ratio} tokens/s (trials {a} vs {b}).",
    "slow.compile.guide": "Not measured in this search; the guide expects {lo}–{hi}× on a GPU (on a CPU "
                          "torch.compile gains little and costs compile time).",
    "slow.larger_batch": "**Larger batch_size** — {changes} for `{trial}`{mem}. {measured}",
    "slow.larger_batch.mem": " (needs ~{mem}, {fit})",
    "slow.batch.measured": "Measured here: batch_size {lo}→{hi} gave {ratio} tokens/s (trials {a} vs {b}, "
                           "otherwise the same model and settings).",
    "slow.batch.none": "No pair of trials here differs only in batch_size, so the gain is not measured; "
                       "larger batches keep a GPU busier.",
    "slow.larger_batch.no": "**Larger batch_size** — no trial was slow or used a small batch here.",
    "slow.fewer_evals": "**Fewer evaluations (larger eval_interval)** — `{trial}` spent {share} of its "
                        "wall time evaluating; {changes} would make it about {speedup} faster end to end "
                        "(computed from the measured evaluation time).",
    "slow.fewer_evals.ok": "**Fewer evaluations (larger eval_interval)** — evaluation took at most {share} "
                           "of wall time (`{trial}`); not worth changing.",
    "slow.fewer_evals.none": "**Fewer evaluations (larger eval_interval)** — evaluation time was not recorded.",
    "slow.asha_note": "Keep eval_interval at or below ASHA's first rung, or ASHA cannot judge the trial there.",
    "slow.less_logging": "**Less logging** — {changes} (trials {ids}). Not measured separately; on a GPU "
                         "each logged loss makes the CPU wait for the GPU.",
    "slow.less_logging.ok": "**Less logging** — every trial already logs every ≥ {n} iterations.",
    "fig.pareto.caption": "val_loss at equal budget against training speed; the Pareto front (no other "
                          "trial is both faster and better) is highlighted.",
    # --- overfitting
    "s5": "5. Overfitting (过拟合)",
    "of.none": "None found: no trial's val_loss rose (by ≥ {rise}) while train_loss fell, and no "
               "val/train gap exceeded {gap}.",
    "of.col.kind": "what", "of.col.start": "started at iter", "of.col.valmin": "val_loss min",
    "of.col.vallast": "val_loss last", "of.col.train": "train_loss then→last", "of.col.gap": "gap at end",
    "of.kind.rising": "val rises, train falls", "of.kind.gap": "large gap",
    "of.rising": "`{trial}`: val_loss bottomed out at {vmin} at iteration {iter} ({tokens} tokens) and "
                 "rose to {vlast} while train_loss kept falling ({t0} → {t1}): overfitting started at "
                 "iteration {iter}. Its best checkpoint is the one from that iteration.",
    "of.gap": "`{trial}`: val_loss {vlast} is {ratio} above train_loss {t1} at iteration {iter}.",
    "of.remedies": "Remedies, in the guide's order (evidence: the val−train gap at {budget} tokens "
                   "across {n} trials):",
    "of.remedies.nobudget": "Remedies, in the guide's order:",
    "of.dropout": "**More dropout** (e.g. 0.1–0.2) — {evidence}",
    "of.weight_decay": "**More weight_decay** (e.g. 0.1) — {evidence}",
    "of.smaller_model": "**Smaller model** (e.g. n_layer=4) — {evidence}",
    "of.more_data": "**More data** — not measurable within one search: train on a larger text, or "
                    "train for fewer tokens (stop near the iteration where overfitting started).",
    "ev.works": "works here: trials with {knob} {hv} ({hids}) had a gap of {hgap} vs {ogap} for {knob} "
                "{ov} ({oids}); ρ = {rho}, n = {n}.",
    "ev.worse": "did not help here: trials with {knob} {hv} ({hids}) had a gap of {hgap} vs {ogap} for "
                "{knob} {ov} ({oids}); ρ = {rho}, n = {n}.",
    "ev.no_effect": "no clear effect here: gap {hgap} with {knob} {hv} vs {ogap} with {ov} "
                    "(ρ = {rho}, n = {n}).",
    "ev.too_few": "too few trials to tell (n = {n}).",
    "ev.not_tried": "not tried in this search ({knob} was the same for every compared trial).",
    # --- divergence
    "s6": "6. Divergence (学习率不收敛)",
    "dv.none": "None found: no trial's loss became NaN, exploded or stayed flat near ln(vocab).",
    "dv.col.lr": "learning_rate", "dv.col.what": "what happened", "dv.col.iter": "at iter",
    "dv.col.loss": "loss",
    "dv.diverged": "diverged (loss became NaN/inf)",
    "dv.nan": "NaN/inf in the loss curve",
    "dv.exploding": "exploding (train_loss climbed ≥ {ratio} above its minimum)",
    "dv.flat": "flat (val_loss stayed ≥ {frac} of ln(vocab) = {lnv}: learned almost nothing)",
    "dv.safe": "Safe learning-rate range found: **{lo} – {hi}** ({n} trials trained without trouble).",
    "dv.safe.none": "No trial trained without trouble, so no safe learning-rate range is known yet.",
    "dv.good": "The top trials at equal budget used learning_rate {lo} – {hi}.",
    "dv.guide": "Too large a learning_rate does not converge; too small trains slowly. The guide's "
                "starting point for a small model is 1e-3.",
    # --- effects
    "s7": "7. What each knob did (总结表格)",
    "fx.intro": "Measured at an equal budget: each trial's value at {budget} tokens (its last "
                "evaluation at or before that), over {n} trials that trained (diverged, failed and "
                "out-of-memory trials left out). Each cell: direction when the knob increases, "
                "Spearman's rank correlation ρ and, for val_loss and gap, the median of the trials in "
                "the upper half of the knob's values minus the median of the lower half (for speed and "
                "memory, upper/lower as a ratio). ↑/↓ only when |ρ| ≥ {rho} with ≥ {minn} trials and the "
                "difference exceeds the noise ({loss} nats, or {ratio} for speed and memory); "
                "≈ = no clear effect. The sampler changes several knobs at once, so a column can mix "
                "effects (say, small batches that came with small models); section 4 compares matched "
                "trials where there are some.",
    "fx.none": "Too few comparable trials to measure knob effects.",
    "fx.col.knob": "increase …", "fx.col.val": "val_loss", "fx.col.speed": "tokens/s",
    "fx.col.mem": "memory (peak)", "fx.col.gap": "train/val gap", "fx.col.imp": "importance",
    "fx.col.guide": "the guide says",
    "fx.mem.estimated": "Memory column from the estimator (no measured peaks).",
    "fx.few": "n < {minn}",
    "fx.naive": "Had each trial been read wherever it stopped instead, `{knob}` would look {naive} for "
                "val_loss instead of {eq}: early stopping biases that comparison.",
    "fx.dir.up": "↑", "fx.dir.down": "↓", "fx.dir.none": "≈", "fx.dir.few": "?",
    "fx.constant": "— (not varied)",
    "fx.word.up": "harmful (↑ loss)", "fx.word.down": "helpful (↓ loss)", "fx.word.none": "neutral (≈)",
    "fx.imp.meta": "Parameter importances from Optuna (fANOVA): how much of the variation in val_loss "
                   "each knob explains.",
    "fx.imp.spearman": "No importances were recorded; the figure shows |ρ| with val_loss instead, "
                       "scaled to sum to 1.",
    "guide.batch_size": "memory ↑, speed ↑, gradient noise ↓",
    "guide.block_size": "memory ↑↑, understanding ↑",
    "guide.learning_rate": "may not converge",
    "guide.n_layer": "capacity ↑, time ↑↑",
    "guide.n_embd": "capacity ↑, memory ↑",
    "guide.dropout": "generalisation ↑, fit ↓",
    # --- next step
    "s8": "8. Next step",
    "nx.rec": "Recommended configuration: the best trial `{trial}` as it ran — `best_config.yaml`.",
    "nx.rec.none": "No configuration to recommend yet: fix the problems above and search again.",
    "nx.overfit": "It overfits after iteration {iter}: set max_iters ≈ {iter} (and lr_decay_iters to "
                  "match) or raise dropout.",
    "nx.lr": "Keep learning_rate within {lo} – {hi}.",
    "nx.top": "The knob that mattered most: `{knob}` (importance {imp}).",
    "nx.slow": "It was flagged as slow ({flags}); see section 4.",
    "nx.files": "Files next to this report:",
    "nx.file.best": "`best_config.yaml` — `tune-gpt train best_config.yaml`",
    "nx.file.nano": "`best_config_nanogpt.py` — copy into nanoGPT's `config/` and run "
                    "`python train.py config/best_config_nanogpt.py`",
    "nx.file.space": "`next_space.yaml` — `tune-gpt search next_space.yaml`: the space narrowed around "
                     "the top {n} trials at equal budget:",
    "nx.col.knob": "knob", "nx.col.was": "this search", "nx.col.next": "next search",
    # --- figures (drawn in this language only when a CJK font is installed)
    "fig.curves.title": "val_loss during training: top trials and early-stopped ones",
    "fig.curves.x.tokens": "tokens seen", "fig.curves.x.iter": "iteration",
    "fig.curves.y": "val_loss (nats/token)", "fig.curves.rung": "ASHA rung",
    "fig.curves.stopped": "stopped early",
    "fig.imp.title": "Parameter importance for val_loss",
    "fig.imp.title.fallback": "|Spearman ρ| with val_loss (no importances recorded)",
    "fig.imp.x": "importance (share of val_loss variation, sums to 1)",
    "fig.imp.x.fallback": "|ρ| between the knob and val_loss, scaled to sum to 1",
    "fig.imp.y": "tuned knob",
    "fig.pareto.title": "val_loss vs training speed (at {budget} tokens)",
    "fig.pareto.x": "training speed (tokens/s)", "fig.pareto.y": "val_loss at equal budget (nats/token)",
    "fig.pareto.front": "Pareto front", "fig.pareto.other": "other trials",
    "fig.par.title": "Tuned knobs of each trial, coloured by val_loss at {budget} tokens",
    "fig.par.x": "tuned knob (last axis: val_loss itself)",
    "fig.par.y": "knob value (scaled to its range; min–max labelled)",
    "fig.par.color": "val_loss (nats/token)",
    "fig.empty": "no data",
}

ZH: dict[str, str] = {
    "title": "调优报告：{name}",
    "intro": "搜索 `{name}`，数据 `{data}`（{profile} 配置，设备 {device}），开始于 {started}。"
             "目标：{mode} `{metric}`。采样器：{sampler}。调度器：{scheduler}。",
    "sched.asha": "ASHA，按 {time_attr} 计（grace_period {grace}，reduction_factor {rf}，max_t {max_t}）",
    "sched.none": "无（每个试验都训练到底）",
    "s1": "1. 总结",
    "best": "**最佳 val_loss：{loss}** —— 试验 `{trial}`（{outcome}，{tokens} 个 token，{iters} 次迭代）。",
    "best.none": "**没有任何试验得到有限的 val_loss**，暂时无可推荐；下面各节说明试验失败的原因。",
    "units.time": "小时|分|秒",
    "budget": "已用预算：{trials} 个试验，{iters} 次迭代，{tokens} 个 token，耗时 {wall}。",
    "outcomes": "各结果的试验数：{list}。",
    "errors": "错误信息：",
    "best.config": "最佳试验的完整配置（也在 `best_config.yaml` 中）：",
    "s2": "2. 排行榜",
    "lb.intro": "按最佳 val_loss 排名的前 {n} 个试验，只列出它们之间不同的参数。*val_loss @ {budget}* 是"
                "每个试验在 {budget} 个 token 时的 val_loss——所有参与比较的试验都达到的相同预算，"
                "这样训练得更久的试验不会仅因此获胜。",
    "lb.none": "没有试验得到有限的 val_loss。",
    "lb.trial": "试验", "lb.outcome": "结果", "lb.best": "最佳 val_loss",
    "lb.at": "val_loss @ {budget}", "lb.tokens": "token 数", "lb.speed": "tokens/s",
    "fig.curves.caption": "前几名试验（实线）和被 ASHA 提前停止的试验（虚线）的 val_loss 曲线；竖线是 ASHA 的各级（rung）。",
    "s3": "3. 显存不够",
    "oom.none": "未发现：没有试验显存不够（oom），也没有被预测为显存不够（predicted_oom）。",
    "oom.intro": "{n} 个试验显存不够（oom）或被预测为装不下（predicted_oom）。显存上限：{limit}。",
    "oom.limit.unknown": "未知",
    "oom.col.peak": "实测峰值", "oom.col.est": "估算", "oom.col.tpi": "tokens/iter",
    "oom.rescue": "试验 `{rescue}` 用减半的 batch_size 和加倍的 gradient_accumulation_steps 重跑了 "
                  "`{trial}`：{outcome}，最佳 val_loss {loss}。",
    "oom.ladder": "`{trial}` 的对策（{config}；约需 {mem}），按指南的优先级从高到低——选第一个装得下的：",
    "oom.smaller_batch": "**减小 batch_size**（最有效）—— {changes}：约需 {mem}。每次迭代的 token 数减半为 "
                         "{tpi}，梯度噪声变大。",
    "oom.smaller_block": "**减小 block_size** —— {changes}：约需 {mem}。注意力的显存随 block_size² 增长，"
                         "但模型能看到的上下文变短；tokens/iter 变为 {tpi}。",
    "oom.grad_accum": "**使用梯度累积** —— {changes}，保持每次迭代 {tpi} 个 token，约需 {mem}："
                      "效果不变，只是每步分两次小批次计算。",
    "oom.smaller_model": "**减小模型** —— {changes}：约需 {mem}；参数更少，loss 通常略高。",
    "oom.mixed_precision": "**使用混合精度** —— {changes}：约需 {mem}（激活值用 16 位；不支持 bfloat16 "
                           "的显卡用 float16）。",
    "oom.na": "此处不适用（{why}）。",
    "oom.na.min": "{knob} 已经是 {value}",
    "oom.na.dtype": "dtype 已经是 {value}",
    "oom.combined": "单个对策都装不下。按指南顺序叠加使用（通过梯度累积减半 batch_size）：{changes}，约需 "
                    "{mem}，装得下，每次迭代 {tpi} 个 token。",
    "oom.combined.nofit": "单个对策都装不下，全部叠加（{changes}）仍需约 {mem}：这个配置对这台设备太大，请换更小的模型。",
    "oom.fits": "装得下", "oom.nofit": "仍然装不下", "oom.fit.unknown": "上限未知",
    "oom.source": "显存需求为估算值，来自 {source}。",
    "oom.source.formula": "一个粗略公式（权重、梯度、AdamW 状态、激活值、logits）",
    "s4": "4. 训练太慢",
    "slow.intro": "各试验的训练速度（训练时的 tokens/s；MFU = 实际用到的设备峰值算力比例；"
                  "评估占比 = 评估耗时 / 总耗时）。",
    "slow.col.mfu": "MFU", "slow.col.eval": "评估占比", "slow.col.flags": "标记",
    "slow.flag.slow": "慢", "slow.flag.eval_heavy": "评估过多",
    "slow.flag.compile_off": "未编译", "slow.flag.small_batch": "小批次",
    "slow.legend": "标记：*慢* = {basis} 低于本次搜索中位数的 {frac}；*评估过多* = 超过 {share} 的时间在评估；"
                   "*小批次* = batch_size ≤ {small}；*未编译* = 在 GPU 上 compile=false。",
    "slow.basis.mfu": "MFU", "slow.basis.tps": "tokens/s",
    "slow.none": "没有明显偏慢的试验。",
    "slow.some": "有标记的试验：{ids}。",
    "slow.remedies": "对策，按指南的顺序：",
    "slow.compile": "**启用编译 compile=True**（最有效）—— {which}。{measured}",
    "slow.compile.which": "{n} 个试验未启用编译（{ids}）",
    "slow.compile.all_on": "所有试验都已启用 compile=True",
    "slow.compile.measured": "本次实测：compile {lo}→{hi}，tokens/s 为 {ratio}（试验 {a} 对比 {b}）。",
    "slow.compile.guide": "本次搜索未实测；指南给出 GPU 上提速 {lo}–{hi} 倍（CPU 上 torch.compile 收益很小，还要花编译时间）。",
    "slow.larger_batch": "**增大 batch_size** —— `{trial}` 的 {changes}{mem}。{measured}",
    "slow.larger_batch.mem": "（约需 {mem}，{fit}）",
    "slow.batch.measured": "本次实测：batch_size {lo}→{hi}，tokens/s 为 {ratio}（试验 {a} 对比 {b}，"
                           "模型和其他设置相同）。",
    "slow.batch.none": "本次没有只在 batch_size 上不同的试验对，因此没有实测提速；更大的批次能让 GPU 利用率更高。",
    "slow.larger_batch.no": "**增大 batch_size** —— 本次没有偏慢或使用小批次的试验。",
    "slow.fewer_evals": "**减少评估（增大 eval_interval）** —— `{trial}` 有 {share} 的时间在评估；"
                        "{changes} 可让整体快约 {speedup}（根据实测评估耗时计算）。",
    "slow.fewer_evals.ok": "**减少评估（增大 eval_interval）** —— 评估最多只占 {share} 的时间（`{trial}`），不必调整。",
    "slow.fewer_evals.none": "**减少评估（增大 eval_interval）** —— 没有记录评估耗时。",
    "slow.asha_note": "eval_interval 不要超过 ASHA 的第一级（rung），否则 ASHA 在那里无法评判试验。",
    "slow.less_logging": "**关闭一些日志** —— {changes}（试验 {ids}）。未单独实测；在 GPU 上每打印一次 "
                         "loss，CPU 都要等 GPU 算完。",
    "slow.less_logging.ok": "**关闭一些日志** —— 所有试验的 log_interval 都已 ≥ {n}。",
    "fig.pareto.caption": "相同预算下的 val_loss 与训练速度；高亮的是帕累托前沿（没有别的试验既更快又更好）。",
    "s5": "5. 过拟合",
    "of.none": "未发现：没有试验出现 val_loss 上升（≥ {rise}）而 train_loss 下降，也没有 val/train 差距超过 {gap}。",
    "of.col.kind": "现象", "of.col.start": "开始于迭代", "of.col.valmin": "val_loss 最低",
    "of.col.vallast": "val_loss 最后", "of.col.train": "train_loss 当时→最后", "of.col.gap": "最终差距",
    "of.kind.rising": "val 升、train 降", "of.kind.gap": "差距大",
    "of.rising": "`{trial}`：val_loss 在第 {iter} 次迭代（{tokens} 个 token）降到最低 {vmin}，之后升到 {vlast}，"
                 "而 train_loss 仍在下降（{t0} → {t1}）：过拟合从第 {iter} 次迭代开始。它最好的检查点就是那一次迭代的。",
    "of.gap": "`{trial}`：第 {iter} 次迭代时 val_loss {vlast} 比 train_loss {t1} 高 {ratio}。",
    "of.remedies": "对策，按指南的顺序（证据：{n} 个试验在 {budget} 个 token 时的 val−train 差距）：",
    "of.remedies.nobudget": "对策，按指南的顺序：",
    "of.dropout": "**增加 dropout**（例如 0.1–0.2）—— {evidence}",
    "of.weight_decay": "**增加 weight_decay**（例如 0.1）—— {evidence}",
    "of.smaller_model": "**减小模型**（例如 n_layer=4）—— {evidence}",
    "of.more_data": "**更多数据** —— 一次搜索内无法测量：换用更大的文本，或少训练一些 token（在过拟合开始的迭代附近停止）。",
    "ev.works": "本次有效：{knob} 为 {hv} 的试验（{hids}）差距为 {hgap}，而 {knob} 为 {ov} 的试验（{oids}）为 "
                "{ogap}；ρ = {rho}，n = {n}。",
    "ev.worse": "本次无效：{knob} 为 {hv} 的试验（{hids}）差距为 {hgap}，而 {knob} 为 {ov} 的试验（{oids}）为 "
                "{ogap}；ρ = {rho}，n = {n}。",
    "ev.no_effect": "本次效果不明显：{knob} 为 {hv} 时差距 {hgap}，为 {ov} 时 {ogap}（ρ = {rho}，n = {n}）。",
    "ev.too_few": "试验太少，无法判断（n = {n}）。",
    "ev.not_tried": "本次搜索没有尝试（所有参与比较的试验 {knob} 都相同）。",
    "s6": "6. 学习率不收敛",
    "dv.none": "未发现：没有试验的 loss 变成 NaN、爆炸，或停在 ln(vocab) 附近不动。",
    "dv.col.lr": "learning_rate", "dv.col.what": "现象", "dv.col.iter": "迭代", "dv.col.loss": "loss",
    "dv.diverged": "发散（loss 变成 NaN/inf）",
    "dv.nan": "loss 曲线中出现 NaN/inf",
    "dv.exploding": "爆炸（train_loss 回升到最低值的 {ratio} 以上）",
    "dv.flat": "不下降（val_loss 一直 ≥ ln(vocab) = {lnv} 的 {frac}：几乎什么都没学到）",
    "dv.safe": "本次找到的安全学习率范围：**{lo} – {hi}**（{n} 个试验训练正常）。",
    "dv.safe.none": "没有训练正常的试验，因此还不知道安全的学习率范围。",
    "dv.good": "相同预算下排名靠前的试验使用的 learning_rate 为 {lo} – {hi}。",
    "dv.guide": "学习率太大不收敛，太小训练慢。指南给小模型的起点是 1e-3。",
    "s7": "7. 每个参数的作用（总结表格）",
    "fx.intro": "在相同预算下测量：每个试验在 {budget} 个 token 时的值（该点或之前的最后一次评估），共 {n} 个"
                "正常训练的试验（发散、失败和显存不够的试验不计入）。每格：参数增大时的方向、Spearman 秩相关系数 ρ，"
                "以及（val_loss 和差距）参数取值上半部分试验的中位数减去下半部分的中位数（速度和显存为上/下半部分之比）。"
                "只有 |ρ| ≥ {rho}、试验数 ≥ {minn} 且差异超过噪声（{loss} nats，速度和显存为 {ratio}）时才标 ↑/↓；≈ 表示没有明显作用。采样器一次会同时改变多个参数，"
                "所以某一栏可能混入其他参数的作用（例如小批次恰好配了小模型）；第 4 节在有条件时比较了只差一个参数的试验。",
    "fx.none": "可比较的试验太少，无法测量参数的作用。",
    "fx.col.knob": "增大 …", "fx.col.val": "val_loss", "fx.col.speed": "tokens/s",
    "fx.col.mem": "显存（峰值）", "fx.col.gap": "train/val 差距", "fx.col.imp": "重要性",
    "fx.col.guide": "指南的说法",
    "fx.mem.estimated": "显存一栏来自估算（没有实测峰值）。",
    "fx.few": "n < {minn}",
    "fx.naive": "如果按每个试验停止时的值来比较，`{knob}` 对 val_loss 会显得{naive}，而不是{eq}：提前停止会让那种比较产生偏差。",
    "fx.dir.up": "↑", "fx.dir.down": "↓", "fx.dir.none": "≈", "fx.dir.few": "?",
    "fx.constant": "—（未变化）",
    "fx.word.up": "有害（loss ↑）", "fx.word.down": "有益（loss ↓）", "fx.word.none": "无影响（≈）",
    "fx.imp.meta": "来自 Optuna（fANOVA）的参数重要性：每个参数能解释多少 val_loss 的变化。",
    "fx.imp.spearman": "没有记录重要性；图中改为显示与 val_loss 的 |ρ|，归一化为总和 1。",
    "guide.batch_size": "显存↑, 速度↑, 噪声↓",
    "guide.block_size": "显存↑↑, 理解力↑",
    "guide.learning_rate": "不收敛",
    "guide.n_layer": "能力↑, 时间↑↑",
    "guide.n_embd": "能力↑, 显存↑",
    "guide.dropout": "泛化↑, 拟合↓",
    "s8": "8. 下一步",
    "nx.rec": "推荐配置：最佳试验 `{trial}` 的原样配置——`best_config.yaml`。",
    "nx.rec.none": "暂时没有可推荐的配置：先解决上面的问题再搜索。",
    "nx.overfit": "它在第 {iter} 次迭代之后过拟合：把 max_iters 设为约 {iter}（lr_decay_iters 随之调整），或增加 dropout。",
    "nx.lr": "learning_rate 保持在 {lo} – {hi} 之间。",
    "nx.top": "最重要的参数：`{knob}`（重要性 {imp}）。",
    "nx.slow": "它被标记为偏慢（{flags}）；见第 4 节。",
    "nx.files": "报告旁边的文件：",
    "nx.file.best": "`best_config.yaml` —— `tune-gpt train best_config.yaml`",
    "nx.file.nano": "`best_config_nanogpt.py` —— 复制到 nanoGPT 的 `config/` 目录，运行 "
                    "`python train.py config/best_config_nanogpt.py`",
    "nx.file.space": "`next_space.yaml` —— `tune-gpt search next_space.yaml`：围绕相同预算下前 {n} 名试验收窄的搜索空间：",
    "nx.col.knob": "参数", "nx.col.was": "本次搜索", "nx.col.next": "下次搜索",
    "fig.curves.title": "训练中的 val_loss：前几名与提前停止的试验",
    "fig.curves.x.tokens": "已见 token 数", "fig.curves.x.iter": "迭代次数",
    "fig.curves.y": "val_loss（nats/token）", "fig.curves.rung": "ASHA 级",
    "fig.curves.stopped": "提前停止",
    "fig.imp.title": "参数对 val_loss 的重要性",
    "fig.imp.title.fallback": "与 val_loss 的 |Spearman ρ|（未记录重要性）",
    "fig.imp.x": "重要性（解释 val_loss 变化的比例，总和为 1）",
    "fig.imp.x.fallback": "参数与 val_loss 的 |ρ|，归一化为总和 1",
    "fig.imp.y": "调优参数",
    "fig.pareto.title": "val_loss 与训练速度（{budget} 个 token 时）",
    "fig.pareto.x": "训练速度（tokens/s）", "fig.pareto.y": "相同预算下的 val_loss（nats/token）",
    "fig.pareto.front": "帕累托前沿", "fig.pareto.other": "其他试验",
    "fig.par.title": "各试验的调优参数，颜色为 {budget} 个 token 时的 val_loss",
    "fig.par.x": "调优参数（最后一根轴：val_loss 本身）",
    "fig.par.y": "参数值（按范围缩放；标出最小–最大）",
    "fig.par.color": "val_loss（nats/token）",
    "fig.empty": "无数据",
}

CATALOGUES = {"en": EN, "zh": ZH}


def translator(lang: str) -> Callable[..., str]:
    """T(key, **values) -> the sentence in `lang`, values filled in."""
    if lang not in CATALOGUES:
        raise UserError(f"--lang must be one of {', '.join(LANGS)}, got {lang!r}")
    table = CATALOGUES[lang]

    def T(key: str, **values: object) -> str:
        return table[key].format(**values) if values else table[key]

    return T
