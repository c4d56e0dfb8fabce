"""Elementary functions that give the same bits on every CPU.

Why this module exists
----------------------
numpy picks, at run time, the fastest implementation of ``exp``, ``log``,
``power``, ``log1p``, ``tanh``, ... that the CPU supports (AVX-512, AVX2 or the
x86-64 baseline; ``numpy.show_runtime()`` lists them), and glibc's ``libm``
does the same for ``math.exp``, ``math.sin``, ``scipy.special.expit`` and
numpy's float64 ``sin``/``cos``/``arctan2`` (FMA or not).  The variants agree
to a unit in the last place, not bit for bit, so a renderer built on them
drew 186 of the 1,620 course images one grey level differently on an AVX2
machine than on an AVX-512 one (measured: ``NPY_DISABLE_CPU_FEATURES=X86_V4``
on a Zen 4; ``tests/test_synth_determinism.py``).

The functions here are computed with IEEE-754 additions, subtractions,
multiplications, divisions, square roots, ``rint``/``floor`` and exponent-bit
arithmetic only.  IEEE-754 requires each of those to be correctly rounded,
so every SIMD width, every CPU and every C library gives the same result:
the algorithms (Cody-Waite range reduction plus a Taylor polynomial for
``exp``, ``atanh`` series for ``log``, quadrant reduction for ``sin``/``cos``,
argument halving for ``atan``) fix the order of the operations.  Accuracy is a
few units in the last place of the input's type (float32 arrays stay float32,
the fast path of the renderer; float64 arrays and Python floats are computed
in float64), checked against numpy in ``tests/test_synth_determinism.py``.

Python floats (scalars) are computed with Python's own float operations,
which are the same IEEE operations in the same order as the array path, so
``exp(0.3)`` equals ``exp(np.array([0.3]))[0]`` bit for bit.

Used by ``course_utils.synth.render`` (every image of the course data) and
``course_utils.synth.labels``; nothing else needs it.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = ["exp", "expit", "log", "log1p", "power", "sin", "cos", "sincos", "arctan2",
           "hypot", "gaussian_kernel"]

# ----------------------------------------------------------------------------- constants
_LOG2E = 1.4426950408889634
# ln 2 split so that k * hi is exact for every exponent k used here (Cody & Waite 1980)
_LN2_HI = {np.float32: np.float32(0.693359375), np.float64: 6.93147180369123816490e-01}
_LN2_LO = {np.float32: np.float32(-2.12194440e-4), np.float64: 1.90821492927058770002e-10}
# exp(r) on |r| <= ln2 / 2: Taylor terms 1/n!; the first omitted term is below the type's
# rounding error (float32: r^8/8! < 6e-9; float64: r^13/13! < 2e-16)
_EXP_DEG = {np.float32: 7, np.float64: 12}
# clip so that 2^k stays a normal number of the type (exp of the clip ends ~ 0 / overflow)
_EXP_CLIP = {np.float32: (-87.0, 88.0), np.float64: (-708.0, 709.0)}
# log: 2*atanh(s), s = (m - 1) / (m + 1), |s| <= 0.1716; terms up to s^(2n+1)/(2n+1)
_LOG_DEG = {np.float32: 5, np.float64: 10}
_SQRT2 = 1.4142135623730951
# pi/2 in three parts (fdlibm): k * each part is exact for |k| < 2^20
_PIO2_1 = 1.57079632673412561417e+00
_PIO2_2 = 6.07710050650619224932e-11
_PIO2_3 = 2.02226624879595063154e-21
_TWO_OVER_PI = 0.6366197723675814
_PI = 3.141592653589793
_PI_2 = 1.5707963267948966


def _coeffs(dtype, n: int, kind: str) -> tuple:
    """Polynomial coefficients, rounded once to ``dtype`` (exact rational -> nearest)."""
    from fractions import Fraction
    conv = (lambda f: np.float32(float(f))) if dtype is np.float32 else float
    if kind == "exp":          # 1/k!, k = 0..n
        return tuple(conv(Fraction(1, math.factorial(k))) for k in range(n + 1))
    if kind == "log":          # 1/(2k+1), k = 0..n
        return tuple(conv(Fraction(1, 2 * k + 1)) for k in range(n + 1))
    if kind == "sin":          # (-1)^k / (2k+1)!, k = 0..n
        return tuple(conv(Fraction((-1) ** k, math.factorial(2 * k + 1))) for k in range(n + 1))
    if kind == "cos":          # (-1)^k / (2k)!, k = 0..n
        return tuple(conv(Fraction((-1) ** k, math.factorial(2 * k))) for k in range(n + 1))
    if kind == "atan":         # (-1)^k / (2k+1), k = 0..n
        return tuple(conv(Fraction((-1) ** k, 2 * k + 1)) for k in range(n + 1))
    raise ValueError(kind)


_EXP_C = {t: _coeffs(t, _EXP_DEG[t], "exp") for t in (np.float32, np.float64)}
_LOG_C = {t: _coeffs(t, _LOG_DEG[t], "log") for t in (np.float32, np.float64)}
_SIN_C = _coeffs(np.float64, 9, "sin")     # |r| <= pi/4: r^21/21! < 1e-21
_COS_C = _coeffs(np.float64, 9, "cos")
_ATAN_C = _coeffs(np.float64, 11, "atan")  # |t| <= tan(pi/16) = 0.199: t^25/25 < 1e-19


def _horner(z, coeffs):
    """sum(c_k z^k), evaluated from the highest power down (fixed operation order)."""
    p = coeffs[-1]
    for c in coeffs[-2::-1]:
        p = p * z + c
    return p


def _is_scalar(x) -> bool:
    return isinstance(x, (float, int)) and not isinstance(x, bool)


def _as_float_array(x):
    """float32 / float64 arrays as they are, anything else as float64; at least 1-D
    (a 0-d input comes back as a numpy scalar: see :func:`_out`)."""
    a = np.asarray(x)
    if not (a.dtype == np.float32 or a.dtype == np.float64):
        a = a.astype(np.float64)
    return a.reshape(1) if a.ndim == 0 else a


def _out(x, r):
    """``r`` computed on ``_as_float_array(x)``, returned in the shape of ``x``."""
    return r[0] if np.ndim(x) == 0 else r


def _scalar_out(x, r: float):
    """A numpy float64 scalar in, a numpy float64 scalar out (numpy's promotion rules treat
    it unlike a Python float); a Python float in, a Python float out."""
    return np.float64(r) if isinstance(x, np.float64) else r


def _type(a) -> type:
    return np.float32 if a.dtype == np.float32 else np.float64


# ----------------------------------------------------------------------------- chunked kernels
#: elements per block: the kernels' few scratch buffers stay in the L2 cache (measured on a
#: 2-core EPYC: 256 x 256 float32 exp 0.74 ms in one block, 0.27 ms in blocks of 32768)
_CHUNK = 32768
# the clip ufunc itself (np.clip adds a Python wrapper to every call); same operation
_clip = getattr(getattr(getattr(np, "_core", None), "umath", None), "clip", np.clip)
_INT = {np.float32: np.int32, np.float64: np.int64}


def _blocks(a: np.ndarray, kernel, *args) -> np.ndarray:
    """``kernel(src, dst, f1, f2, f3, f4, ib, *args)`` over blocks of ``a`` (f*: float
    scratch, ib: integer scratch of the same width), into a new array shaped like ``a``."""
    t = _type(a)
    flat = np.ascontiguousarray(a).reshape(-1)
    out = np.empty_like(flat)
    m = max(1, min(_CHUNK, flat.size))
    f1, f2, f3, f4 = (np.empty(m, t) for _ in range(4))
    ib = np.empty(m, _INT[t])
    for s in range(0, flat.size, m):
        e = min(flat.size, s + m)
        w = e - s
        kernel(flat[s:e], out[s:e], f1[:w], f2[:w], f3[:w], f4[:w], ib[:w], *args)
    return out.reshape(a.shape)


def _exp_kernel(x, o, k, tmp, _f3, _f4, ki):
    """o = exp(x) (``x`` may be ``o``): the scalar path's operations, in place."""
    t = o.dtype.type
    lo, hi = _EXP_CLIP[t]
    _clip(x, t(lo), t(hi), out=o)
    np.multiply(o, t(_LOG2E), out=k)
    np.rint(k, out=k)
    np.multiply(k, _LN2_HI[t], out=tmp)
    np.subtract(o, tmp, out=o)
    np.multiply(k, _LN2_LO[t], out=tmp)
    np.subtract(o, tmp, out=o)                   # o = r
    c = _EXP_C[t]
    np.multiply(o, c[-1], out=tmp)               # Horner, as _horner
    for ci in c[-2:0:-1]:
        np.add(tmp, ci, out=tmp)
        np.multiply(tmp, o, out=tmp)
    np.add(tmp, c[0], out=tmp)
    np.copyto(ki, k, casting="unsafe")
    np.ldexp(tmp, ki, out=o)                     # exact: 2^k is a normal number here


