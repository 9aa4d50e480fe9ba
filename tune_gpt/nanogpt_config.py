"""Reading nanoGPT's config files (its config/*.py) without running them.

nanoGPT's train.py runs a config file as Python; tune-gpt parses it with `ast` instead and
reads only `name = literal` lines, where a literal may be constant arithmetic such as
`5 * 8`. Anything else (an import, a call, a name) is refused with the file and line, so
reading a config never runs it. Keys tune-gpt has are taken as knobs, keys the file leaves
unset take train.py's defaults (cfg.defaults; dtype and compile keep tune-gpt's), and nanoGPT
keys it cannot honour (wandb_*, init_from = 'gpt2-xl', ...) become notes saying what happens.

    cfg = read_nanogpt_config("nanoGPT/config/train_shakespeare_char.py",
                              TrainConfig().to_dict())
    cfg.knobs    # {'out_dir': 'out-shakespeare-char', 'eval_interval': 250, ...}
    cfg.notes    # ["always_save_checkpoint = False: ignored; tune-gpt saves ...", ...]

The knobs and their defaults come from the caller (tune_gpt.config.read_config_file, which
then type-checks each value naming its line), so this module sits below tune_gpt.config
without importing it.

One tolerance, so that nanoGPT's own finetune_shakespeare.py reads: a key tune-gpt ignores
anyway (wandb_run_name, ...) may hold code, which is skipped, not run, and an import is
accepted when only such values use it.
"""

from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from tune_gpt.errors import UserError, closest

# The configuration keys nanoGPT's train.py declares (and so accepts in a config file).
NANOGPT_KEYS = ("out_dir", "eval_interval", "log_interval", "eval_iters", "eval_only",
                "always_save_checkpoint", "init_from", "wandb_log", "wandb_project",
                "wandb_run_name", "dataset", "gradient_accumulation_steps", "batch_size",
                "block_size", "n_layer", "n_head", "n_embd", "dropout", "bias", "learning_rate",
                "max_iters", "weight_decay", "beta1", "beta2", "grad_clip", "decay_lr",
                "warmup_iters", "lr_decay_iters", "min_lr", "backend", "device", "dtype", "compile")

# nanoGPT keys with no tune-gpt knob: read, never taken (the notes say what happens instead).
UNREAD = ("eval_only", "always_save_checkpoint", "init_from", "wandb_log", "wandb_project",
          "wandb_run_name", "backend")
WANDB = ("wandb_log", "wandb_project", "wandb_run_name")

# train.py's values for keys a config file leaves unset: what the file means there, so they
# fill the keys it leaves unset (but HARDWARE). train.py's dtype is bfloat16 where the GPU
# supports it, else float16.
NANOGPT_DEFAULTS: dict[str, Any] = {
    "dataset": "openwebtext", "eval_interval": 2000, "log_interval": 1, "eval_iters": 200,
    "gradient_accumulation_steps": 40, "batch_size": 12, "block_size": 1024, "n_layer": 12,
    "n_head": 12, "n_embd": 768, "dropout": 0.0, "bias": False, "learning_rate": 6e-4,
    "max_iters": 600000, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.95, "grad_clip": 1.0,
    "decay_lr": True, "warmup_iters": 2000, "lr_decay_iters": 600000, "min_lr": 6e-5,
    "dtype": "bfloat16", "compile": True,
    # not a train.py key, but what its get_lr does: a nanoGPT config means cosine, whatever
    # tune-gpt's own default schedule
    "lr_schedule": "cosine"}

# Unset in a file, these keep tune-gpt's defaults rather than nanoGPT's (which assume a GPU).
HARDWARE = ("dtype", "compile")
NEVER_RUN = "nanoGPT config files are read, never run"
BIGGEST = 10**18  # constant arithmetic past this is a mistake (or an attack), not a knob


@dataclass
class NanoConfig:
    """What a nanoGPT config file sets, as tune-gpt reads it."""

    source: str                                          # the file read
    knobs: dict[str, Any] = field(default_factory=dict)  # tune-gpt knob -> value (not type-checked)
    lines: dict[str, int] = field(default_factory=dict)  # knob -> line that set it
    notes: list[str] = field(default_factory=list)       # one line per thing not taken as written
    ignored: dict[str, Any] = field(default_factory=dict)  # nanoGPT key -> value (None: code)
    # nanoGPT's train.py defaults for the knobs the file leaves unset (what the file means)
    defaults: dict[str, Any] = field(default_factory=dict)

    def all_knobs(self) -> dict[str, Any]:
        """The file's knobs over nanoGPT's defaults: the run nanoGPT would make of it."""
        return {**self.defaults, **self.knobs}


