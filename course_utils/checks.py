"""Assertion helpers for the notebooks' test cells.

Every helper raises :class:`AssertionError` with a message a student can act on::

    <name>: expected <...>, got <...>. Hint: <hint>

and says, where it applies, the type, dtype and shape of both sides.

The helpers never call a method of the student's object to decide whether it
is right: types are compared with ``is`` (``type(value) is ndarray``), values
are converted to a plain float numpy array *after* checking that they are a
number or an array, and comparisons run on those arrays.  An object whose
``__eq__`` always returns True (nbgrader issue #1379) therefore fails every
check instead of passing it.

Used by the test cells of every assignment in ``source/`` (see
docs/ARCHITECTURE.md, "course_utils.checks").
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["check_type", "check_shape", "check_dtype", "check_close", "check_equal"]

#: Characters of a value's ``repr`` quoted in a message (long arrays are cut).
_MAX_REPR = 300

# plain Python scalars whose own comparison operators we trust
_SCALARS = (bool, int, float, complex, str, bytes, type(None))


# ----------------------------------------------------------------------------- formatting
def _type_name(value_or_type: Any) -> str:
    """``numpy.ndarray``, ``pandas.Series``, ``float`` ... for a value or a type."""
    t = value_or_type if isinstance(value_or_type, type) else type(value_or_type)
    module = t.__module__
    if module == "builtins":
        return t.__qualname__
    top = module.split(".")[0]
    return f"{top}.{t.__qualname__}"


def _short_repr(value: Any) -> str:
    """repr() that cannot raise and is at most _MAX_REPR characters long."""
    try:
        if isinstance(value, np.ndarray):
            text = np.array2string(value, precision=4, separator=", ", threshold=20)
        else:
            text = repr(value)
    except Exception as exc:  # a student's __repr__ may raise anything; say so, keep checking
        text = f"<{_type_name(value)} whose repr() raised {type(exc).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


def _describe(value: Any) -> str:
    """``<repr> (type numpy.ndarray, dtype float64, shape (3,))``."""
    parts = [f"type {_type_name(value)}"]
    dtype = _dtype_name_or_none(value)
    if dtype is not None:
        parts.append(f"dtype {dtype}")
    shape = _shape_or_none(value)
    if shape is not None and not isinstance(value, _SCALARS):
        parts.append(f"shape {shape}")
    return f"{_short_repr(value)} ({', '.join(parts)})"


def _fail(name: str, expected: str, got: str, hint: str, detail: str = "") -> None:
    message = f"{name}: expected {expected}, got {got}."
    if detail:
        message += f" {detail}"
    if hint:
        message += f" Hint: {hint}"
    raise AssertionError(message)


# ----------------------------------------------------------------------------- introspection
def _is_tensor(value: Any) -> bool:
    """True for TensorFlow eager tensors and Keras/TF variables (module checked, no import)."""
    module = type(value).__module__
    return module.startswith(("tensorflow", "keras")) and callable(getattr(value, "numpy", None))


def _dtype_name_or_none(value: Any) -> str | None:
    """numpy-style dtype name of an array, tensor, pandas object or numpy scalar; else None."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.dtype.name
    if _is_tensor(value):
        dtype = value.dtype
        return str(getattr(dtype, "name", dtype))
    if type(value) is pd.Series:
        return str(value.dtype)
    return None


def _shape_or_none(value: Any) -> tuple[int, ...] | None:
    """Shape of an array-like as a tuple of Python ints, or None when it has none."""
    if isinstance(value, (np.ndarray, np.generic)):
        return tuple(int(s) for s in value.shape)
    if _is_tensor(value) or type(value) in (pd.Series, pd.DataFrame):
        try:
            return tuple(int(s) for s in value.shape)
        except (TypeError, ValueError, AttributeError):
            return None
    if isinstance(value, _SCALARS) and not isinstance(value, (str, bytes, type(None))):
        return ()
    if type(value) in (list, tuple):
        try:
            return tuple(int(s) for s in np.shape(np.asarray(value, dtype=object)))
        except (TypeError, ValueError):
            return None
    return None


