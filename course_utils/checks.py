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

Tamper protection
-----------------
nbgrader runs a submission and the test cells in the *same* Python process,
so a submission can try to switch the tests off instead of passing them:
rebind ``check_close`` in the notebook, assign ``course_utils.checks.check_close
= lambda *a, **k: None``, or replace ``numpy.isclose``, ``numpy.testing.
assert_allclose``, ``math.isclose``, ``pandas.Series`` ... that the helpers
rely on.  Four measures, chosen so that none depends on an object the
submission could have replaced before the test cell runs:

1. Test cells bind the helpers themselves (``from course_utils.checks import
   check_close, ...`` at the top of every test cell).  nbgrader restores
   locked test cells from its gradebook, so that line always runs, and a
   name the submission rebound in the notebook is rebound back.
2. This module is read-only: its class is :class:`_ReadOnlyModule`, whose
   ``__setattr__``/``__delattr__`` refuse, so ``checks.check_close = f``
   raises in the submission's own cell and changes nothing.
3. Every attribute read of this module (``from course_utils.checks import
   x`` is one) and every call of a public helper first runs
   :func:`verify_untampered`: the module's functions must still be the ones
   defined by this file, with their original code (catches writes through
   ``vars(checks)`` and ``f.__code__ = ...``), and every library callable in
   ``_LIBRARY`` (numpy, numpy.testing, math, pandas, builtins) must be
   *library code*: a C builtin/ufunc of the right name, or a function of
   the right name whose code lies in the installed packages or the standard
   library -- never in a notebook cell (``/tmp/ipykernel_*``) or a file
   handed in with the submission.  ``check_type`` applies the same rule to
   the types it is asked for (a test cannot be made to ask for a class the
   submission defined).  A failed verification is an AssertionError naming
   what was replaced: the test cell scores 0.
4. Values are never compared with their own methods (see above).

Provenance is checked rather than identity with a snapshot taken at import
because the submission's cells may run before this module is first imported
(the environment-check cell of the header can be edited too).

What this cannot stop, by design of in-process grading: a submission that
replaces ``sys.modules["course_utils.checks"]`` or the module's ``__class__``
through ``object.__setattr__``, forges code objects (``code.replace(
co_filename=...)``), or rewrites later cells before they run (IPython's
``ast_transformers`` / ``input_transformers_post``).  Those are deliberate
attacks on the grader; tests/test_adversarial.py shows one of them getting
full marks (case ``rewrites_later_cells``), and
``course_utils.tamper.suspicious_cells`` flags such submissions for a human.

