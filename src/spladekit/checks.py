"""Argument checks shared by every layer: one definition of "integer", one enum parser, one optional import.

Errors say what was received, what is required and how to fix it. :class:`ArgumentError` derives from both
``ValueError`` and ``TypeError``, so callers that catch either (the convention differs between Python APIs for
"wrong type" and "wrong value") catch it.
"""

from __future__ import annotations

import enum
import importlib
import math
import numbers
import warnings
from collections.abc import Iterable
from types import ModuleType
from typing import Any, TypeVar

import numpy as np

E = TypeVar("E", bound=enum.Enum)


class ArgumentError(ValueError, TypeError):
    """A bad argument: its name, the value received and what is accepted."""


def is_integer(value: Any) -> bool:
    """True for Python and NumPy integers; False for bools (``True`` is an ``int`` to Python, not to users)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """True for finite Python and NumPy real numbers, integers included; False for bools, NaN and infinities."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None,
              allow_none: bool = False, meaning: str | None = None) -> int | None:
    """``value`` as a Python int, after checking it is an integer within [minimum, maximum]."""
    if value is None and allow_none:
        return None
    if not is_integer(value) or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        wanted = _integer_wording(minimum, maximum) + (" or None" if allow_none else "")
        raise ArgumentError(f"{name} must be {wanted}{f' ({meaning})' if meaning else ''}, got {value!r}"
                            f"{'' if is_integer(value) or value is None else f' ({type(value).__name__})'}.")
    return int(value)


def _integer_wording(minimum: int | None, maximum: int | None) -> str:
    """"a positive integer", "a non-negative integer" or "an integer >= m and <= n"."""
    if minimum in (0, 1) and maximum is None:
        return "a positive integer" if minimum == 1 else "a non-negative integer"
    bounds = [f">= {minimum}"] if minimum is not None else []
    bounds += [f"<= {maximum}"] if maximum is not None else []
    return "an integer" + (" " + " and ".join(bounds) if bounds else "")


def check_positive_int(value: Any, name: str, meaning: str | None = None, *, allow_none: bool = False) -> int | None:
    """``value`` as a Python int, after checking it is an integer >= 1."""
    return check_int(value, name, minimum=1, allow_none=allow_none, meaning=meaning)


def check_int_list(value: Any, name: str, meaning: str, *, minimum: int = 1) -> list[int]:
    """``value`` (one integer or an iterable of them) as a list of Python ints, each >= ``minimum``."""
    values = [value] if is_integer(value) else value
    try:
        values = list(values)
    except TypeError:
        values = None
    if values is None or not all(is_integer(v) and v >= minimum for v in values):
        wording = "positive" if minimum == 1 else f">= {minimum}"
        raise ArgumentError(f"{name} must hold {wording} integers ({meaning}), got {value!r}.")
    return [int(v) for v in values]


def check_number(value: Any, name: str, *, minimum: float | None = None, maximum: float | None = None,
                 exclusive_minimum: bool = False, allow_none: bool = False, meaning: str | None = None
                 ) -> float | None:
    """``value`` as a Python float, after checking it is a finite real number within the bounds."""
    if value is None and allow_none:
        return None
    ok = is_number(value)
    if ok and minimum is not None:
        ok = value > minimum if exclusive_minimum else value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        bounds = [f"{'>' if exclusive_minimum else '>='} {minimum}"] if minimum is not None else []
        bounds += [f"<= {maximum}"] if maximum is not None else []
        wanted = "a finite number" + (" " + " and ".join(bounds) if bounds else "") + (" or None" if allow_none else "")
        raise ArgumentError(f"{name} must be {wanted}{f' ({meaning})' if meaning else ''}, got {value!r}.")
    return float(value)


