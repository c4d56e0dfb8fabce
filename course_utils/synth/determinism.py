"""Is the course data the same on every CPU?  Render a sample under each lower
SIMD dispatch level this machine has and compare the bytes.

numpy chooses at run time between implementations of its math functions built
for the x86-64 baseline, AVX2 (``X86_V3``), AVX-512 (``X86_V4``, ``AVX512_ICL``,
...); ``NPY_DISABLE_CPU_FEATURES`` makes it use a lower one, exactly as on a CPU
that lacks the higher ones.  glibc's ``libm`` does the same for ``exp``, ``sin``,
``pow``, ... (FMA or not; ``GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-FMA,...``).
Rendering the same images in a subprocess per level and comparing them with
the images rendered normally shows whether any pixel depends on the CPU.

The sample (:func:`sample_images`, 55 images) is drawn from the default course
splits: the first image of every finding, the first and last patient, the first
PA and AP films without findings (so every finding, both views and the devices
of AP films, ECG leads and lines, are drawn), then the splits' first images.
With the renderer of course_utils 0.2.0 (numpy's own ``exp``, ``power``, ...),
7 of these 55 images differed with numpy restricted to ``X86_V3`` (AVX2), where
the coverage images alone (15) showed 1.  Its hashes are also compared with the
committed manifest of the course set (``manifests/course_default.sha256``).

    python -m course_utils.synth.determinism        # one line per level, exit 1 on a difference

Used by ``tests/test_synth_determinism.py`` (fast test set, seconds).
"""
from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: glibc tunable that hides the CPU features its libm variants are chosen by (glibc >= 2.33
#: names; an older glibc ignores unknown names, and the numpy levels are still checked)
GLIBC_BASELINE = "glibc.cpu.hwcaps=-AVX512F,-AVX512DQ,-AVX512VL,-AVX2,-FMA,-FMA4,-AVX"


@dataclass(frozen=True)
class Level:
    """One way to run the renderer: a name and the environment variables that select it."""
    name: str
    env: dict

    def describe(self) -> str:
        return " ".join(f"{k}={v!r}" for k, v in self.env.items()) or "(this machine's defaults)"


def numpy_dispatch_found() -> list[str]:
    """numpy's dispatch targets that this CPU supports, lowest first (``numpy.show_runtime``'s
    'found' list: e.g. ['X86_V3', 'X86_V4', 'AVX512_ICL'] on a Zen 4)."""
    try:    # what numpy.show_runtime() reads; private, so a numpy that moves it is said plainly
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError as exc:
        raise RuntimeError(f"numpy {np.__version__} does not expose its CPU dispatch targets where "
                           f"numpy 2.x does ({exc}); update course_utils.synth.determinism") from exc
    return [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]


def levels(include_glibc: bool = True) -> list[Level]:
    """The levels to compare with this machine's own: for each dispatch target this CPU has,
    numpy restricted to the targets below it (highest first), then, with ``include_glibc``,
    the lowest numpy level together with glibc's baseline libm."""
    found = numpy_dispatch_found()
    out = []
    for i in range(len(found) - 1, -1, -1):
        disabled = " ".join(found[i:])
        below = found[i - 1] if i else "baseline"
        out.append(Level(f"numpy up to {below}", {"NPY_DISABLE_CPU_FEATURES": disabled}))
    if include_glibc:
        env = dict(out[-1].env) if out else {}
        env["GLIBC_TUNABLES"] = GLIBC_BASELINE
        out.append(Level("numpy baseline + glibc baseline libm", env))
    return out


#: images in the sample: a CPU-dependent function changed about 1 image in 9 by a grey level
#: (186 of 1,620), so 15 images would miss it with a chance of 1 in 6, 55 with 1 in 600
SAMPLE_SIZE = 55


@lru_cache(maxsize=2)
def _course_patients(seed: int | None) -> tuple:
    """The default course splits' patients, in split order (drawn once per process: about 1 s)."""
    from . import labels as L
    sets = L.make_course_splits(L.DEFAULT_SEED if seed is None else seed)
    return tuple(p for split in sets.values() for p in split)


def sample_images(seed: int | None = None, size: int = SAMPLE_SIZE):
    """[(patient, follow-up index)] of the default course splits: every finding, both views,
    the first PA and AP films without findings, then the first images of the splits up to
    ``size`` images."""
    from . import dataset as D
    patients = _course_patients(seed)
    sample = D._sample_images(patients)
    for view in ("PA", "AP"):
        for p in patients:
            hit = [k for k, im in enumerate(p.images) if im.view == view and not any(im.labels)]
            if hit:
                sample.append((p, hit[0]))
                break
    unique, names = [], set()
    for p, k in sample + [(p, k) for p in patients for k in range(len(p.images))]:
        if len(unique) >= max(size, len(sample)):
            break
        if p.images[k].image not in names:
            names.add(p.images[k].image)
            unique.append((p, k))
    return unique


def render_sample(size: int | None = None) -> dict[str, bytes]:
    """image name -> PNG bytes (as written to the course data) of :func:`sample_images`
    (default seed and size)."""
    from . import dataset as D
    from . import labels as L
    size = D.DEFAULT_SIZE if size is None else size
    wanted: dict[int, tuple] = {}                     # PatientId -> (patient, {follow-up indexes})
    for p, k in sample_images():
        wanted.setdefault(p.patient_id, (p, set()))[1].add(k)
    out = {}
    for p, ks in wanted.values():                     # each patient rendered once, up to its last
        rendered = D.render_patient(p.truncated(max(ks) + 1), L.DEFAULT_SEED, size)
        for k in sorted(ks):
            name, data, _ = rendered[k]
            out[name] = data
    return out


def sample_views_and_findings() -> tuple[set[str], set[str]]:
    """(views, findings) that :func:`sample_images` covers."""
    from ..constants import CSV_LABELS
    views, findings = set(), set()
    for p, k in sample_images():
        im = p.images[k]
        views.add(im.view)
        findings |= {CSV_LABELS[j] for j in np.flatnonzero(np.asarray(im.labels))}
    return views, findings


def render_in_subprocess(level: Level, timeout: float = 300) -> dict[str, bytes]:
    """:func:`render_sample` in a fresh interpreter with ``level.env`` set (its PNGs, zlib
    included, are the subprocess's own)."""
    env = {**os.environ, **level.env}
    code = ("import io, sys, numpy as np\n"
            "from course_utils.synth.determinism import render_sample\n"
            "pngs = {k: np.frombuffer(v, np.uint8) for k, v in render_sample().items()}\n"
            "buf = io.BytesIO(); np.savez(buf, **pngs); sys.stdout.buffer.write(buf.getvalue())\n")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"rendering with {level.describe()} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr.decode(errors='replace')[-2000:]}")
    with np.load(io.BytesIO(proc.stdout)) as npz:
        return {k: npz[k].tobytes() for k in npz.files}


