"""The course data is the same on every CPU: the renderer's math (``fpmath``) is
built from correctly rounded IEEE operations only, and a sample of course images
rendered under every lower SIMD dispatch level of this machine (numpy's
``NPY_DISABLE_CPU_FEATURES``, glibc's hwcaps) has the same bytes as the images
rendered normally and as the committed manifest.  Fast: seconds."""
from __future__ import annotations

import ast
import inspect
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from scipy import ndimage
from scipy.special import expit as scipy_expit

from course_utils.synth import determinism as DET
from course_utils.synth import fpmath as F
from course_utils.synth import render as R

RNG = np.random.default_rng(20261207)


def _ulps(got, ref, dtype) -> float:
    """Largest |got - ref| in units of the last place of ``dtype`` at ``ref``."""
    ref = np.asarray(ref, dtype=np.float64)
    spacing = np.spacing(np.abs(ref).astype(dtype)).astype(np.float64)
    return float(np.max(np.abs(np.asarray(got, dtype=np.float64) - ref) / spacing))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fpmath_is_as_accurate_as_numpy(dtype):
    """Are exp, expit, log, log1p and power within a few units in the last place of the exact
    values (numpy's float64 results, rounded), and sin, cos, arctan2 within 2 rounding errors
    of the type, keeping float32 arrays float32?"""
    x = RNG.uniform(-30, 30, 100_000).astype(dtype)
    pos = RNG.uniform(1e-6, 50, 100_000).astype(dtype)
    unit = RNG.uniform(0.0, 1.0, 100_000).astype(dtype)
    x64, pos64, unit64 = (a.astype(np.float64) for a in (x, pos, unit))
    cases = {
        "exp": (F.exp(x), np.exp(x64), 2.5),
        "expit": (F.expit(x), scipy_expit(x64), 3.5),
        "log": (F.log(pos), np.log(pos64), 3.5),
        "log1p": (F.log1p(unit), np.log1p(unit64), 5.0),
    }
    for name, (got, ref, limit) in cases.items():
        assert got.dtype == dtype, f"{name} returned {got.dtype} for {np.dtype(dtype)} input"
        assert _ulps(got, ref, dtype) <= limit, f"{name}: {_ulps(got, ref, dtype):.1f} ulp > {limit}"
    # x**y = exp(y log x): relative error ~ y |log x| eps, so compare relatively on [0.01, 1]
    base = np.maximum(unit, dtype(0.01))
    for y in (0.6, 0.8, 1.7, 2.2, 2.5):
        got, ref = F.power(base, y), base.astype(np.float64) ** y
        assert got.dtype == dtype
        assert np.max(np.abs(got - ref) / ref) < 40 * np.finfo(dtype).eps, f"power(x, {y})"
    eps = np.finfo(dtype).eps
    assert np.max(np.abs(F.sin(x) - np.sin(x64))) <= 2 * eps
    assert np.max(np.abs(F.cos(x) - np.cos(x64))) <= 2 * eps
    y = RNG.uniform(-3, 3, 100_000).astype(dtype)
    assert np.max(np.abs(F.arctan2(y, x) - np.arctan2(y.astype(np.float64), x64))) <= 8 * eps


def test_fpmath_python_floats_equal_the_array_path_bit_for_bit():
    """Does a Python float give exactly the float64 array path's result (the vessel tree and
    the lesion geometry use scalars, the images arrays), in numpy's scalar type when given one?"""
    xs = RNG.uniform(-20, 20, 500)
    ys = RNG.uniform(-20, 20, 500)
    arrays = {"exp": F.exp(xs), "expit": F.expit(xs), "log": F.log(np.abs(xs)),
              "log1p": F.log1p(np.abs(xs)), "power": F.power(np.abs(xs), 0.8),
              "sin": F.sin(xs), "cos": F.cos(xs), "arctan2": F.arctan2(ys, xs)}
    for i, (v, w) in enumerate(zip(xs.tolist(), ys.tolist())):
        scalars = {"exp": F.exp(v), "expit": F.expit(v), "log": F.log(abs(v)), "log1p": F.log1p(abs(v)),
                   "power": F.power(abs(v), 0.8), "sin": F.sin(v), "cos": F.cos(v), "arctan2": F.arctan2(w, v)}
        for name, got in scalars.items():
            assert type(got) is float and got == arrays[name][i], f"{name}({v!r})"
    assert type(F.exp(np.float64(0.5))) is np.float64 and F.exp(np.float64(0.5)) == F.exp(0.5)
    assert F.exp(np.float32(0.5)).dtype == np.float32


