"""Every hyperparameter of the detector, declared once: default, type and bounds, help, command-line flag.

The detector declares each hyperparameter as a dataclass field made by :func:`param`. That one
declaration gives the constructor's argument and default (scikit-learn reads both from the
signature), the check :func:`check` applies, the ``anomaly train`` option (:func:`add_options`,
:func:`given`) and the dashboard's form field (``anomaly.dashboard.common.param_input``). Rules
that join several parameters stay in the detector's ``check_params``.

Written here rather than with a validation library: the rules are few and simple, and the
messages must read as one line naming the parameter (``window must be an integer >= 2, not 1``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import zoneinfo
from dataclasses import dataclass
from typing import Any

import numpy as np

from anomaly.errors import ConfigError

KINDS = ("int", "float", "bool", "choice", "units", "stride", "names", "zone")
GROUPS = ("model", "kind", "flagging", "threshold", "events", "other")


@dataclass(frozen=True)
class Spec:
    """What a hyperparameter may be, and how a user sets it.

    ``low``/``high`` bound numbers (``open_low``/``open_high``: the bound itself is excluded);
    ``choices`` lists a choice's values (``none``: None is allowed too, written ``none`` on the
    command line). ``flag`` is the ``anomaly train`` option (None: Python and the dashboard only);
    ``default_text`` replaces the default shown there (and the option defaults to None) when the
    command computes its own. ``group`` places it in the help and the dashboard form; ``label``
    names it there; ``form=False`` keeps it out of the form.
    """

    kind: str
    help: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple = ()
    none: bool = False
    flag: str | None = None
    group: str = "model"
    metavar: str | None = None
    label: str | None = None
    default_text: str | None = None
    form: bool = True

    def describe(self) -> str:
        """The rule in words, for messages: ``an integer >= 2``, ``a number in [0, 1)``, ``one of a, b``."""
        if self.kind == "int":
            return f"an integer >= {self.low:g}" if self.low is not None else "an integer"
        if self.kind == "float":
            if self.low is not None and self.high is not None:
                return f"a number in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"
            if self.low == 0 and self.open_low:
                return "a positive number"
            return f"a number {'>' if self.open_low else '>='} {self.low:g}" if self.low is not None else "a finite number"
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return f"{'None or ' if self.none else ''}one of {', '.join(map(str, self.choices))}"
        if self.kind == "units":
            return "one or more positive integers"
        if self.kind == "stride":
            return "'auto' or an integer >= 1"
        if self.kind == "zone":
            return "an IANA time zone name such as Europe/Berlin"
        return "a list of column names"

    def valid(self, value: Any) -> bool:
        """Whether ``value`` follows the rule (numpy scalars count as numbers; bools never do)."""
        if value is None:
            return self.none
        if self.kind == "bool":
            return isinstance(value, (bool, np.bool_))
        if self.kind == "choice":
            return value in self.choices
        if self.kind == "stride":
            return value == "auto" or _is_int(value) and value >= 1
        if self.kind == "units":
            units = tuple(value) if isinstance(value, (tuple, list)) else ()
            return bool(units) and all(_is_int(u) and u >= 1 for u in units)
        if self.kind == "names":
            return isinstance(value, (tuple, list)) and all(isinstance(c, str) for c in value)
        if self.kind == "zone":
            return _is_zone(value)
        number = _is_int(value) if self.kind == "int" else _is_number(value)
        return number and _within(float(value), self)


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, (bool, np.bool_))
        and math.isfinite(value)
    )


def _is_zone(value) -> bool:
    """Whether ``value`` names a time zone of the IANA database (``zoneinfo``, which pandas reads too);
    ``localtime``, a machine's own zone, is refused: a saved model must read the same clock anywhere."""
    return isinstance(value, str) and value != "localtime" and value in _zones()


@functools.cache
def _zones() -> frozenset[str]:
    """Every IANA zone name (read once: about 600 names, 40 ms)."""
    return frozenset(zoneinfo.available_timezones())


def _within(value: float, spec: Spec) -> bool:
    if spec.low is not None and (value <= spec.low if spec.open_low else value < spec.low):
        return False
    return spec.high is None or (value < spec.high if spec.open_high else value <= spec.high)