Used by the test cells of every assignment in ``source/`` (see
docs/ARCHITECTURE.md, "course_utils.checks").
"""
from __future__ import annotations

import math
import os
import sys
import sysconfig
import types as _types
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["check_type", "check_shape", "check_dtype", "check_close", "check_equal",
           "verify_untampered"]

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
    verify_untampered()
    types = expected_type if isinstance(expected_type, tuple) else (expected_type,)
    if not types or not all(isinstance(t, type) for t in types):
        raise TypeError(f"check_type: expected_type must be a type or a tuple of types, "
                        f"got {expected_type!r}")
    for t in types:
        if not _is_library_type(t):
            raise AssertionError(
                f"check_type({name}): the expected type {_type_name(t)} is not a library type "
                f"(it is defined in a notebook cell or a file handed in with the submission). "
                f"A submission must not replace the types the tests ask for "
                f"(numpy.ndarray, pandas.Series, ...); remove that code and rerun the notebook.")
    if any(type(value) is t for t in types):
        return
    wanted = " or ".join(_type_name(t) for t in types)
    detail = ""
    if any(isinstance(value, t) for t in types):
        detail = "A subclass is not accepted; return the plain type."
    _fail(name, f"a {wanted}", f"a {_type_name(value)}: {_describe(value)}", hint, detail)


def check_shape(value: Any, shape: Sequence[int], name: str, hint: str = "") -> None:
    """Fail unless ``value`` is an array-like (array, tensor, pandas object, list) of ``shape``."""
    verify_untampered()
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
    verify_untampered()
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
    verify_untampered()
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
    verify_untampered()
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


# ----------------------------------------------------------------------------- tamper protection
def _trusted_prefixes() -> tuple[str, ...]:
    """Folders whose Python files count as library code: the interpreter's and this package's."""
    folders = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
               os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
               + os.sep + "course_utils"}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        folder = sysconfig.get_paths().get(key)
        if folder:
            folders.add(folder)
    out = set()
    for folder in folders:
        for variant in (os.path.abspath(folder), os.path.realpath(folder)):
            out.add(variant.rstrip(os.sep) + os.sep)
    # a submission is graded in <course>/autograded/<student>/: never under these folders
    return tuple(sorted(out))


_TRUSTED_PREFIXES: tuple[str, ...] = _trusted_prefixes()
_LIBRARY_CODE: dict = {}    # id -> code object already found to be library code
_HEAPTYPE = 1 << 9    # Py_TPFLAGS_HEAPTYPE: set for every class created by a class statement

#: Library callables and classes the helpers and the notebooks' tests rely on:
#: (module, dotted attribute, expected __name__).  Checked on every helper call.
_LIBRARY: tuple[tuple[str, str, str], ...] = (
    ("numpy", "isclose", "isclose"), ("numpy", "allclose", "allclose"),
    ("numpy", "all", "all"), ("numpy", "any", "any"), ("numpy", "asarray", "asarray"),
    ("numpy", "array", "array"), ("numpy", "array_equal", "array_equal"),
    ("numpy", "argwhere", "argwhere"), ("numpy", "abs", "absolute"),
    ("numpy", "isfinite", "isfinite"), ("numpy", "isnan", "isnan"), ("numpy", "shape", "shape"),
    ("numpy", "array2string", "array2string"), ("numpy", "ndarray", "ndarray"),
    ("numpy", "generic", "generic"), ("numpy", "dtype", "dtype"),
    ("numpy.testing", "assert_allclose", "assert_allclose"),
    ("numpy.testing", "assert_array_equal", "assert_array_equal"),
    ("numpy.testing", "assert_array_almost_equal", "assert_array_almost_equal"),
    ("numpy.testing", "assert_almost_equal", "assert_almost_equal"),
    ("numpy.testing", "assert_equal", "assert_equal"),
    ("math", "isclose", "isclose"), ("math", "isnan", "isnan"), ("math", "isfinite", "isfinite"),
    ("pandas", "Series", "Series"), ("pandas", "DataFrame", "DataFrame"),
    ("pandas", "Series.to_numpy", "to_numpy"), ("pandas", "DataFrame.to_numpy", "to_numpy"),
    ("builtins", "isinstance", "isinstance"), ("builtins", "type", "type"),
    ("builtins", "len", "len"), ("builtins", "all", "all"), ("builtins", "any", "any"),
    ("builtins", "abs", "abs"), ("builtins", "float", "float"), ("builtins", "int", "int"),
    ("builtins", "bool", "bool"), ("builtins", "tuple", "tuple"), ("builtins", "list", "list"),
    ("builtins", "getattr", "getattr"), ("builtins", "repr", "repr"),
    ("builtins", "AssertionError", "AssertionError"),
)


def _is_library_code(code: Any) -> bool:
    """True when ``code`` was compiled from a file of the interpreter, the venv or course_utils."""
    if type(code) is not _types.CodeType:
        return False
    if _LIBRARY_CODE.get(id(code)) is code:     # code objects are immutable: once library, always
        return True
    if not os.path.abspath(code.co_filename).startswith(_TRUSTED_PREFIXES):
        return False
    _LIBRARY_CODE[id(code)] = code
    return True


def _foreign_member(cls: type) -> str | None:
    """``Class.method`` of the first method in ``cls``'s MRO that is not library code, or None."""
    for klass in cls.__mro__:
        if not klass.__flags__ & _HEAPTYPE:     # implemented in C: no Python code to replace
            continue
        for name, member in vars(klass).items():
            kind = type(member)
            if kind is _types.FunctionType:
                fn = member
            elif kind in (staticmethod, classmethod):
                fn = member.__func__
            elif kind is property:
                fn = member.fget
            else:
                continue
            if type(fn) is _types.FunctionType and not _is_library_code(fn.__code__):
                return f"{klass.__qualname__}.{name}"
    return None


