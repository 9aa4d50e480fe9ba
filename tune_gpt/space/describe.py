"""A short human summary of a loaded space (what `tune-gpt validate` prints)."""

from __future__ import annotations

from tune_gpt.space.schema import SearchSpace


def describe(space: SearchSpace) -> str:
    """A short human summary (what `tune-gpt validate` prints)."""
    lines = [f"{space.source}: ok — search '{space.name}' (profile: {space.profile}"
             + (f"; offers {', '.join(space.profiles)}" if space.profiles else "") + ")"]
    if space.description:
        lines.append(f"  {space.description}")
    lines.append(f"  objective: {space.mode} {space.metric}; data: {space.data}")
    if space.base:
        lines.append(f"  base: {space.base}")
        lines += [f"    note: {n}" for n in space.base_notes]
    lines.append("  tuned:")
    for k, d in space.params.items():
        spec = d.to_yaml()
        lines.append(f"    {k}: {spec}")
    if space.fixed:
        lines.append("  fixed: " + ", ".join(f"{k}={v}" for k, v in space.fixed.items()))
    s, b = space.scheduler, space.budget
    lines.append(f"  sampler: {space.sampler}")
    if s.type == "asha":
        top = s.max_t or (b.tokens_per_trial if s.time_attr == "tokens" else 0)
        lines.append(f"  scheduler: ASHA on {s.time_attr}, grace_period "
                     + (f"{s.first_rung(top):,.0f}" if s.first_rung(top) else "a tenth of max_t")
                     + f", reduction_factor {s.reduction_factor:g}, max_t "
                     + (f"{top:,.0f}" if top else "one trial's length") + f", brackets {s.brackets}")
    else:
        lines.append("  scheduler: none (every trial runs to the end)")
    lines.append(f"  budget: {b.num_samples} trials"
                 + (f", {b.max_concurrent_trials} at a time" if b.max_concurrent_trials else "")
                 + (f", {b.time_budget_s:g} s wall" if b.time_budget_s else "")
                 + (f", {b.tokens_per_trial:,} tokens per trial" if b.tokens_per_trial else "")
                 + (f", {b.total_tokens:,} tokens in all" if b.total_tokens else "")
                 + (f", {b.total_flops:.3g} FLOPs in all" if b.total_flops else ""))
    if space.final is not None:
        lines += final_lines(space)
    lines.append(f"  resources per trial: {space.resources}")
    if space.memory_limit:
        lines.append(f"  memory limit per trial: {space.memory_limit / 2**30:.2f} GiB"
                     + (f", OOM rescue up to {space.rescue}x" if space.rescue else ""))
    return "\n".join(lines)


def final_lines(space: SearchSpace) -> list[str]:
    """The explore-then-exploit split, with its rule (tune_gpt.explore, tune_gpt.horizon)."""
    from tune_gpt.explore import default_patience, explore_budget
    from tune_gpt.horizon import LR_RULE

    f, s = space.final, space.scheduler
    assert f is not None
    cap = explore_budget(space.budget, f.explore_share)
    spent = ", ".join(x for x in (
        f"{cap['time_budget_s']:.0f} s" if cap["time_budget_s"] else "",
        f"{cap['total_tokens']:,.0f} tokens" if cap["total_tokens"] else "",
        f"{cap['total_flops']:.3g} FLOPs" if cap["total_flops"] else "") if x)
    out = [f"  final phase: exploring takes at most {f.explore_share:.0%} of the budget "
           f"({spent}), so the final run gets at least {1 - f.explore_share:.0%} of it"]
    if f.explore_reason:
        out.append(f"    {f.explore_reason}")
    if s.type == "asha":
        patience = f.patience or default_patience(s.reduction_factor, space.sampler.startup_trials())
        out.append(f"    exploring stops earlier once the leading trial has beaten {patience} "
                   f"challengers in a row at rungs they both reached")
    out.append("    then the config whose own loss curve predicts the lowest loss at the tokens "
               "it can train in what is left is trained to the end of the budget, on every "
               "trial slot at once"
               + (", continuing that trial's own state" if f.continue_trial else
                  ", starting again (continue_trial: false)"))
    out.append(f"    its learning rate is moved to the longer horizon ({LR_RULE}); "
               f"its best-validation model is kept as runs/NAME/model/ckpt.pt")
    return out