def _is_numeric_leaf(x: Any) -> bool:
    """A plain number: Python bool/int/float or a numpy number, nothing user-defined."""
    return type(x) in (bool, int, float) or (
        isinstance(x, np.generic) and type(x).__module__ == "numpy" and x.dtype.kind in "biuf")


def _to_float_array(value: Any, name: str, hint: str) -> np.ndarray:
    """Convert a number, numpy array, tensor, pandas object or nested list to float64.

    Anything else (a user-defined object, a string, a dict) is rejected before
    it is touched, so no method of it is ever called.
    """
    if _is_numeric_leaf(value):
        return np.asarray(value, dtype=np.float64)
    if type(value) is np.ndarray:
        if value.dtype.kind not in "biuf":
            _fail(name, "numbers", f"an array of dtype {value.dtype.name}", hint)
        return value.astype(np.float64)
    if _is_tensor(value):
        array = np.asarray(value.numpy())
        if type(array) is not np.ndarray or array.dtype.kind not in "biuf":
            _fail(name, "numbers", _describe(value), hint, "The tensor does not hold numbers.")
        return array.astype(np.float64)
    if type(value) in (pd.Series, pd.DataFrame):
        array = value.to_numpy()
        if array.dtype.kind not in "biuf":
            _fail(name, "numbers", _describe(value), hint,
                  "The pandas object does not hold numbers only.")
        return array.astype(np.float64)
    if type(value) in (list, tuple):
        leaves = _flatten(value)
        if leaves is None or not all(_is_numeric_leaf(x) for x in leaves):
            _fail(name, "numbers or an array of numbers", _describe(value), hint,
                  "The list/tuple holds something other than plain numbers.")
        try:
            return np.asarray(value, dtype=np.float64)
        except ValueError:   # ragged nesting
            _fail(name, "a rectangular array of numbers", _describe(value), hint,
                  "The nested lists have different lengths.")
    _fail(name, "a number or an array of numbers", _describe(value), hint)
    raise AssertionError  # unreachable: _fail always raises


def _flatten(value: Any) -> list | None:
    """Leaves of nested lists/tuples/arrays; None when something else is nested inside."""
    out: list = []
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) in (list, tuple):
            stack.extend(item)
        elif type(item) is np.ndarray:
            out.extend(item.ravel().tolist() if item.dtype.kind in "biuf" else [object()])
        else:
            out.append(item)
    return out


# ----------------------------------------------------------------------------- public API
def check_type(value: Any, expected_type: type | tuple[type, ...], name: str,
               hint: str = "") -> None:
    """Fail unless ``type(value)`` is exactly ``expected_type`` (or one of a tuple of types).

    Subclasses are rejected on purpose: a subclass can override ``__eq__``.
    ``bool`` is not accepted where ``int`` is asked for, nor ``numpy.bool_``
    where ``bool`` is.
    """
    types = expected_type if isinstance(expected_type, tuple) else (expected_type,)
    if not types or not all(isinstance(t, type) for t in types):
        raise TypeError(f"check_type: expected_type must be a type or a tuple of types, "
                        f"got {expected_type!r}")
    if any(type(value) is t for t in types):
        return
    wanted = " or ".join(_type_name(t) for t in types)
    detail = ""
    if any(isinstance(value, t) for t in types):
        detail = "A subclass is not accepted; return the plain type."
    _fail(name, f"a {wanted}", f"a {_type_name(value)}: {_describe(value)}", hint, detail)


def check_shape(value: Any, shape: Sequence[int], name: str, hint: str = "") -> None:
    """Fail unless ``value`` is an array-like (array, tensor, pandas object, list) of ``shape``."""
    expected = tuple(int(s) for s in shape)
    got = _shape_or_none(value)
    if got is None:
        _fail(name, f"an array of shape {expected}", _describe(value), hint,
              "It has no shape.")
    if got != expected:
        _fail(name, f"shape {expected}", f"shape {got}: {_describe(value)}", hint)