def test_fpmath_edge_values():
    """Do the edges behave as numpy's functions do: saturation without warnings, 0**y = 0,
    signed zeros in arctan2, exact quadrant values, and clear errors outside the domain?"""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        big = np.array([-1e4, -100.0, 0.0, 100.0, 1e4], dtype=np.float32)
        sig = F.expit(big)
        assert sig.dtype == np.float32 and sig[2:].tolist() == [0.5, 1.0, 1.0]
        assert 0.0 <= sig[0] <= sig[1] < 1e-37
        assert F.exp(np.float32(-1e4)) < 1e-37 and F.exp(0.0) == 1.0
        assert abs(F.exp(1.0) - math.e) <= 2 * np.spacing(math.e)
        assert F.power(np.array([0.0, 1.0, 4.0]), 0.5).tolist() == [0.0, 1.0, 2.0]
        assert F.power(0.0, 1.7) == 0.0 and F.log1p(0.0) == 0.0 and F.log(1.0) == 0.0
    for y, x in [(0.0, 0.0), (-0.0, 0.0), (0.0, -0.0), (-0.0, -0.0), (0.0, -1.0), (-0.0, -1.0),
                 (1.0, 0.0), (-1.0, 0.0), (1.0, 1.0), (-1.0, -1.0)]:
        got, want = F.arctan2(y, x), float(np.arctan2(y, x))
        assert abs(got - want) <= 2 * np.spacing(abs(want)) and \
            math.copysign(1, got) == math.copysign(1, want), (y, x, got, want)
    for k in range(-8, 9):
        s, c = F.sincos(k * math.pi / 2)
        assert abs(s - math.sin(k * math.pi / 2)) < 1e-15 and abs(c - math.cos(k * math.pi / 2)) < 1e-15
    with pytest.raises(ValueError, match="positive"):
        F.log(np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="base must be >= 0"):
        F.power(np.array([-0.5]), 2.0)
    with pytest.raises(ValueError, match="exponent must be positive"):
        F.power(2.0, -1.0)
    with pytest.raises(ValueError, match="greater than -1"):
        F.log1p(np.array([-2.0]))
    with pytest.raises(ValueError, match="below 1e6"):
        F.sin(1e7)


@pytest.mark.parametrize("sigma, truncate, mode", [(0.8, 4.0, "reflect"), (1.2, 3.0, "nearest"),
                                                   (2.9, 3.0, "nearest")])
def test_gaussian_blur_equals_scipys(sigma, truncate, mode):
    """Is the renderer's blur scipy's ``gaussian_filter`` (same radius, weights to 1e-15, same
    float32 output to a rounding error), only with a kernel that does not depend on the CPU?"""
    from scipy.ndimage._filters import _gaussian_kernel1d
    w = F.gaussian_kernel(sigma, truncate)
    ref = _gaussian_kernel1d(sigma, 0, int(truncate * sigma + 0.5))[::-1]
    assert w.shape == ref.shape and np.max(np.abs(w - ref)) < 1e-15
    assert abs(math.fsum(w) - 1.0) < 1e-15
    a = RNG.standard_normal((64, 48)).astype(np.float32)
    got = R._gaussian(a, sigma, truncate, mode)
    want = ndimage.gaussian_filter(a, sigma, truncate=truncate, mode=mode)
    assert got.dtype == np.float32 and np.max(np.abs(got - want)) < 1e-6


# names whose result depends on the CPU or its C library: numpy's dispatched math, libm
_UNSAFE_NP = {"exp", "expm1", "exp2", "log", "log1p", "log2", "log10", "sin", "cos", "tan", "arcsin",
              "arccos", "arctan", "arctan2", "sinh", "cosh", "tanh", "power", "float_power", "hypot",
              "cbrt", "matmul", "dot", "einsum", "inner", "linalg"}
_UNSAFE_MATH = {"exp", "expm1", "log", "log1p", "log2", "log10", "sin", "cos", "tan", "asin", "acos",
                "atan", "atan2", "sinh", "cosh", "tanh", "pow", "hypot", "cbrt", "exp2", "erf", "gamma"}
_UNSAFE_NAMES = {"expit", "gaussian_filter", "gaussian_filter1d", "lognormal", "logit"}


#: a line that says so may multiply matrices: integer products are exact on every CPU
_EXACT_MARK = "integers: exact"


