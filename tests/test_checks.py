"""course_utils.checks: every helper passes right values, fails wrong ones with a
message that says expected vs got (type, dtype, shape) and the hint, and cannot be
fooled by an object whose ``__eq__`` always returns True (nbgrader issue #1379)."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from course_utils.checks import check_close, check_dtype, check_equal, check_shape, check_type


class AlwaysEqual:
    """The cheat of nbgrader issue #1379: equal to everything, close to everything."""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = object.__hash__

    def __float__(self):
        return 0.0


class TrickArray(np.ndarray):
    """An ndarray subclass that claims to equal anything."""

    def __eq__(self, other):
        return np.ones(np.shape(self), dtype=bool)


def failure(func, *args, **kwargs) -> str:
    """Run a check that must fail; return its message."""
    with pytest.raises(AssertionError) as info:
        func(*args, **kwargs)
    return str(info.value)


# ----------------------------------------------------------------------------- check_type
def test_check_type_accepts_exact_types():
    """Does check_type pass a value of exactly the asked type (or one of a tuple)?"""
    check_type(np.zeros(3), np.ndarray, "w_p")
    check_type(pd.Series([1, 2]), pd.Series, "counts")
    check_type(True, bool, "leak")
    check_type(3, (int, float), "n")


def test_check_type_rejects_wrong_type_with_message():
    """Does check_type fail a list where an array is asked, naming both types and the hint?"""
    msg = failure(check_type, [0.25, 0.75], np.ndarray, "w_p", hint="use np.mean")
    assert msg.startswith("w_p: expected a numpy.ndarray, got a list"), msg
    assert "[0.25, 0.75]" in msg and msg.endswith("Hint: use np.mean"), msg


def test_check_type_rejects_numpy_bool_for_bool():
    """Is numpy.bool_ refused where a Python bool is asked (and bool where int is)?"""
    msg = failure(check_type, np.bool_(True), bool, "leak")
    assert "expected a bool, got a numpy.bool" in msg, msg
    failure(check_type, True, int, "count")


def test_check_type_rejects_subclasses_and_cheats():
    """Are subclasses (which can override __eq__) and always-equal objects refused?"""
    trick = np.zeros(2).view(TrickArray)
    msg = failure(check_type, trick, np.ndarray, "w_p")
    assert "A subclass is not accepted" in msg, msg
    msg = failure(check_type, AlwaysEqual(), (bool, np.ndarray), "x")
    assert "AlwaysEqual" in msg, msg


def test_check_type_bad_arguments_are_a_type_error():
    """Does a mistake in the test itself (no type given) raise TypeError, not pass?"""
    with pytest.raises(TypeError, match="expected_type must be a type"):
        check_type(1, "int", "n")


# ----------------------------------------------------------------------------- check_shape
def test_check_shape_passes_arrays_series_lists():
    """Does check_shape pass arrays, pandas objects and nested lists of the right shape?"""
    check_shape(np.zeros((4, 2)), (4, 2), "y")
    check_shape(pd.Series(range(14)), (14,), "counts")
    check_shape([[1, 2], [3, 4], [5, 6]], (3, 2), "y")
    check_shape(np.float64(1.0), (), "loss")


def test_check_shape_reports_both_shapes():
    """Does a wrong shape (wrong axis) fail with expected and got shapes?"""
    msg = failure(check_shape, np.zeros(4), (2,), "w_p", hint="mean over axis=0")
    assert msg.startswith("w_p: expected shape (2,), got shape (4,)"), msg
    assert "dtype float64" in msg and "Hint: mean over axis=0" in msg, msg


def test_check_shape_rejects_objects_without_shape():
    """Is an always-equal object (or a dict) refused as having no shape?"""
    assert "It has no shape" in failure(check_shape, AlwaysEqual(), (2,), "x")
    assert "It has no shape" in failure(check_shape, {"a": 1}, (1,), "x")


# ----------------------------------------------------------------------------- check_dtype
def test_check_dtype_passes_and_fails():
    """Does check_dtype accept the asked dtype (or one of several) and name the wrong one?"""
    check_dtype(np.zeros(2, dtype=np.float32), "float32", "loss")
    check_dtype(np.int64(3), (np.int32, np.int64), "count")
    msg = failure(check_dtype, np.zeros(2), np.float32, "loss", hint="use keras.ops")
    assert msg.startswith("loss: expected dtype float32, got dtype float64"), msg
    assert msg.endswith("Hint: use keras.ops"), msg