def _expit_kernel(x, o, k, tmp, f3, f4, ki):
    np.negative(x, out=o)
    _exp_kernel(o, o, k, tmp, f3, f4, ki)
    o += o.dtype.type(1.0)
    np.reciprocal(o, out=o)


def _log_kernel(x, o, s, z, ef, _f4, ib):
    """o = log(x) for positive normal x: x = m 2^e, m in [sqrt(1/2), sqrt(2)),
    log x = e ln2 + 2 atanh((m - 1) / (m + 1)); the scalar path's operations.
    ``x`` may be ``o`` (read before ``o`` is written), not a scratch buffer."""
    t = o.dtype.type
    if t is np.float32:
        bits, shift, bias, mant, one = x.view(np.int32), 23, 127, 0x007FFFFF, 0x3F800000
    else:
        bits, shift, bias, mant, one = x.view(np.int64), 52, 1023, 0x000FFFFFFFFFFFFF, 0x3FF0000000000000
    np.bitwise_and(bits, mant, out=ib)
    np.bitwise_or(ib, one, out=ib)
    np.copyto(s, ib.view(t))                     # s = m in [1, 2)
    big = s > t(_SQRT2)
    np.multiply(s, t(0.5), out=s, where=big)
    np.right_shift(bits, shift, out=ib)
    np.subtract(ib, bias, out=ib)
    np.add(ib, big, out=ib, casting="unsafe")
    np.copyto(ef, ib, casting="unsafe")          # ef = e
    np.add(s, t(1.0), out=z)
    np.subtract(s, t(1.0), out=s)
    np.divide(s, z, out=s)                       # s = (m - 1) / (m + 1)
    np.multiply(s, s, out=z)                     # z = s^2
    c = _LOG_C[t]
    np.multiply(z, c[-1], out=o)                 # Horner in z
    for ci in c[-2:0:-1]:
        np.add(o, ci, out=o)
        np.multiply(o, z, out=o)
    np.add(o, c[0], out=o)
    np.multiply(s, t(2.0), out=s)
    np.multiply(s, o, out=s)                     # p = (2 s) * poly
    np.multiply(ef, _LN2_LO[t], out=z)
    np.add(z, s, out=z)                          # e lo + p
    np.multiply(ef, _LN2_HI[t], out=o)
    np.add(o, z, out=o)                          # e hi + (e lo + p)