def _unsafe_calls(module) -> list[str]:
    source = inspect.getsource(module)
    lines = source.splitlines()
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        where = f"{module.__name__}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in ("F", "fpmath"):
            continue                                  # course_utils.synth.fpmath's own
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id == "np" and node.attr in _UNSAFE_NP) or \
                    (node.value.id == "math" and node.attr in _UNSAFE_MATH):
                found.append(f"{where} {node.value.id}.{node.attr}")
        if isinstance(node, ast.Attribute) and node.attr in _UNSAFE_NAMES:
            found.append(f"{where} .{node.attr}")
        if isinstance(node, ast.Name) and node.id in _UNSAFE_NAMES:
            found.append(f"{where} {node.id}")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult) \
                and _EXACT_MARK not in lines[node.lineno - 1]:
            found.append(f"{where} @ (BLAS)")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            exponent = node.right
            if not (isinstance(exponent, ast.Constant) and isinstance(exponent.value, int)):
                found.append(f"{where} ** {ast.unparse(exponent)} (libm pow unless a small integer)")
    return found


def test_renderer_uses_no_cpu_dependent_math():
    """Does the code that decides a pixel or a label (render, anatomy, labels) call none of the
    functions whose last bits depend on the CPU (numpy's dispatched math, libm, BLAS, scipy's
    expit and Gaussian kernel, non-integer powers), only ``fpmath``'s?"""
    from course_utils.synth import anatomy, labels
    found = [hit for m in (R, anatomy, labels) for hit in _unsafe_calls(m)]
    assert not found, "CPU-dependent math in the data generator (use course_utils.synth.fpmath):\n" \
        + "\n".join(found)


def test_the_scan_finds_what_it_looks_for():
    """Would the scan above flag np.exp, math.sin, expit, x ** 1.7 and a matrix product?"""
    import types
    src = ("import math\nimport numpy as np\nfrom scipy.special import expit\n"
           "from course_utils.synth import fpmath as F\n"
           "def f(a, m):\n    return np.exp(a) + math.sin(1.0) + expit(a) + a ** 1.7 + (m @ a) + a ** 2 \\\n"
           "        + F.expit(a) + np.linalg.cholesky(m) + (m @ m)  # integers: exact\n")
    mod = types.ModuleType("probe")
    mod.__file__ = "probe.py"
    import linecache
    linecache.cache["probe.py"] = (len(src), None, src.splitlines(True), "probe.py")
    exec(compile(src, "probe.py", "exec"), mod.__dict__)
    hits = _unsafe_calls(mod)
    assert len(hits) == 6, hits          # not F.expit, not the marked line's @


@pytest.fixture(scope="module")
def reference_sample():
    return DET.render_sample()


def test_sample_covers_every_finding_both_views_and_devices():
    """Does the dispatch sample draw all 14 findings, PA and AP films and an AP film's devices?"""
    from course_utils.constants import CSV_LABELS
    views, findings = DET.sample_views_and_findings()
    assert views == {"PA", "AP"} and findings == set(CSV_LABELS)
    drew = []
    original = R._devices

    def spy(c, rng, ap):
        add = original(c, rng, ap)
        drew.append(bool(add.any()))
        return add
    R._devices = spy
    try:
        DET.render_sample()
    finally:
        R._devices = original
    assert any(drew), "no image of the sample has ECG leads or a line"


def test_sample_matches_the_committed_manifest(reference_sample):
    """Are the sample's PNGs, rendered on this machine as it is, the committed manifest's?"""
    bad = DET.manifest_mismatches(reference_sample)
    assert not bad, (f"{len(bad)} of {len(reference_sample)} sample images differ from "
                     f"course_utils/manifests/course_default.sha256, e.g. {bad[:3]}")


LEVELS = DET.levels()


def test_dispatch_restriction_takes_effect():
    """Does each level really run numpy without the disabled targets (else the comparison
    below would compare a machine with itself)?"""
    for level in LEVELS:
        disabled = level.env.get("NPY_DISABLE_CPU_FEATURES", "").split()
        code = "from course_utils.synth.determinism import numpy_dispatch_found as f; print(' '.join(f()))"
        out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **level.env},
                             capture_output=True, text=True, check=True).stdout.split()
        assert not set(out) & set(disabled), f"{level.name}: numpy still dispatches to {out}"


@pytest.mark.parametrize("level", LEVELS, ids=[lv.name for lv in LEVELS])
def test_rendering_is_identical_at_every_dispatch_level(level, reference_sample):
    """Rendered with numpy (and glibc's libm) restricted to a lower SIMD level, as on a CPU
    without the higher ones, are the sample's images byte-identical to this machine's?"""
    other = DET.render_in_subprocess(level)
    cmp = DET.compare(reference_sample, other, level)
    assert not cmp.differing, cmp.line()
    assert not DET.manifest_mismatches(other)
