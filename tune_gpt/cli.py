"""The `tune-gpt` command: parses arguments and calls library functions, nothing more.

    tune-gpt search search_spaces/beginner.yaml          # the main job
    tune-gpt validate search_spaces/beginner.yaml        # check a space, run nothing
    tune-gpt train --batch_size=16 --max_iters=1000      # one run, nanoGPT-style overrides
    tune-gpt estimate --n_layer=6 --n_embd=384 --block_size=256 --batch_size=64
    tune-gpt sample out/ckpt.pt
    tune-gpt data ~/nanoGPT/data/shakespeare_char      # what a data set holds, what it costs
    tune-gpt report NAME                                 # re-write a search's report
    tune-gpt ui                                          # MLflow UI on the latest search
    tune-gpt transfer reports/NAME --n_embd=768          # best config for a wider model (µP)

Heavy libraries (torch, ray, mlflow) are imported inside the commands that need them, so
`--help` and `validate` start instantly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from tune_gpt.errors import SearchInterrupted, UserError


def _knob_help() -> str:
    from tune_gpt.config import KNOBS, TrainConfig, field_doc

    defaults = TrainConfig()
    lines = ["knobs (--key=value, nanoGPT's names):"]
    for k in KNOBS:
        lines.append(f"  --{k}={getattr(defaults, k)!s:<18} {field_doc(k)}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tune-gpt",
        description="Tune small GPT training runs: Ray Tune + Optuna + ASHA, tracked in MLflow, "
                    "summarised as tuning-strategy reports.")
    from tune_gpt import __version__
    p.add_argument("--version", action="version", version=f"tune-gpt {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    # --- search
    s = sub.add_parser("search", help="run a hyperparameter search from a search-space YAML",
                       description="Run a Ray Tune search (Optuna sampler, ASHA early stopping) "
                                   "logged to MLflow, then write a tuning report.")
    s.add_argument("space", help="search-space YAML (see search_spaces/)")
    _add_search_flags(s)
    s.add_argument("--resume", action="store_true",
                   help="continue the latest unfinished search of this space (or --name); "
                        "the same as `tune-gpt resume NAME`")
    s.set_defaults(func=_cmd_search)

    r = sub.add_parser("resume", help="continue an interrupted search by name")
    r.add_argument("name", help="search name (a folder under the storage path)")
    r.add_argument("--storage-path", default=None, help="where searches are kept (default ./runs)")
    r.add_argument("--address", default=None, help="Ray cluster address")
    r.set_defaults(func=_cmd_resume)

    v = sub.add_parser("validate", help="check a search-space YAML without running anything")
    v.add_argument("space")
    v.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a YAML key (dotted, e.g. budget.num_samples=4)")
    v.add_argument("--profile", default=None, help="force a profile (cpu | gpu) instead of auto")
    v.add_argument("--data", default=None, help="the data to check it with, as search --data")
    v.set_defaults(func=_cmd_validate)

    # --- single runs
    t = sub.add_parser("train", help="one training run (nanoGPT-style --key=value overrides)",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=_knob_help())
    t.add_argument("config", nargs="?", help="optional YAML of knobs, or a nanoGPT config/*.py (read, never run)")
    t.add_argument("--data", default=None, help="text file to train on (overrides dataset)")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    t.add_argument("--resume", action="store_true", help="continue from OUT_DIR/last.pt (the state at the latest evaluation)")
    t.set_defaults(func=_cmd_train, knobs=True)

    e = sub.add_parser("estimate", help="parameters, tokens/iter, FLOPs and memory without training",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=_knob_help())
    e.add_argument("config", nargs="?", help="optional YAML of knobs, or a nanoGPT config/*.py (read, never run)")
    e.add_argument("--data", default=None, help="text file (its vocabulary size is used)")
    e.set_defaults(func=_cmd_estimate, knobs=True)

    g = sub.add_parser("sample", help="generate text from a trained checkpoint")
    g.add_argument("checkpoint", help="ckpt.pt written by `tune-gpt train`")
    g.add_argument("--start", default="\n", help="prompt text")
    g.add_argument("--num-samples", type=int, default=1)
    g.add_argument("--max-new-tokens", type=int, default=500)
    g.add_argument("--temperature", type=float, default=0.8)
    g.add_argument("--top-k", type=int, default=200)
    g.add_argument("--seed", type=int, default=1337)
    g.add_argument("--device", default="auto")
    g.set_defaults(func=_cmd_sample)

    ev = sub.add_parser("eval", help="a checkpoint's loss on the whole validation split",
                        description="Score a checkpoint on every token of a validation split "
                                    "(non-overlapping windows of block_size), not on "
                                    "eval_iters random batches as training does.")
    ev.add_argument("checkpoint", help="ckpt.pt (the best model) or last.pt written by "
                                       "`tune-gpt train`")
    ev.add_argument("--data", default=None,
                    help="text file or nanoGPT data folder (default: the data set the "
                         "checkpoint was trained on)")
    ev.add_argument("--json", action="store_true",
                    help='print {"val_loss": x, "tokens": n} instead of a sentence')
    ev.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ev.add_argument("--context", type=int, default=None, metavar="N",
                    help="score in windows of N tokens instead of the model's block_size "
                         "(N <= block_size): compares models trained with different "
                         "block sizes at the same context")
    ev.set_defaults(func=_cmd_eval)

    d = sub.add_parser("data", help="what a data set holds and what a search of it will see",
                       description="The data doctor: tokens, vocabulary and tokenizer, the "
                                   "epochs each trial sees, loss references, warnings.")
    d.add_argument("dataset", help="shakespeare_char, a UTF-8 text file, or a nanoGPT data "
                                   "folder (train.bin, val.bin, optional meta.pkl)")
    d.add_argument("--tokenizer", default="auto", help="auto | char | gpt2 (text files)")
    d.add_argument("--tokens-per-trial", default=None, help="e.g. 2M: shows the epochs")
    d.add_argument("--block-size", type=int, default=None)
    d.add_argument("--batch-size", type=int, default=None)
    d.set_defaults(func=_cmd_data)

    # --- results
    rp = sub.add_parser("report", help="write the tuning report of a finished search")
    rp.add_argument("search", help="search name, its storage folder, or an MLflow parent run id")
    rp.add_argument("--storage-path", default=None)
    rp.add_argument("--tracking-uri", default=None)
    rp.add_argument("--lang", choices=("en", "zh"), default="en")
    rp.add_argument("--out", default=None, help="report folder (default reports/<name>)")
    rp.set_defaults(func=_cmd_report)

    tr = sub.add_parser("transfer", help="write a search's best config for a wider model (µP)",
                        description="Take the best config of a search on a small proxy and "
                                    "write it for a larger model, with the hyperparameters "
                                    "that transfer across width under µP; says what does not.")
    tr.add_argument("report", help="report folder (reports/NAME) or its best_config.yaml")
    tr.add_argument("--out", default=None,
                    help="where to write (default REPORT/transfer-<n_layer>x<n_embd>.yaml)")
    tr.set_defaults(func=_cmd_transfer, knobs=True)

    pl = sub.add_parser("plan", help="a search's best config brought to your longer run",
                        description="Bring a finished search's measurements to a run of "
                                    "--tokens tokens: the config whose own loss curve "
                                    "predicts the lowest loss there, its learning rate moved "
                                    "to that horizon, a predicted val_loss with an interval, "
                                    "and the evidence; refuses to extrapolate past what the "
                                    "search measured. With --n_embd/--n_layer: that config "
                                    "brought by µP to a wider or deeper model (no predicted "
                                    "loss there: the search measured its own sizes only).")
    pl.add_argument("search", help="search name, its folder, or its report folder")
    pl.add_argument("--tokens", required=True, help="the run's length in tokens (e.g. 20M)")
    pl.add_argument("--storage-path", default=None, help="where searches are kept (default ./runs)")
    pl.add_argument("--out", default=None,
                    help="where to write plan-<N>.yaml and plan-<N>_nanogpt.py (plan-<N>-"
                         "<n_layer>x<n_embd>.* for another size; default reports/<name>)")
    pl.add_argument("--n_embd", type=int, default=None,
                    help="plan a wider model: the config brought there by µP (default: the "
                         "searched width)")
    pl.add_argument("--n_layer", type=int, default=None,
                    help="plan a deeper model (default: the searched depth)")
    pl.add_argument("--json", action="store_true", help="print the plan as JSON")
    pl.set_defaults(func=_cmd_plan)

    u = sub.add_parser("ui", help="open the MLflow UI on a search's runs table",
                       description="Start the MLflow UI on the searches' store; print (and "
                                   "open, where a browser exists) the address of a search's "
                                   "runs table: best trial first, with val_loss, outcome and "
                                   "the tuned knobs as columns.")
    u.add_argument("--name", default=None,
                   help="search name or parent run id (default: the latest search)")
    u.add_argument("--tracking-uri", default=None,
                   help="MLflow store (default: sqlite store under the storage path)")
    u.add_argument("--storage-path", default=None, help="where searches are kept (default ./runs)")
    u.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback only)")
    u.add_argument("--port", type=int, default=5000)
    u.add_argument("--serve", action="store_true",
                   help="run a tracking server that trials on other nodes can log to")
    u.add_argument("--no-browser", dest="browser", action="store_false",
                   help="only print the address")
    u.set_defaults(func=_cmd_ui)
    return p


def _add_search_flags(s: argparse.ArgumentParser) -> None:
    s.add_argument("--num-samples", type=int, default=None, help="trials to run")
    s.add_argument("--max-iters", type=int, default=None, help="cap each trial's iterations")
    s.add_argument("--data", default=None,
                   help="text file, nanoGPT data folder or dataset name to train on")
    s.add_argument("--tokenizer", default=None, choices=("auto", "char", "gpt2"),
                   help="how a text file becomes tokens (= --set fixed.tokenizer=...)")
    s.add_argument("--name", default=None, help="search name (default: the space's name + time)")
    s.add_argument("--seed", type=int, default=None, help="sampler and training seed")
    s.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: sqlite store under the storage path)")
    s.add_argument("--storage-path", default=None, help="where searches are kept (default ./runs)")
    s.add_argument("--address", default=None, help="existing Ray cluster (default: local Ray)")
    s.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a YAML key (dotted, e.g. budget.num_samples=4)")
    s.add_argument("--profile", default=None, help="force a profile (cpu | gpu) instead of auto")
    s.add_argument("--lang", choices=("en", "zh"), default="en", help="report language")
    s.add_argument("--no-report", action="store_true", help="skip writing the report")


# ----------------------------------------------------------------------------- commands

def _cmd_train(args: argparse.Namespace, extra: list[str]) -> int:
    from tune_gpt.config import load_train_config
    from tune_gpt.train import train

    values = {"dataset": args.data} if args.data else {}
    cfg = load_train_config(args.config, extra, **values)
    result = train(cfg, threads=args.threads, resume=args.resume, log=print, save=True)
    print(result.summary())
    return 0


def _cmd_estimate(args: argparse.Namespace, extra: list[str]) -> int:
    from tune_gpt.config import load_train_config
    from tune_gpt.estimate import estimate_for_config

    values = {"dataset": args.data} if args.data else {}
    cfg = load_train_config(args.config, extra, **values)
    print(estimate_for_config(cfg).format())
    return 0


def _cmd_sample(args: argparse.Namespace, extra: list[str]) -> int:
    from tune_gpt.sample import generate

    for i, text in enumerate(generate(args.checkpoint, start=args.start,
                                      num_samples=args.num_samples,
                                      max_new_tokens=args.max_new_tokens,
                                      temperature=args.temperature, top_k=args.top_k,
                                      seed=args.seed, device=args.device)):
        if i:
            print("-" * 40)
        print(text)
    return 0


def _cmd_eval(args: argparse.Namespace, extra: list[str]) -> int:
    from tune_gpt.evaluate import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, data=args.data, device=args.device,
                                 context=args.context)
    print(result.to_json() if args.json else result.format())
    return 0


def _cmd_data(args: argparse.Namespace, extra: list[str]) -> int:
    from tune_gpt.data import prepare
    from tune_gpt.data.doctor import doctor
    from tune_gpt.space.amounts import parse_amount

    tokens = int(parse_amount(args.tokens_per_trial, "--tokens-per-trial")) \
        if args.tokens_per_trial else None
    data = prepare(args.dataset, tokenizer=args.tokenizer)
    print(doctor(data, tokens_per_trial=tokens, block_size=args.block_size,
                 batch_size=args.batch_size).format())
    return 0


def _cmd_validate(args: argparse.Namespace, extra: list[str]) -> int:
    from tune_gpt.space import describe, load_space, peek_data

    from tune_gpt.space import auto_priors

    space = load_space(args.space, sets=args.sets, profile=args.profile)
    space.data = args.data or space.data  # as search --data does
    peek_data(space)
    text = describe(space)
    lines = auto_priors.resolve(space, auto_priors.train_tokens_here(space.data),
                                auto_priors.device_of(space))
    print(text + ("\n  priors:\n" + "\n".join(f"    {x}" for x in lines) if lines else ""))
    return 0


def _cmd_search(args: argparse.Namespace, extra: list[str]) -> int:
    from tune_gpt.search import SearchOptions, run_search

    opts = SearchOptions(space=args.space, num_samples=args.num_samples, max_iters=args.max_iters,
                         data=args.data, name=args.name, seed=args.seed,
                         tracking_uri=args.tracking_uri, storage_path=args.storage_path,
                         address=args.address, resume=args.resume,
                         sets=args.sets + ([f"fixed.tokenizer={args.tokenizer}"]
                                           if args.tokenizer else []),
                         profile=args.profile, lang=args.lang, report=not args.no_report)
    return _outcome(run_search(opts))


def _cmd_resume(args: argparse.Namespace, extra: list[str]) -> int:
    from tune_gpt.search import resume_search

    return _outcome(resume_search(args.name, storage_path=args.storage_path,
                                  address=args.address))


def _outcome(result: Any) -> int:
    """0 when the search has a result to hand over, 1 when no trial produced one (every
    outcome is recorded all the same; the summary above says which)."""
    return 0 if result.best is not None else 1


def _cmd_report(args: argparse.Namespace, extra: list[str]) -> int:
    from tune_gpt.report import write_report_for

    path = write_report_for(args.search, storage_path=args.storage_path,
                            tracking_uri=args.tracking_uri, lang=args.lang, out=args.out)
    print(f"report: {path}")
    return 0


def _cmd_plan(args: argparse.Namespace, extra: list[str]) -> int:
    import json

    from tune_gpt.report.folder import plan_run, results_of, write_plan
    from tune_gpt.space.amounts import parse_amount

    tokens = int(parse_amount(args.tokens, "--tokens"))
    plan = plan_run(args.search, tokens, args.storage_path, n_embd=args.n_embd,
                    n_layer=args.n_layer)
    out = Path(args.out) if args.out else Path("reports") / plan.search
    plan.files = [str(p) for p in write_plan(plan, out, results_of(args.search,
                                                                    args.storage_path))]
    print(json.dumps(plan.to_dict(), indent=1) if args.json else plan.text())
    for w in plan.warnings if args.json else []:  # the text says them; JSON is for programs
        print(f"tune-gpt plan: warning: {w}", file=sys.stderr)
    return 0


def _cmd_transfer(args: argparse.Namespace, extra: list[str]) -> int:
    from tune_gpt.config import TrainConfig
    from tune_gpt.data import vocab_size_of
    from tune_gpt.estimate import count_params
    from tune_gpt.transfer import transfer

    t = transfer(args.report, extra)
    c = t.config
    out = Path(args.out) if args.out else \
        t.source.parent / f"transfer-{c.n_layer}x{c.n_embd}.yaml"
    text = t.yaml()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UserError(f"{out}: cannot write ({e.strerror}); pass --out PATH") from None
    full = {**TrainConfig().to_dict(), **t.proxy}  # knobs the file leaves out: defaults
    for note in t.notes:
        print(note)
    try:  # the vocabulary is the data's (no download for a named data set)
        vocab = vocab_size_of(c.dataset, c.tokenizer)
    except UserError as e:
        print(f"parameter counts left out: the data set's vocabulary is unknown here ({e})")
    else:
        sizes = [count_params(k["n_layer"], k["n_embd"], k["block_size"], vocab, k["bias"])[0]
                 for k in (full, c.to_dict())]
        print(f"proxy {sizes[0] / 1e6:.2f}M -> target {sizes[1] / 1e6:.2f}M parameters "
              f"(at the data's vocabulary of {vocab:,})")
    print(f"wrote {out}; train it with: tune-gpt train {out}")
    return 0


def _cmd_ui(args: argparse.Namespace, extra: list[str]) -> int:
    from tune_gpt.mlflow_ui import run_ui

    return run_ui(tracking_uri=args.tracking_uri, host=args.host, port=args.port,
                  serve=args.serve, storage_path=args.storage_path, name=args.name,
                  browser=args.browser)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # train/estimate take nanoGPT-style --key=value knobs that argparse does not know.
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if extra and not getattr(args, "knobs", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args, extra)
    except UserError as e:
        print(f"tune-gpt {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, SearchInterrupted) as e:
        print(f"tune-gpt {args.command}: {e or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