@dataclass
class Comparison:
    level: Level
    n_images: int
    differing: list[str]
    max_abs_diff: int

    def line(self) -> str:
        verdict = "identical" if not self.differing else \
            f"{len(self.differing)} differ (largest pixel difference {self.max_abs_diff} grey levels)"
        return f"{self.level.name:40s} {self.n_images} images {verdict}  [{self.level.describe()}]"


def compare(reference: dict[str, bytes], other: dict[str, bytes], level: Level) -> Comparison:
    """Which PNGs differ, and by how many grey levels at most (decoded only where they differ)."""
    from PIL import Image
    if set(reference) != set(other):
        raise RuntimeError(f"{level.name}: another sample was rendered ({sorted(set(reference) ^ set(other))})")
    differing, worst = [], 0
    for name in sorted(reference):
        if reference[name] != other[name]:
            differing.append(name)
            a, b = (np.asarray(Image.open(io.BytesIO(png)), dtype=np.int16)
                    for png in (reference[name], other[name]))
            if a.shape == b.shape:
                worst = max(worst, int(np.abs(a - b).max()))
    return Comparison(level, len(reference), differing, worst)


def manifest_mismatches(pngs: dict[str, bytes]) -> list[str]:
    """Sample images whose PNG's sha256 is not the committed manifest's."""
    from . import dataset as D
    ref = D.read_manifest(D.PACKAGE_MANIFEST)
    return [name for name, png in sorted(pngs.items()) if ref.get(f"images/{name}") != D.sha256_bytes(png)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m course_utils.synth.determinism",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--no-glibc", action="store_true", help="skip the glibc baseline libm level")
    args = ap.parse_args(argv)
    found = numpy_dispatch_found()
    print(f"numpy {np.__version__}: dispatch targets on this CPU: {', '.join(found) or 'none'}")
    reference = render_sample()
    failures = 0
    bad = manifest_mismatches(reference)
    print(f"{'this machine':40s} {len(reference)} images: "
          + ("match the committed manifest" if not bad else f"{len(bad)} differ from the committed manifest"))
    failures += bool(bad)
    for level in levels(include_glibc=not args.no_glibc):
        cmp = compare(reference, render_in_subprocess(level), level)
        print(cmp.line())
        failures += bool(cmp.differing)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