def _power_kernel(x, o, f1, f2, f3, f4, ib, y, tiny):
    """o = x**y = exp(y log x) for x > 0, 0 for x == 0 (x >= 0 checked by the caller)."""
    t = o.dtype.type
    np.maximum(x, tiny, out=f4)
    _log_kernel(f4, o, f1, f2, f3, None, ib)
    np.multiply(o, t(y), out=o)
    _exp_kernel(o, o, f1, f2, f3, None, ib)
    np.copyto(o, t(0.0), where=x <= 0)


def _log1p_kernel(x, o, f1, f2, f3, f4, ib, tiny):
    """o = log(u) * (x / (u - 1)), u = 1 + x; o = x where u == 1 (x > -1 checked)."""
    t = o.dtype.type
    np.add(x, t(1.0), out=f4)                    # u
    np.maximum(f4, tiny, out=o)
    u_is_one = f4 == t(1.0)
    np.subtract(f4, t(1.0), out=f4)
    np.copyto(f4, t(1.0), where=u_is_one)        # d = u - 1 (1 where u == 1)
    np.divide(x, f4, out=f4)                     # x / d
    _log_kernel(o, o, f1, f2, f3, None, ib)
    np.multiply(o, f4, out=o)
    np.copyto(o, x, where=u_is_one)


# ----------------------------------------------------------------------------- exp / expit
def _exp_scalar(x: float) -> float:
    lo, hi = _EXP_CLIP[np.float64]
    x = min(max(float(x), lo), hi)
    k = float(round(x * _LOG2E))
    r = x - k * _LN2_HI[np.float64]
    r = r - k * _LN2_LO[np.float64]
    return math.ldexp(_horner(r, _EXP_C[np.float64]), int(k))