def test_check_dtype_rejects_python_scalars_and_objects():
    """Are values without a dtype (a Python float, a cheat) refused with an explanation?"""
    assert "It has no dtype" in failure(check_dtype, 1.5, "float64", "loss")
    assert "It has no dtype" in failure(check_dtype, AlwaysEqual(), "float64", "loss")


def test_check_dtype_of_pandas_series():
    """Does check_dtype read a pandas Series' dtype?"""
    check_dtype(pd.Series([1, 2], dtype="int64"), "int64", "counts")
    failure(check_dtype, pd.Series([1.0, 2.0]), "int64", "counts")


# ----------------------------------------------------------------------------- check_close
def test_check_close_passes_within_tolerance():
    """Does check_close pass numbers, arrays, lists and Series that are close enough?"""
    check_close(2.61874, 2.6187, "loss")
    check_close(np.array([0.9632, 0.9632]), [0.96321, 0.96319], "terms")
    check_close([[1, 0], [0, 1]], np.eye(2), "y")
    check_close(pd.Series([1.0, 2.0]), np.array([1.0, 2.0]), "counts")
    check_close(np.nan, np.nan, "auc")


def test_check_close_reports_values_and_first_difference():
    """Does a wrong value fail with both values, the first differing index and the hint?"""
    msg = failure(check_close, np.array([0.75, 0.25]), np.array([0.25, 0.75]), "w_p",
                  hint="w_p is the fraction of negatives")
    assert msg.startswith("w_p: expected [0.25, 0.75]"), msg
    assert "got [0.75, 0.25]" in msg and "2 of 2 value(s) differ" in msg, msg
    assert "first at index (0,): expected 0.25, got 0.75" in msg, msg
    assert msg.endswith("Hint: w_p is the fraction of negatives"), msg


def test_check_close_catches_mean_instead_of_sum():
    """Is a loss off by a factor of four (mean instead of sum) caught?"""
    msg = failure(check_close, 2.6187 / 4, 2.6187, "loss")
    assert "largest difference 1.96" in msg, msg


def test_check_close_checks_shape_before_values():
    """Does a broadcastable but wrong shape fail (no silent broadcasting)?"""
    msg = failure(check_close, np.full((2, 2), 0.5), np.array([0.5, 0.5]), "w_p")
    assert "expected shape (2,)" in msg and "got shape (2, 2)" in msg, msg


def test_check_close_nan_only_matches_nan():
    """Is NaN refused where a number is expected, and a number where NaN is expected?"""
    failure(check_close, np.nan, 0.5, "auc")
    failure(check_close, 0.5, np.nan, "auc")


def test_check_close_refuses_cheats_and_non_numbers():
    """Are always-equal objects, strings, dicts and ndarray subclasses-with-__eq__ handled?"""
    msg = failure(check_close, AlwaysEqual(), 1.0, "loss")
    assert "expected a number or an array of numbers, got" in msg and "AlwaysEqual" in msg
    failure(check_close, [AlwaysEqual(), AlwaysEqual()], [1.0, 2.0], "loss")
    failure(check_close, "2.6187", 2.6187, "loss")
    failure(check_close, {"a": 1.0}, 1.0, "loss")
    # a subclass is not a plain array: refused before comparison
    failure(check_close, np.zeros(2).view(TrickArray), np.ones(2), "loss")


def test_check_close_ragged_lists_fail_cleanly():
    """Does a ragged nested list fail with an AssertionError rather than a ValueError?"""
    msg = failure(check_close, [[1.0, 2.0], [3.0]], [[1.0, 2.0], [3.0, 4.0]], "y")
    assert "different lengths" in msg, msg


def test_check_close_accepts_tensors():
    """Does check_close compare a TensorFlow tensor by its values?"""
    tf = pytest.importorskip("tensorflow")
    check_close(tf.constant([1.0, 2.0]), [1.0, 2.0], "loss")
    failure(check_close, tf.constant([1.0, 2.5]), [1.0, 2.0], "loss")