def _is_library_type(cls: Any) -> bool:
    """A class implemented in C, or whose own methods (whole MRO) are all library code."""
    return isinstance(cls, type) and _foreign_member(cls) is None


def _library_problem(obj: Any, expected_name: str) -> str | None:
    """None when ``obj`` is library code named ``expected_name``, else what is wrong with it."""
    if isinstance(obj, type):
        if obj.__name__ != expected_name:
            return f"the class {_type_name(obj)}"
        foreign = _foreign_member(obj)
        return None if foreign is None else f"a class whose {foreign} is defined outside the library"
    if type(obj) in (_types.BuiltinFunctionType, np.ufunc):
        # C functions cannot be created by a notebook; the name tells which one it is
        return None if obj.__name__ == expected_name else f"the function {obj.__name__}"
    fn = getattr(obj, "_implementation", obj)           # numpy's array-function dispatchers
    code = getattr(fn, "__code__", None)
    if type(fn) is not _types.FunctionType or code is None:
        return f"a {_type_name(obj)}, not a function"
    if not _is_library_code(code):
        return f"a function defined in {code.co_filename}"
    if code.co_name != expected_name:
        return f"the function {code.co_name}"
    return None


def _own_functions() -> dict[str, tuple[Any, Any]]:
    """This module's functions -> (function, code), taken when the module is imported."""
    return {name: (value, value.__code__) for name, value in list(globals().items())
            if type(value) is _types.FunctionType and value.__module__ == __name__}


def verify_untampered() -> None:
    """Raise AssertionError when this module or a library function the tests use was replaced.

    Called by every public helper and on every attribute read of this module
    (see "Tamper protection" in the module docstring).
    """
    namespace = _MODULE_DICT
    for name, (function, code) in _OWN.items():
        current = namespace.get(name)
        if current is not function or function.__code__ is not code:
            raise AssertionError(
                f"course_utils.checks.{name} was replaced: the course's test helpers must not be "
                f"changed by a submission. Remove the code that assigns to course_utils.checks "
                f"(or to a helper's __code__), restart the kernel and run all cells.")
    for module_name, dotted, expected_name in _LIBRARY:
        module = sys.modules.get(module_name)
        if module is None:          # not imported: nothing to replace
            continue
        obj: Any = module
        for part in dotted.split("."):
            obj = getattr(obj, part, None)
        problem = "nothing" if obj is None else _library_problem(obj, expected_name)
        if problem is not None:
            raise AssertionError(
                f"{module_name}.{dotted} is not the library's own {expected_name} any more "
                f"(it is {problem}): a submission must not replace library functions that the "
                f"tests rely on. Remove the code that assigns {module_name}.{dotted}, restart "
                f"the kernel and run all cells.")


class _ReadOnlyModule(_types.ModuleType):
    """Module class of course_utils.checks: attributes cannot be set or deleted from outside,
    and every attribute read verifies first that nothing was replaced."""

    # what the import system itself sets (importlib.reload, pickling of the module spec)
    _IMPORT_ATTRIBUTES = frozenset({"__spec__", "__loader__", "__package__", "__path__",
                                    "__file__", "__cached__", "__name__", "__doc__",
                                    "__builtins__", "__annotations__"})

    def __getattribute__(self, name):
        if not name.startswith("__"):
            verify_untampered()
        return super().__getattribute__(name)

    def __setattr__(self, name, value):
        if name in _ReadOnlyModule._IMPORT_ATTRIBUTES:
            return super().__setattr__(name, value)
        raise AttributeError(
            f"course_utils.checks is read-only: cannot set {name!r}. The course's test helpers "
            f"cannot be replaced by a submission; remove this assignment.")

    def __delattr__(self, name):
        raise AttributeError(
            f"course_utils.checks is read-only: cannot delete {name!r}. The course's test "
            f"helpers cannot be removed by a submission; remove this statement.")


_MODULE_DICT = globals()
_OWN: dict[str, tuple[Any, Any]] = _own_functions()
if type(sys.modules[__name__]).__name__ != "_ReadOnlyModule":   # importlib.reload keeps it
    sys.modules[__name__].__class__ = _ReadOnlyModule