def check_dtype(value: Any, dtype: Any, name: str, hint: str = "") -> None:
    """Fail unless the dtype of an array/tensor/pandas object/numpy scalar is ``dtype``.

    ``dtype`` is anything ``numpy.dtype`` accepts (``"float32"``, ``np.int64``)
    or a tuple of those.  Python scalars have no dtype and fail.
    """
    wanted_list = dtype if isinstance(dtype, tuple) else (dtype,)
    wanted = tuple(np.dtype(getattr(d, "as_numpy_dtype", d)).name for d in wanted_list)
    got = _dtype_name_or_none(value)
    if got is None:
        _fail(name, f"an array of dtype {' or '.join(wanted)}", _describe(value), hint,
              "It has no dtype (a numpy array or tensor has one).")
    if got not in wanted:
        _fail(name, f"dtype {' or '.join(wanted)}", f"dtype {got}: {_describe(value)}", hint)


def check_close(got: Any, expected: Any, name: str, atol: float = 1e-4, rtol: float = 1e-4,
                hint: str = "") -> None:
    """Fail unless ``got`` is a number/array with ``expected``'s shape and close values.

    ``got`` may be a Python or numpy number, a numpy array, a tensor, a pandas
    Series/DataFrame or a (nested) list of numbers; anything else fails before
    it is compared.  Closeness is ``|got - expected| <= atol + rtol * |expected|``
    elementwise; NaN matches NaN only, infinities match only the same infinity.
    A pandas object is compared by position (its index is not looked at: use
    ``check_equal`` on ``list(got.index)`` for that).
    """
    expected_arr = _to_float_array(expected, f"check_close({name}): expected value", "")
    got_arr = _to_float_array(got, name, hint)
    if got_arr.shape != expected_arr.shape:
        _fail(name, f"shape {expected_arr.shape}: {_describe(expected)}",
              f"shape {got_arr.shape}: {_describe(got)}", hint)
    ok = np.isclose(got_arr, expected_arr, atol=atol, rtol=rtol, equal_nan=True)
    if bool(np.all(ok)):
        return
    bad = np.argwhere(~ok)
    first = tuple(int(i) for i in bad[0])
    with np.errstate(invalid="ignore"):
        diff = np.abs(got_arr - expected_arr)
    finite = diff[np.isfinite(diff)]
    detail = (f"{bad.shape[0]} of {ok.size} value(s) differ"
              + (f"; first at index {first}: expected {expected_arr[first].item()!r}, "
                 f"got {got_arr[first].item()!r}" if got_arr.ndim else "")
              + (f"; largest difference {float(finite.max()):.6g}" if finite.size else "")
              + f" (tolerance atol={atol}, rtol={rtol}).")
    _fail(name, _describe(expected), _describe(got), hint, detail)


def check_equal(got: Any, expected: Any, name: str, hint: str = "") -> None:
    """Fail unless ``got`` equals ``expected`` exactly, with exactly the same types.

    Works recursively on str/int/float/bool/None, lists, tuples, dicts (keys
    must be plain scalars or tuples), sets of scalars, numpy arrays (same dtype,
    shape and values) and pandas Series (same index and values).  Float NaN
    equals NaN.  ``expected`` must be one of these types.
    """
    problem = _equal_problem(got, expected, path=name)
    if problem is not None:
        where, exp_text, got_text, detail = problem
        _fail(where, exp_text, got_text, hint, detail)