def _exp_array(a: np.ndarray) -> np.ndarray:
    return _blocks(a, _exp_kernel)


def exp(x):
    """e**x.  float32 arrays -> float32, other arrays and Python floats -> float64."""
    if _is_scalar(x):
        return _scalar_out(x, _exp_scalar(x))
    return _out(x, _exp_array(_as_float_array(x)))


def expit(x):
    """The logistic sigmoid 1 / (1 + e**-x) (``scipy.special.expit``), same types as :func:`exp`."""
    if _is_scalar(x):
        return _scalar_out(x, 1.0 / (1.0 + _exp_scalar(-float(x))))
    return _out(x, _blocks(_as_float_array(x), _expit_kernel))


# ----------------------------------------------------------------------------- log
def _log_scalar(x: float) -> float:
    x = float(x)
    if not x > 0.0:
        raise ValueError(f"log of a non-positive number: {x!r}")
    m, e = math.frexp(x)          # x = m * 2^e, m in [0.5, 1)  (exact)
    m, e = m * 2.0, e - 1         # m in [1, 2)
    if m > _SQRT2:
        m, e = m * 0.5, e + 1
    s = (m - 1.0) / (m + 1.0)
    p = 2.0 * s * _horner(s * s, _LOG_C[np.float64])
    return e * _LN2_HI[np.float64] + (e * _LN2_LO[np.float64] + p)


def _log_array(a: np.ndarray) -> np.ndarray:
    """Natural log of positive normal numbers (callers check and clamp)."""
    return _blocks(a, _log_kernel)


def log(x):
    """Natural logarithm of positive numbers, same types as :func:`exp`."""
    if _is_scalar(x):
        return _scalar_out(x, _log_scalar(x))
    a = _as_float_array(x)
    if not np.all(a > 0):
        raise ValueError("log: every element must be positive (and not NaN)")
    return _out(x, _log_array(np.maximum(a, np.finfo(a.dtype).tiny)))


def log1p(x):
    """log(1 + x) for x > -1, accurate for small x: log(u) * x / (u - 1), u = 1 + x
    (Goldberg 1991, "What every computer scientist should know", theorem 4)."""
    if _is_scalar(x):
        v = float(x)
        u = 1.0 + v
        return _scalar_out(x, v if u == 1.0 else _log_scalar(u) * (v / (u - 1.0)))
    a = _as_float_array(x)
    t = _type(a)
    if not np.all(a > t(-1.0)):
        raise ValueError("log1p: every element must be greater than -1 (and not NaN)")
    return _out(x, _blocks(a, _log1p_kernel, np.finfo(t).tiny))


def power(x, y: float):
    """x**y for x >= 0 and a positive exponent ``y`` (0**y = 0), as exp(y log x).
    Arrays keep float32; Python floats and other arrays -> float64."""
    y = float(y)
    if not y > 0.0:
        raise ValueError(f"power: the exponent must be positive, got {y!r}")
    if _is_scalar(x):
        v = float(x)
        if not v >= 0.0:
            raise ValueError(f"power: the base must be >= 0, got {v!r}")
        return _scalar_out(x, 0.0 if v == 0.0 else _exp_scalar(y * _log_scalar(v)))
    a = _as_float_array(x)
    if not np.all(a >= 0):
        raise ValueError("power: every base must be >= 0 (and not NaN)")
    return _out(x, _blocks(a, _power_kernel, y, np.finfo(a.dtype).tiny))


# ----------------------------------------------------------------------------- sin / cos / atan
def _reduce(x):
    """x = k * pi/2 + r, |r| <= pi/4 (about; exact parts, |x| < 2^20)."""
    if isinstance(x, float):
        k = float(round(x * _TWO_OVER_PI))
    else:
        k = np.rint(x * _TWO_OVER_PI)
    r = x - k * _PIO2_1
    r = r - k * _PIO2_2
    r = r - k * _PIO2_3
    return k, r


def _sincos_reduced(r):
    z = r * r
    return r * _horner(z, _SIN_C), _horner(z, _COS_C)