def read_nanogpt_config(path: str | Path, defaults: Mapping[str, Any]) -> NanoConfig:
    """Parse a nanoGPT config file without running it. `defaults`: tune-gpt's knobs and their
    default values (TrainConfig().to_dict()). Raises UserError naming the file and line."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: file not found; check the path")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{p}: not UTF-8 text; save it as UTF-8") from None
    try:
        tree = ast.parse(text, filename=str(p))
    except SyntaxError as e:
        raise UserError(f"{p}:{e.lineno or 1}: not valid Python ({e.msg}); fix the syntax") \
            from None
    except (ValueError, MemoryError, RecursionError) as e:  # null bytes, absurd nesting
        raise UserError(f"{p}: not a config file Python can parse ({e}); {NEVER_RUN}") from None
    return _Reader(p, defaults).read(tree)


# ----------------------------------------------------------------------------- statements

class _Unreadable(Exception):
    """A value or statement the reader does not take; becomes `file:line: message`."""

    def __init__(self, node: ast.AST, message: str):
        super().__init__(message)
        self.line = getattr(node, "lineno", 1)


class _Reader:
    def __init__(self, path: Path, defaults: Mapping[str, Any]):
        self.path = path
        self.defaults = dict(defaults)
        self.out = NanoConfig(source=str(path))
        self.shown: dict[str, str] = {}  # unread key -> how it is written, for the notes

    def fail(self, line: int, message: str) -> UserError:
        return UserError(f"{self.path}:{line}: {message}")

    def read(self, tree: ast.Module) -> NanoConfig:
        uses = _names_in_unread_values(tree)
        for node in tree.body:
            try:
                self.statement(node, uses)
            except _Unreadable as e:
                raise self.fail(e.line, str(e)) from None
            except RecursionError:
                raise self.fail(node.lineno, f"expression nested too deeply; {NEVER_RUN}") from None
        self.finish()
        return self.out

    def statement(self, node: ast.stmt, uses: dict[str, list[str]]) -> None:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            return  # a docstring or a bare string: prose
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            self.imported(node, uses)
            return
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            raise _Unreadable(node, refusal(what(node)))
        key = node.targets[0].id
        if key in UNREAD:
            try:
                value = literal(node.value)
                self.shown[key] = f"{key} = {value!r}"
            except _Unreadable:
                value = None
                self.shown[key] = f"{key} = {_short(node.value)} (code, not run)"
            self.out.ignored[key] = value
            return
        value = literal(node.value)
        where = f"{self.path}:{node.lineno}: "
        if key not in self.defaults:
            known = (*self.defaults, *UNREAD)
            raise UserError(f"{where}unknown key '{key}'{closest(key, known)}; a config "
                            f"file sets nanoGPT's train.py keys or tune-gpt's knobs (see "
                            f"`tune-gpt train --help`)")
        if key == "dataset" and isinstance(value, str):
            value = self.dataset(value)
        if key == "device" and isinstance(value, str):
            value = self.device(value)
        self.out.knobs[key] = value
        self.out.lines[key] = node.lineno

    def imported(self, node: ast.Import | ast.ImportFrom, uses: dict[str, list[str]]) -> None:
        bound = [a.asname or a.name.split(".")[0] for a in node.names]
        if "*" in bound or not all(name in uses for name in bound):
            raise _Unreadable(node, refusal("an import"))
        keys = sorted({k for name in bound for k in uses[name]})
        self.out.notes.append(f"`{_short(node)}`: not run; only {', '.join(keys)} "
                              f"use{'s' if len(keys) == 1 else ''} it, which tune-gpt ignores")

    # --- knobs that need a translation

    def dataset(self, name: str) -> str:
        """nanoGPT's dataset names a folder data/<name> beside its train.py, i.e. one level
        above config/; use that folder when it is there, else leave the name to tune-gpt's
        data resolver (shakespeare_char is a download there)."""
        folder = self.path.resolve().parent.parent / "data" / name
        if name and folder.is_dir():
            self.out.notes.append(f"dataset = {name!r}: nanoGPT's data folder {folder}")
            return str(folder)
        return name

    def device(self, device: str) -> str:
        if device.startswith("cuda:"):
            self.out.notes.append(f"device = {device!r}: tune-gpt trains on the first visible "
                                  f"GPU; pick this one with CUDA_VISIBLE_DEVICES={device[5:]}")
            return "cuda"
        if device == "mps":
            self.out.notes.append("device = 'mps': tune-gpt trains on cpu or cuda, so auto is "
                                  "used (Apple GPUs are not supported)")
            return "auto"
        return device

    # --- notes on what was not taken as written

    def finish(self) -> None:
        out, shown, ign = self.out, self.shown, self.out.ignored
        if any(k in shown for k in WANDB):
            out.notes.append(", ".join(shown[k] for k in WANDB if k in shown)
                             + ": ignored; tune-gpt does not log to Weights & Biases (a search "
                               "logs every trial to MLflow: `tune-gpt ui`)")
        if "init_from" in shown and ign["init_from"] != "scratch":
            if ign["init_from"] == "resume":
                how = "continue a run with `tune-gpt train --resume` (reads out_dir/last.pt)"
            else:
                how = ("tune-gpt trains from scratch (fine-tuning from GPT-2 weights is not "
                       "supported)")
            out.notes.append(f"{shown['init_from']}: ignored; {how}")
        if "eval_only" in shown and ign["eval_only"] is not False:
            out.notes.append(f"{shown['eval_only']}: ignored; `tune-gpt train` always trains "
                             f"(an evaluation-only run is not supported)")
        if "always_save_checkpoint" in shown:
            out.notes.append(f"{shown['always_save_checkpoint']}: ignored; `tune-gpt train` "
                             f"keeps out_dir/ckpt.pt at the lowest val loss (as nanoGPT with "
                             f"always_save_checkpoint = False) and out_dir/last.pt to resume")
        if "backend" in shown:
            out.notes.append(f"{shown['backend']}: ignored; tune-gpt trains on one device "
                             f"(no DDP)")
        # A nanoGPT config file means "train.py's defaults, except these": the keys it leaves
        # unset take nanoGPT's defaults (train_gpt2.py sets no model size: it is GPT-2 124M),
        # except the hardware ones, where tune-gpt's CPU-safe defaults stay.
        default = self.defaults
        taken = [k for k, v in NANOGPT_DEFAULTS.items()
                 if k in default and k not in out.knobs and k not in HARDWARE and default[k] != v]
        for k in taken:
            out.defaults[k] = self.dataset(NANOGPT_DEFAULTS[k]) if k == "dataset" \
                else NANOGPT_DEFAULTS[k]
        if taken:
            out.notes.append("not set in this file, so nanoGPT's train.py defaults apply, as "
                             "they would in nanoGPT: " + ", ".join(
                                 f"{k} {_fmt(NANOGPT_DEFAULTS[k])}" for k in taken))
        kept = [k for k in HARDWARE if k in default and k not in out.knobs
                and default[k] != NANOGPT_DEFAULTS[k]]
        if kept:
            out.notes.append(
                "not set in this file: " + ", ".join(
                    f"{k} {_fmt(default[k])} (tune-gpt's default; nanoGPT's "
                    f"{_fmt(NANOGPT_DEFAULTS[k])} assumes a GPU)" for k in kept)
                + "; on a GPU pass " + " ".join(f"--{k}={NANOGPT_DEFAULTS[k]}" for k in kept))
        lr = out.knobs.get("learning_rate", out.defaults.get("learning_rate"))
        min_lr = out.defaults.get("min_lr", default.get("min_lr"))
        if _is_number(lr) and _is_number(min_lr) and "min_lr" not in out.lines \
                and min_lr > lr:
            out.knobs["min_lr"] = lr / 10
            out.notes.append(f"min_lr: not set, and the default ({min_lr:g}) is above "
                             f"learning_rate ({lr:g}); min_lr = learning_rate / 10 = "
                             f"{lr / 10:g}")


def _names_in_unread_values(tree: ast.Module) -> dict[str, list[str]]:
    """name -> the unread keys whose (skipped) values mention it: the imports they excuse."""
    uses: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id in UNREAD:
            for sub in ast.walk(node.value):
                if isinstance(sub, ast.Name):
                    uses.setdefault(sub.id, []).append(node.targets[0].id)
    return uses


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fmt(v: Any) -> str:
    return repr(v) if isinstance(v, str) else f"{v:g}" if isinstance(v, float) else str(v)


def _short(node: ast.AST, most: int = 60) -> str:
    text = ast.unparse(node)
    return text if len(text) <= most else text[:most - 3] + "..."


# ----------------------------------------------------------------------------- values

_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow}


def refusal(found: str) -> str:
    return f"only `name = literal` assignments are read (found {found}); {NEVER_RUN}"


def literal(node: ast.expr) -> Any:
    """The value of a literal (int, float, str, bool, None) or of constant arithmetic over
    numbers (+ - * / // % **, unary - +); strings may be joined with +. Computed from the
    tree here; nothing is evaluated by Python."""
    if isinstance(node, ast.Constant):
        v = node.value
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        raise _Unreadable(node, refusal(f"a {type(v).__name__} literal"))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        v = _number(literal(node.operand), node.operand)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        a, b = literal(node.left), literal(node.right)
        if isinstance(node.op, ast.Add) and isinstance(a, str) and isinstance(b, str):
            return a + b
        return _arithmetic(node, _number(a, node.left), _number(b, node.right))
    raise _Unreadable(node, refusal(what(node)))


def _number(v: Any, node: ast.expr) -> int | float:
    if not _is_number(v):
        raise _Unreadable(node, refusal(f"arithmetic on {_kind(v)}"))
    return v


def _kind(v: Any) -> str:
    if v is None:
        return "None"
    return {bool: "true/false", str: "a string"}.get(type(v), type(v).__name__)


def _arithmetic(node: ast.BinOp, a: int | float, b: int | float) -> int | float:
    too_big = _Unreadable(node, f"`{_short(node)}` is an absurdly large number (over 1e18); "
                                f"write the value itself")
    if isinstance(node.op, ast.Pow) and isinstance(a, int) and isinstance(b, int) \
            and abs(a) > 1 and b > 0 and (b > 64 or b * math.log2(abs(a)) > 62):
        raise too_big  # refused before computing: 10 ** 10 ** 10 would not finish
    try:
        result = _OPS[type(node.op)](a, b)
    except ZeroDivisionError:
        raise _Unreadable(node, f"`{_short(node)}` divides by zero; write the value itself") \
            from None
    except OverflowError:
        raise too_big from None
    if isinstance(result, complex):
        raise _Unreadable(node, refusal(f"a complex number, `{_short(node)}`"))
    if (isinstance(result, int) and abs(result) > BIGGEST) or \
            (isinstance(result, float) and not math.isfinite(result)):
        raise too_big
    return result


_WHAT: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (ast.JoinedStr, "an f-string"), (ast.List, "a list"), (ast.Tuple, "a tuple"),
    (ast.Dict, "a dict"), (ast.Set, "a set"), (ast.Subscript, "a subscript"),
    (ast.Compare, "a comparison"), (ast.BoolOp, "and/or"),
    (ast.UnaryOp, "an operator other than unary - +"),
    (ast.BinOp, "an operator other than + - * / // % **"),
    (ast.IfExp, "a conditional expression"), (ast.Lambda, "a lambda"),
    ((ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp), "a comprehension"),
    (ast.NamedExpr, "an assignment expression"), ((ast.Await, ast.Yield, ast.YieldFrom), "a yield"),
    (ast.If, "an if statement"), ((ast.For, ast.While, ast.AsyncFor), "a loop"),
    ((ast.With, ast.AsyncWith), "a with statement"), (ast.Try, "a try statement"),
    ((ast.FunctionDef, ast.AsyncFunctionDef), "a function definition"),
    (ast.ClassDef, "a class definition"), (ast.AugAssign, "an augmented assignment (+= ...)"),
    (ast.AnnAssign, "an annotated assignment"), (ast.Delete, "a del statement"),
    ((ast.Import, ast.ImportFrom), "an import"))


def what(node: ast.AST) -> str:
    """A few words naming a piece of code the reader refuses."""
    if isinstance(node, ast.Call):
        return f"a call to {_short(node.func, 30)}()"
    if isinstance(node, ast.Name):
        return f"the name {node.id}; write its value instead"
    if isinstance(node, ast.Attribute):
        return f"the attribute {_short(node, 30)}"
    if isinstance(node, ast.Assign):
        if len(node.targets) > 1:
            return "a chained assignment (a = b = ...)"
        return f"an assignment to {_short(node.targets[0], 30)}"
    if isinstance(node, ast.Expr):
        return "a bare expression" if isinstance(node.value, ast.Constant) else what(node.value)
    for kinds, words in _WHAT:
        if isinstance(node, kinds):
            return words
    return f"a {type(node).__name__} {'statement' if isinstance(node, ast.stmt) else 'expression'}"