def _equal_problem(got: Any, expected: Any, path: str) -> tuple[str, str, str, str] | None:
    """None when equal, else (where, expected text, got text, detail)."""
    if type(got) is not type(expected):
        return (path, f"a {_type_name(expected)}: {_short_repr(expected)}",
                f"a {_type_name(got)}: {_describe(got)}", "")
    if type(expected) in _SCALARS:
        # same plain built-in type on both sides: its own == is trustworthy
        if type(expected) is float and math.isnan(expected) and math.isnan(got):
            return None
        if got == expected:
            return None
        return path, _short_repr(expected), _short_repr(got), ""
    if isinstance(expected, np.generic) and type(expected).__module__ == "numpy":
        return _equal_problem(np.asarray(got), np.asarray(expected), path)
    if type(expected) in (list, tuple):
        if len(got) != len(expected):
            return (path, f"{len(expected)} item(s): {_short_repr(expected)}",
                    f"{len(got)} item(s): {_short_repr(got)}", "")
        for i, (g, e) in enumerate(zip(got, expected)):
            problem = _equal_problem(g, e, f"{path}[{i}]")
            if problem is not None:
                return problem
        return None
    if type(expected) is dict:
        for key in got:
            if not _is_plain_key(key):
                return (path, f"a dict with keys {_short_repr(list(expected))}",
                        f"a key of type {_type_name(key)}: {_short_repr(key)}", "")
        missing = [k for k in expected if k not in got]
        extra = [k for k in got if k not in expected]
        if missing or extra:
            return (path, f"keys {_short_repr(list(expected))}", f"keys {_short_repr(list(got))}",
                    f"Missing: {_short_repr(missing)}; unexpected: {_short_repr(extra)}.")
        for key in expected:
            problem = _equal_problem(got[key], expected[key], f"{path}[{key!r}]")
            if problem is not None:
                return problem
        return None
    if type(expected) in (set, frozenset):
        if not all(_is_plain_key(k) for k in got) or set(got) != set(expected):
            return path, _short_repr(expected), _short_repr(got), ""
        return None
    if type(expected) is np.ndarray:
        if got.dtype != expected.dtype:
            return (path, f"dtype {expected.dtype.name}", f"dtype {got.dtype.name}: {_describe(got)}", "")
        if got.shape != expected.shape:
            return (path, f"shape {expected.shape}", f"shape {got.shape}: {_describe(got)}", "")
        if expected.dtype.kind == "O":
            return _equal_problem(got.tolist(), expected.tolist(), path)
        equal = np.array_equal(got, expected, equal_nan=expected.dtype.kind in "fc")
        if not equal:
            mismatch = np.argwhere(got != expected)
            first = tuple(int(i) for i in mismatch[0]) if mismatch.size else ()
            detail = (f"First difference at index {first}: expected {expected[first].item()!r}, "
                      f"got {got[first].item()!r}." if expected.ndim and mismatch.size else "")
            return path, _describe(expected), _describe(got), detail
        return None
    if type(expected) is pd.Series:
        problem = _equal_problem(list(got.index), list(expected.index), f"{path}.index")
        if problem is not None:
            return problem
        return _equal_problem(got.to_numpy(), expected.to_numpy(), f"{path}.values")
    raise TypeError(f"check_equal: cannot compare values of type {_type_name(expected)} "
                    f"(expected must be a plain scalar, list, tuple, dict, set, "
                    f"numpy array or pandas Series)")


def _is_plain_key(key: Any) -> bool:
    if type(key) in _SCALARS:
        return True
    return type(key) is tuple and all(_is_plain_key(k) for k in key)


# ----------------------------------------------------------------------------- environment
#: What the notebooks need: distribution name(s) -> required version prefix.
COURSE_ENVIRONMENT: dict[tuple[str, ...], str] = {
    ("tensorflow-cpu", "tensorflow"): "2.21.",
    ("keras",): "3.",
    ("numpy",): "2.",
    ("pandas",): "",
    ("seaborn",): "0.13.",
    ("scikit-learn",): "1.",
    ("matplotlib",): "3.",
}


def check_environment() -> str:
    """Fail with a clear message unless the notebook runs in the course environment.

    Checks Python 3.11 and the versions of the packages the notebooks import,
    without importing them (no TensorFlow start-up cost).  Returns a one-line
    summary.  Called by the first code cell of every notebook (source/header.ipynb).
    """
    import sys
    from importlib.metadata import PackageNotFoundError, version

    fix = ("Start JupyterLab with `make lab` from the course folder (it uses the course's "
           ".venv), or choose the course's Python as the kernel.")
    problems: list[str] = []
    if sys.version_info[:2] != (3, 11):
        problems.append(f"Python 3.11 expected, this kernel runs {sys.version.split()[0]}")
    found: list[str] = []
    for names, prefix in COURSE_ENVIRONMENT.items():
        installed = None
        for dist in names:
            try:
                installed = version(dist)
                break
            except PackageNotFoundError:
                continue
        if installed is None:
            problems.append(f"{names[0]} is not installed")
        elif not installed.startswith(prefix):
            problems.append(f"{names[0]} {prefix}x expected, found {installed}")
        else:
            found.append(f"{names[0]} {installed}")
    if problems:
        raise RuntimeError("This kernel is not the course environment: "
                           + "; ".join(problems) + ". " + fix)
    return f"Python {sys.version.split()[0]}, " + ", ".join(found) + ": course environment OK."
