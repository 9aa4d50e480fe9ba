"""A space's `sampler:` options beyond type, seed and priors go to the Optuna sampler as
keyword arguments. Checked when the space is loaded, so that `validate` refuses what
`search` would only find after writing its folder: the option must be one the sampler has,
its value one YAML can give (a bool, a number, a string: not the Python functions and
objects some options take), of the type the sampler declares, and the sampler must accept
it when built.
"""

from __future__ import annotations

from typing import Any

from tune_gpt.errors import UserError, closest
from tune_gpt.settings import SAMPLERS, SamplerSettings

STARTUP_SAMPLERS = ("tpe", "gp", "cmaes")  # the samplers with n_startup_trials
# Words in an option's declared type that YAML cannot give: Python functions and objects
OBJECTS = ("Callable", "Sampler", "Mutation", "Crossover", "FrozenTrial", "Study")
PLAIN = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,),
         "None": (type(None),)}


def check_sampler_options(s: SamplerSettings, source: str) -> None:
    opts = s.options
    if not opts or (set(opts) == {"n_startup_trials"} and s.type in STARTUP_SAMPLERS):
        return  # checked by the loader, and known to these samplers: no 0.3 s Optuna import
    import inspect
    import warnings

    import optuna

    cls = getattr(optuna.samplers, SAMPLERS[s.type])
    params = {n: p for n, p in inspect.signature(cls).parameters.items()
              if n not in ("seed", "search_space")}
    for key, value in opts.items():
        if key not in params:
            raise UserError(f"{source}: sampler.{key} is not an option of Optuna's "
                            f"{cls.__name__}{closest(key, params)}; its options: "
                            f"{', '.join(params) or 'none besides seed'}")
        _check_value(f"{source}: sampler.{key}", value, str(params[key].annotation))
    if s.type == "grid":
        return
    try:
        with warnings.catch_warnings():  # Optuna's notices wait for the real sampler
            warnings.simplefilter("ignore")
            cls(seed=s.seed, **opts)
    except (TypeError, ValueError) as e:
        raise UserError(f"{source}: sampler: {e}; see Optuna's {cls.__name__} for its "
                        f"options") from None


def _check_value(where: str, value: Any, declared: str) -> None:
    """`value` against the sampler's declared type (a string, e.g. 'bool | None')."""
    if value is None:
        return
    if any(word in declared for word in OBJECTS):
        raise UserError(f"{where} takes a Python object ({declared}), which a YAML space "
                        f"cannot give; leave it out")
    kinds = [k.strip() for k in declared.split("|")]
    if not all(k in PLAIN for k in kinds):
        return  # dicts and lists: Optuna checks them when the sampler is built
    ok = any(isinstance(value, PLAIN[k]) and not (isinstance(value, bool) and k != "bool")
             for k in kinds)
    if not ok:
        raise UserError(f"{where} must be {' or '.join(k for k in kinds if k != 'None')}, "
                        f"got {value!r}")