def sincos(x):
    """(sin x, cos x), |x| < 1e6.  float32 arrays are computed in float64 and rounded once."""
    if _is_scalar(x):
        v = float(x)
        if not abs(v) < 1e6:
            raise ValueError(f"sincos: |x| must be below 1e6, got {v!r}")
        k, r = _reduce(v)
        s, c = _sincos_reduced(r)
        s, c = ((s, c), (c, -s), (-s, -c), (-c, s))[int(k) & 3]
        return _scalar_out(x, s), _scalar_out(x, c)
    a = _as_float_array(x)
    t = _type(a)
    x64 = a.astype(np.float64)
    if not np.all(np.abs(x64) < 1e6):
        raise ValueError("sincos: every |x| must be below 1e6 (and not NaN)")
    k, r = _reduce(x64)
    s, c = _sincos_reduced(r)
    q = k.astype(np.int64) & 3
    sin_x = np.select([q == 0, q == 1, q == 2], [s, c, -s], -c)
    cos_x = np.select([q == 0, q == 1, q == 2], [c, -s, -c], s)
    return _out(x, sin_x.astype(t, copy=False)), _out(x, cos_x.astype(t, copy=False))


def sin(x):
    """sin x, |x| < 1e6 (see :func:`sincos`)."""
    return sincos(x)[0]


def cos(x):
    """cos x, |x| < 1e6 (see :func:`sincos`)."""
    return sincos(x)[1]


def _atan_unit(t):
    """atan t for 0 <= t <= 1: two argument halvings, atan t = 2 atan(t / (1 + sqrt(1 + t^2))),
    then the series on |t| <= tan(pi/16)."""
    sq = math.sqrt if isinstance(t, float) else np.sqrt
    for _ in range(2):
        t = t / (1.0 + sq(1.0 + t * t))
    return 4.0 * (t * _horner(t * t, _ATAN_C))


def arctan2(y, x):
    """The angle of (x, y) in (-pi, pi], as ``numpy.arctan2`` (0 for (0, 0))."""
    if _is_scalar(y) and _is_scalar(x):
        yv, xv = float(y), float(x)
        ay, ax = abs(yv), abs(xv)
        big = max(ay, ax)
        a = 0.0 if big == 0.0 else _atan_unit(min(ay, ax) / big)
        if ay > ax:
            a = _PI_2 - a
        if math.copysign(1.0, xv) < 0.0:
            a = _PI - a
        return _scalar_out(y, math.copysign(a, yv))
    ya, xa = np.broadcast_arrays(_as_float_array(y), _as_float_array(x))
    t = np.result_type(ya, xa).type
    y64, x64 = ya.astype(np.float64), xa.astype(np.float64)
    ay, ax = np.abs(y64), np.abs(x64)
    big = np.maximum(ay, ax)
    a = _atan_unit(np.minimum(ay, ax) / np.where(big == 0.0, 1.0, big))
    a = np.where(ay > ax, _PI_2 - a, a)
    a = np.where(np.signbit(x64), _PI - a, a)
    a = np.copysign(a, y64)
    r = a.astype(t, copy=False)
    return r[0] if np.ndim(y) == 0 and np.ndim(x) == 0 else r


def hypot(x, y):
    """sqrt(x^2 + y^2) (no libm ``hypot``: plain IEEE operations; inputs of the renderer's
    size, far from overflow)."""
    if _is_scalar(x) and _is_scalar(y):
        return math.sqrt(float(x) * float(x) + float(y) * float(y))
    x, y = _as_float_array(x), _as_float_array(y)
    return np.sqrt(x * x + y * y)


# ----------------------------------------------------------------------------- blur kernel
@lru_cache(maxsize=256)
def gaussian_kernel(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """The 1-D kernel of ``scipy.ndimage.gaussian_filter`` (radius ``int(truncate * sigma
    + 0.5)``, weights exp(-x^2 / (2 sigma^2)) normalised to sum 1), with this module's
    ``exp``; scipy's own calls numpy's CPU-dependent ``exp``.  Read-only float64 array."""
    sigma = float(sigma)
    if not sigma > 0.0:
        raise ValueError(f"gaussian_kernel: sigma must be positive, got {sigma!r}")
    radius = int(float(truncate) * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = exp((-0.5 / (sigma * sigma)) * (x * x))
    w = w / math.fsum(w.tolist())      # correctly rounded sum: no summation order involved
    w.setflags(write=False)
    return w