# ----------------------------------------------------------------------------- check_equal
def test_check_equal_passes_equal_values():
    """Does check_equal pass identical scalars, containers, arrays and Series?"""
    check_equal(False, False, "leak")
    check_equal({"Mass": 3, "Edema": 1}, {"Edema": 1, "Mass": 3}, "counts")
    check_equal([1, (2, "a")], [1, (2, "a")], "x")
    check_equal(np.array([1, 2]), np.array([1, 2]), "x")
    check_equal(pd.Series([3, 1], index=["Mass", "Edema"]),
                pd.Series([3, 1], index=["Mass", "Edema"]), "counts")
    check_equal(float("nan"), float("nan"), "auc")


def test_check_equal_is_type_strict():
    """Are equal-valued but differently-typed answers refused (np.bool_ vs bool, list vs array)?"""
    msg = failure(check_equal, np.bool_(False), False, "leak", hint="return a Python bool")
    assert msg.startswith("leak: expected a bool: False, got a numpy.bool"), msg
    assert msg.endswith("Hint: return a Python bool"), msg
    failure(check_equal, [1, 2], np.array([1, 2]), "x")
    failure(check_equal, 1, True, "x")
    failure(check_equal, np.array([1, 2], dtype=np.int32), np.array([1, 2]), "x")


def test_check_equal_names_the_differing_item():
    """Does a difference deep in a container point at the exact item?"""
    msg = failure(check_equal, {"a": [1, 2]}, {"a": [1, 3]}, "result")
    assert msg.startswith("result['a'][1]: expected 3, got 2"), msg
    msg = failure(check_equal, pd.Series([3, 1], index=["Mass", "Edema"]),
                  pd.Series([3, 1], index=["Edema", "Mass"]), "counts")
    assert msg.startswith("counts.index[0]: expected 'Edema', got 'Mass'"), msg
    msg = failure(check_equal, np.array([1, 2, 4]), np.array([1, 2, 3]), "x")
    assert "First difference at index (2,): expected 3, got 4" in msg, msg


def test_check_equal_refuses_always_equal_objects_anywhere():
    """Is an always-equal object refused at top level, inside a list and as a dict key?"""
    failure(check_equal, AlwaysEqual(), True, "leak")
    failure(check_equal, [AlwaysEqual()], [1], "x")
    msg = failure(check_equal, {AlwaysEqual(): 1}, {"a": 1}, "x")
    assert "a key of type" in msg, msg
    failure(check_equal, np.array([1, 2]).view(TrickArray), np.array([1, 3]), "x")


def test_check_equal_unsupported_expected_is_a_type_error():
    """Does an unsupported expected type (a test-writing mistake) raise TypeError?"""
    with pytest.raises(TypeError, match="cannot compare"):
        check_equal(AlwaysEqual(), AlwaysEqual(), "x")


def test_every_message_has_the_documented_form():
    """Does every helper's message follow '<name>: expected <...>, got <...>.'?"""
    form = re.compile(r"^\S+: expected .+, got .+\.")
    messages = [
        failure(check_type, 1, str, "a"), failure(check_shape, np.zeros(2), (3,), "b"),
        failure(check_dtype, np.zeros(2), "int64", "c"), failure(check_close, 1.0, 2.0, "d"),
        failure(check_equal, 1, 2, "e"),
    ]
    for msg in messages:
        assert form.match(msg), msg


# ----------------------------------------------------------------------------- environment
def test_check_environment_passes_in_the_course_venv():
    """Does the header's environment check pass in the course's .venv and name the versions?"""
    from course_utils.checks import check_environment
    summary = check_environment()
    assert summary.startswith("Python 3.11.") and "tensorflow-cpu 2.21." in summary, summary


def test_check_environment_names_a_wrong_version(monkeypatch):
    """Does a wrong package version fail with what was expected, what was found and the fix?"""
    from course_utils import checks
    monkeypatch.setitem(checks.COURSE_ENVIRONMENT, ("keras",), "2.")
    with pytest.raises(RuntimeError, match=r"keras 2\.x expected, found 3\..*make lab"):
        checks.check_environment()
    monkeypatch.setitem(checks.COURSE_ENVIRONMENT, ("no-such-dist-xyz",), "")
    with pytest.raises(RuntimeError, match="no-such-dist-xyz is not installed"):
        checks.check_environment()
