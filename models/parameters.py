"""Named, unit-checked model parameters and their overrides.

Every model module declares its parameters as :class:`Parameter` entries (name, default with unit,
one-line meaning, source). A :class:`ParameterSet` gathers them, accepts overrides by name
(``tau_ca=5*second`` or the string ``"5*second"``) and refuses, with a one-line
:class:`ParameterError`, an unknown name, a value with the wrong physical dimension, NaN/inf,
or a non-positive value where only positive values make sense (time constants, rates).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import brian2
from brian2 import Quantity, Unit
from brian2.units.fundamentalunits import DIMENSIONLESS, get_dimensions, get_unit


class ParameterError(ValueError):
    """A parameter name or value that the models cannot use (message fits on one line)."""


@dataclass(frozen=True)
class Parameter:
    """One model parameter.

    ``unit`` is the Brian2 unit the value is expressed in (``1`` for dimensionless), ``positive``
    forbids zero and negative values (time constants, rates, gains), ``nonnegative`` forbids
    negative ones.
    """

    name: str
    default: Quantity | float
    unit: Unit | int
    doc: str
    source: str = "this project"
    positive: bool = False
    nonnegative: bool = False

    @property
    def dimensionless(self) -> bool:
        return not isinstance(self.unit, Unit)

    @property
    def dimensions(self):
        return DIMENSIONLESS if self.dimensionless else get_dimensions(self.unit)

    def unit_name(self) -> str:
        return "1" if self.dimensionless else str(self.unit)

    def check(self, value) -> Quantity | float:
        """Return ``value`` if it is usable for this parameter, else raise ParameterError."""
        if isinstance(value, str):
            value = parse_quantity(value, self.name)
        if isinstance(value, bool) or not isinstance(value, (int, float, Quantity)):
            raise ParameterError(f"{self.name}: expected a number with unit {self.unit_name()}, got {value!r}")
        if get_dimensions(value) is not self.dimensions:
            raise ParameterError(
                f"{self.name}: wrong unit, expected {self.unit_name()} but got {value!r}"
            )
        raw = float(value) if self.dimensionless else float(value / self.unit)
        if not math.isfinite(raw):
            raise ParameterError(f"{self.name}: value must be finite, got {value!r}")
        if self.positive and raw <= 0:
            raise ParameterError(f"{self.name}: must be > 0, got {value!r}")
        if self.nonnegative and raw < 0:
            raise ParameterError(f"{self.name}: must be >= 0, got {value!r}")
        return float(value) if self.dimensionless else value


# Names a user may write in a value string: Brian2's units and a few constants, nothing else.
_VALUE_NAMESPACE = {
    name: obj
    for name, obj in vars(brian2.units).items()
    if isinstance(obj, (Unit, Quantity))
}
_VALUE_NAMESPACE.update({"pi": math.pi, "e": math.e, "inf": math.inf, "nan": math.nan})


def parse_quantity(text: str, name: str = "value") -> Quantity | float:
    """Evaluate a value string such as ``"5*second"`` or ``"0.2 * mV"`` using Brian2 units only."""
    try:
        code = compile(text.strip(), f"<{name}>", "eval")
    except SyntaxError as exc:
        raise ParameterError(f"{name}: cannot parse {text!r} ({exc.msg})") from None
    unknown = [n for n in code.co_names if n not in _VALUE_NAMESPACE]
    if unknown:
        raise ParameterError(f"{name}: unknown unit or name {unknown[0]!r} in {text!r}")
    try:
        return eval(code, {"__builtins__": {}}, _VALUE_NAMESPACE)  # noqa: S307 - names restricted above
    except Exception as exc:  # arithmetic on units can fail in many ways
        raise ParameterError(f"{name}: cannot evaluate {text!r} ({exc})") from None


class ParameterSet(Mapping):
    """An immutable set of parameter values, keyed by name.

    >>> params = ParameterSet(MINIMAL_PROCESS_PARAMETERS).override(tau_ca="5*second")
    >>> params["tau_ca"]
    5. * second
    """

    def __init__(self, parameters: Iterable[Parameter], values: Mapping | None = None):
        self._specs: dict[str, Parameter] = {}
        for p in parameters:
            if p.name in self._specs:
                raise ParameterError(f"parameter {p.name!r} is declared twice")
            self._specs[p.name] = p
        self._values = {name: spec.check(spec.default) for name, spec in self._specs.items()}
        if values:
            for name, value in values.items():
                self._values[name] = self.spec(name).check(value)

    def spec(self, name: str) -> Parameter:
        try:
            return self._specs[name]
        except KeyError:
            close = [n for n in self._specs if n.lower().startswith(name.lower()[:3])]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ParameterError(f"unknown parameter {name!r}{hint}") from None

    def override(self, values: Mapping | None = None, **kwargs) -> "ParameterSet":
        """A new set with some values replaced; each value is checked against its parameter."""
        merged = dict(self._values)
        for name, value in {**(values or {}), **kwargs}.items():
            merged[name] = self.spec(name).check(value)
        return ParameterSet(self._specs.values(), merged)

    def __getitem__(self, name: str):
        if name not in self._values:
            self.spec(name)
        return self._values[name]

    def __contains__(self, name) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def namespace(self) -> dict:
        """The values as a Brian2 namespace dictionary (``dt`` is a Brian2 internal, so left out)."""
        return {name: value for name, value in self._values.items() if name != "dt"}

    def to_json(self) -> dict:
        """Every parameter with its value expressed in its declared unit, meaning and source."""
        out = {}
        for name, spec in self._specs.items():
            value = self._values[name]
            out[name] = {
                "value": float(value) if spec.dimensionless else float(value / spec.unit),
                "unit": spec.unit_name(),
                "doc": spec.doc,
                "source": spec.source,
            }
        return out


def parse_assignments(assignments: Iterable[str], origin: str = "--set") -> dict[str, str]:
    """Turn ``["tau_ca=5*second", ...]`` (the CLI's ``--set``) into ``{"tau_ca": "5*second"}``;
    ``origin`` names where a malformed item came from in the error."""
    out = {}
    for item in assignments:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise ParameterError(f"{origin}: expected name = value, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def load_parameter_file(path: str | Path) -> dict[str, str]:
    """Read overrides from a JSON object ``{"tau_ca": "5*second"}`` or ``name = value`` lines."""
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"parameter file not found: {path}")
    text = path.read_text()
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParameterError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise ParameterError(f"{path}: expected a JSON object of name: value")
        return {str(k): str(v) for k, v in data.items()}
    out = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            out.update(parse_assignments([line], f"{path} line {number}"))
            value = out[line.partition("=")[0].strip()]
            try:
                parse_quantity(value)
            except ParameterError as exc:
                raise ParameterError(f"{path} line {number}: {str(exc).partition(': ')[2]}") from None
    return out


def format_quantity(value) -> str:
    """A short human-readable form of a parameter value."""
    if isinstance(value, Quantity) and not value.is_dimensionless:
        return f"{float(value / get_unit(value.dim)):g} {get_unit(value.dim)}"
    return f"{float(value):g}"