def param(default: Any, kind: str, help: str, **spec) -> Any:
    """A detector field: its ``default`` and its :class:`Spec` (see the module docstring)."""
    if kind not in KINDS:
        raise ValueError(f"unknown parameter kind {kind!r}")
    return dataclasses.field(default=default, metadata={"spec": Spec(kind, help, **spec)})


def specs(cls) -> dict[str, Spec]:
    """``{name: Spec}`` of every hyperparameter of the dataclass ``cls``, in declaration order."""
    return {f.name: f.metadata["spec"] for f in dataclasses.fields(cls) if "spec" in f.metadata}


def defaults(cls) -> dict[str, Any]:
    """``{name: default}`` of every hyperparameter of ``cls``."""
    return {f.name: f.default for f in dataclasses.fields(cls) if "spec" in f.metadata}


def check(obj) -> None:
    """Raise :class:`ConfigError` for the first hyperparameter of ``obj`` that breaks its own rule."""
    for name, spec in specs(type(obj)).items():
        value = getattr(obj, name)
        if not spec.valid(value):
            raise ConfigError(f"{name} must be {spec.describe()}, not {value!r}")


# -- the command line ---------------------------------------------------------------------------
def _int_list(text: str) -> tuple[int, ...]:
    try:
        units = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, not '{text}'") from None
    if not units or min(units) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, not '{text}'")
    return units


def _stride(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer, not '{text}'") from None


def _shown(value: Any, spec: Spec) -> str:
    if spec.default_text is not None:
        return spec.default_text
    if value is None:
        return "none"
    if spec.kind == "bool":
        return "on" if value else "off"
    if spec.kind == "units":
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def dest(spec: Spec) -> str:
    """The argparse destination of a parameter's flag (``--units`` -> ``units``)."""
    return spec.flag.lstrip("-").replace("-", "_")


def _checked(convert, spec: Spec):
    """An argparse type: ``convert``, then the hyperparameter's own rule, so a bad value is refused
    naming the option typed (``argument --latent: expected ...``), not the parameter behind it."""

    def parse(text: str):
        value = convert(text)
        if not spec.valid(value):
            raise argparse.ArgumentTypeError(f"expected {spec.describe()}, not '{text}'")
        return value

    parse.__name__ = convert.__name__  # argparse's "invalid int value: 'x'" names the type by it
    return parse


def add_options(group, cls, which: str, show_defaults: bool = True, suffix: str = "") -> None:
    """Add the options of every flagged hyperparameter of group ``which`` to an argparse group.

    ``show_defaults``: each option defaults to the hyperparameter's default, shown in its help (the
    train command); otherwise options default to None, meaning "keep the detector's" (overrides),
    and ``suffix`` ends their help.
    """
    values = defaults(cls)
    for name, spec in specs(cls).items():
        if spec.flag is None or spec.group != which:
            continue
        default = values[name] if show_defaults else None
        help_text = spec.help + (f" (default: {_shown(values[name], spec)})" if show_defaults else suffix)
        kwargs: dict[str, Any] = {"help": help_text, "dest": dest(spec)}
        if spec.kind == "bool":
            kwargs.update(action=argparse.BooleanOptionalAction, default=default)
        elif spec.kind == "choice":
            choices = [*(str(c) for c in spec.choices), *(["none"] if spec.none else [])]
            kwargs.update(choices=choices, default=_shown(default, spec) if show_defaults else None)
        else:
            convert = {"int": int, "float": float, "units": _int_list, "stride": _stride}.get(spec.kind, str)
            kwargs.update(
                type=_checked(convert, spec),
                default=default if spec.default_text is None else None,
                metavar=spec.metavar,
            )
        group.add_argument(spec.flag, **kwargs)


def form_fields(cls, placed: set[str] | frozenset[str] = frozenset()) -> dict[str, Spec]:
    """The hyperparameters a form shows generically: those with ``form`` set that it has not ``placed`` itself."""
    return {name: spec for name, spec in specs(cls).items() if spec.form and name not in placed}


def given(args, cls, which: tuple[str, ...] = GROUPS) -> dict[str, Any]:
    """Hyperparameters of the groups ``which`` set by parsed ``args`` (None: not given; ``none``: None)."""
    out = {}
    for name, spec in specs(cls).items():
        if spec.flag is None or spec.group not in which:
            continue
        value = getattr(args, dest(spec), None)
        if value is not None:
            out[name] = None if spec.kind == "choice" and value == "none" else value
    return out