def parse_enum(enum_cls: type[E], value: Any, name: str, aliases: dict[str, E] | None = None, *,
               also: str | None = None) -> E:
    """The member of ``enum_cls`` that ``value`` is or names (its value, or one of ``aliases``).

    Strings are matched on the members' values, then case-insensitively on their values and names. ``also``
    names what else the caller accepts, for the error ("a sampler class or callable").
    """
    if isinstance(value, enum_cls):
        return value
    if aliases and isinstance(value, str) and value in aliases:
        return aliases[value]
    try:
        return enum_cls(value)
    except (ValueError, TypeError):
        pass
    member = _member_named(enum_cls, value)
    if member is not None:
        return member
    accepted = [member.value for member in enum_cls] + sorted(aliases or ())
    raise ArgumentError(f"{name} must be one of {accepted}{f' (or {also})' if also else ''}, got {value!r}.")


def check_texts(value: Any, name: str, *, accept_string: bool = False) -> list[str]:
    """``value`` (a list, tuple, NumPy array or other iterable of strings) as a list of Python strings.

    A single string is an error naming the fix (wrap it in a list), or with ``accept_string`` one text, returned
    as a one-item list. Anything else that is not a string is an error naming ``name``, the row and its type.
    """
    if isinstance(value, str):
        if accept_string:
            return [value]
        raise ArgumentError(f"{name} must be a list of strings, got one string ({value!r:.60}); wrap it in a list: "
                            f"[{name}].")
    if isinstance(value, np.ndarray):
        value = value.tolist()  # NumPy strings become Python strings
    if isinstance(value, (bytes, dict)) or not isinstance(value, Iterable):
        wanted = "a string or a list of strings" if accept_string else "a list of strings"
        raise ArgumentError(f"{name} must be {wanted}, got {type(value).__name__}.")
    texts = list(value)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ArgumentError(f"{name}[{i}] is a {type(text).__name__} ({text!r:.60}), not a string. Only texts "
                                "are accepted: convert or drop that item (None is not an empty string).")
    return texts


def _member_named(enum_cls: type[E], value: Any) -> E | None:
    """The member whose value or name is the string ``value``, in any case; None if there is none."""
    if isinstance(value, str):
        for member in enum_cls:
            if value.lower() in (str(member.value).lower(), member.name.lower()):
                return member
    return None


class Choice(str, enum.Enum):
    """A string enum that can be built from a member's value or name in any case (``Kind("No_Duplicates")``), and
    whose error for any other value lists the accepted ones. ``__noun__`` names what a member is, for that error
    ("a batch sampler"). Where the argument's name is known, :func:`parse_enum` gives the better error."""

    __noun__ = "value"

    @classmethod
    def _missing_(cls, value: object) -> Choice:
        member = _member_named(cls, value)
        if member is None:
            raise ArgumentError(f"{value!r} is not a {cls.__noun__}; choose one of {[m.value for m in cls]}.")
        return member


def require(package: str, extra: str, pip_name: str | None = None, *, feature: str = "This") -> ModuleType:
    """Imports the optional ``package``, or raises an ImportError naming the spladekit extra that installs it
    (and the pip package, where its name differs from the import name); ``feature`` names what needs it
    ("The Qdrant connector")."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ImportError(f"{feature} needs the {package!r} package, which is not installed: "
                          f"pip install 'spladekit[{extra}]' (or pip install '{pip_name or package}').") from None


class BlankTextWarning(UserWarning):
    """Texts that are empty or whitespace only: encoded as an empty input, they get a vector that says nothing
    about any content yet scores against every query."""


def blank_positions(texts: list[str]) -> list[int]:
    """The positions of the empty or whitespace-only strings in ``texts``."""
    return [i for i, text in enumerate(texts) if not text.strip()]


def warn_blank_texts(texts: list[str], where: str = "encode") -> list[int]:
    """Warns (:class:`BlankTextWarning`) when some texts are empty or whitespace only; returns their positions.

    Encoding them is not an error (sentence-transformers encodes them too), but their vectors carry no content:
    a blank document still matches queries through the special tokens, a blank query ranks arbitrarily."""
    blank = blank_positions(texts)
    if blank:
        shown = ", ".join(str(i) for i in blank[:5]) + (" ..." if len(blank) > 5 else "")
        warnings.warn(f"{where}: {len(blank)} of {len(texts)} text(s) are empty or whitespace only (position(s) "
                      f"{shown}); each gets a vector of the special tokens alone, unrelated to any content. Drop or "
                      "fill them in.", BlankTextWarning, stacklevel=3)
    return blank
