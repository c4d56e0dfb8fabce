"""Fit the parameters of the synthetic label model to the NIH figures and write
them to ``course_utils/synth/label_params.py`` (a generated file: never edit it
by hand, re-run this script).

    .venv/bin/python scripts/fit_synth_labels.py            # writes the module
    .venv/bin/python scripts/fit_synth_labels.py --check    # fits, prints, writes nothing

The model (see ``course_utils/synth/labels.py`` for how it is sampled):

* images per patient: with probability ``NIH_IMAGES_PER_PATIENT["fraction_single"]``
  one image, otherwise ``2 + floor(L)`` with ``L ~ LogNormal(mu, sigma)``;
  (mu, sigma) fitted so that the NIH median, 75th, 90th and 99th percentiles
  (1, 3, 8, 35) hold with a margin of 0.01 in cumulative probability and the
  mean is 3.64;
* view: a two-state Markov chain over a patient's follow-ups, stationary at
  ``NIH_VIEW_FRACTION`` with P(same view as the previous image) = 0.7548;
* labels: a Gaussian copula (threshold model).  Each image has a latent
  vector ``Z ~ N(0, R)``; finding k is positive when ``Z_k > tau[k, view]``
  with ``tau = Phi^-1(1 - NIH_PREVALENCE_BY_VIEW)``.  Each off-diagonal
  ``R[i, j]`` solves ``sum_v pi_v P(Z_i > tau_iv, Z_j > tau_jv) = P(i and j)``
  with ``P(i and j)`` from ``NIH_COOCCURRENCE_PCT`` (the mean of
  ``P(j|i) P(i)`` and ``P(i|j) P(j)``); R is then projected onto the nearest
  correlation matrix (Higham 2002) when it is not positive definite;
* persistence: over a patient's follow-ups the latent vector is a stationary
  AR(1) process ``Z_t = D Z_{t-1} + (I - D^2)^(1/2) E_t``, ``E_t ~ N(0, S)``
  with ``S = (I - D^2)^(-1/2) (R - D R D) (I - D^2)^(-1/2)`` so that every
  ``Z_t ~ N(0, R)``; ``D = diag(rho_k)`` with ``rho_k`` solving
  P(positive on the next image | positive now) = ``NIH_PERSISTENCE[k]``
  under the view chain.

Sources: NIH ChestX-ray14 figures in ``course_utils.constants`` (Wang et al.,
CVPR 2017).  The view-stickiness figure 0.7548 was computed from
``Data_Entry_2017_v2020.csv`` (consecutive images of a patient, sorted by
Follow-up #, share the View Position in 75.48% of 81,315 pairs).  Gaussian
copula / threshold models for correlated binary data: Emrich & Piedmonte,
"A method for generating high-dimensional multivariate binary variates",
The American Statistician 45(4), 1991.  Nearest correlation matrix: Higham,
IMA J. Numer. Anal. 22(3), 2002.
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import numpy as np
from scipy import optimize, stats

from course_utils.constants import (
    CSV_LABELS, NIH_COOCCURRENCE_PCT, NIH_IMAGES_PER_PATIENT, NIH_PERSISTENCE,
    NIH_PREVALENCE, NIH_PREVALENCE_BY_VIEW, NIH_VIEW_FRACTION,
)

OUT = Path(__file__).resolve().parents[1] / "course_utils" / "synth" / "label_params.py"
VIEW_SAME_NEXT = 0.7548   # see module docstring
IPP_MAX = int(NIH_IMAGES_PER_PATIENT["max"])
MIN_EIGENVALUE = 1e-3
#: Each finding's most frequent partner is made at least this many percentage
#: points of P(partner | finding) more frequent than the next (NIH has near
#: ties, e.g. P(Effusion | Atelectasis) 28.3% vs P(Infiltration | Atelectasis)
#: 28.2%, which no finite sample reproduces reliably).
TOP_GAP_PCT = float(os.environ.get("SYNTH_TOP_GAP_PCT", "3.0"))


def bvn_upper(a: float, b: float, r: float) -> float:
    """P(X > a, Y > b) for a standard bivariate normal with correlation r."""
    if abs(r) < 1e-12:
        return float(stats.norm.sf(a) * stats.norm.sf(b))
    cov = [[1.0, r], [r, 1.0]]
    return float(stats.multivariate_normal(mean=[0.0, 0.0], cov=cov).cdf([-a, -b]))


# --------------------------------------------------------------------- images per patient
def ipp_pmf(mu: float, sigma: float, cap: int = IPP_MAX) -> np.ndarray:
    """pmf over n = 0..cap (index = number of images) of the images-per-patient model."""
    single = NIH_IMAGES_PER_PATIENT["fraction_single"]
    n = np.arange(2, cap + 1)
    dist = stats.lognorm(s=sigma, scale=math.exp(mu))
    mass = dist.cdf(n - 1) - dist.cdf(n - 2)        # P(n-2 <= L < n-1)
    mass = mass / mass.sum()
    pmf = np.zeros(cap + 1)
    pmf[1] = single
    pmf[2:] = (1.0 - single) * mass
    return pmf


def fit_ipp() -> tuple[float, float]:
    targets = [(0.50, NIH_IMAGES_PER_PATIENT["q50"]), (0.75, NIH_IMAGES_PER_PATIENT["q75"]),
               (0.90, NIH_IMAGES_PER_PATIENT["q90"]), (0.99, NIH_IMAGES_PER_PATIENT["q99"])]
    margin = 0.01

    def loss(x):
        pmf = ipp_pmf(x[0], abs(x[1]) + 1e-3)
        cdf = np.cumsum(pmf)
        total = 0.0
        for p, k in targets:
            # the p-quantile equals k  <=>  F(k-1) < p <= F(k)
            total += max(0.0, cdf[k - 1] - p + margin) ** 2 + max(0.0, p - cdf[k] + margin) ** 2
        mean = float((np.arange(len(pmf)) * pmf).sum())
        return 100 * total + ((mean - NIH_IMAGES_PER_PATIENT["mean"]) / 3.64) ** 2

    best = min((optimize.minimize(loss, x0, method="Nelder-Mead",
                                  options=dict(xatol=1e-6, fatol=1e-12, maxiter=4000))
                for x0 in ([0.5, 1.0], [1.0, 1.2], [1.5, 0.8])), key=lambda r: r.fun)
    return float(best.x[0]), float(abs(best.x[1]) + 1e-3)


# --------------------------------------------------------------------- views
def view_chain() -> dict[str, dict[str, float]]:
    """Transition probabilities of the two-state view chain."""
    pi_ap = NIH_VIEW_FRACTION["AP"]
    pi_pa = NIH_VIEW_FRACTION["PA"]
    c = (1.0 - VIEW_SAME_NEXT) / (2 * pi_pa * pi_ap)     # P(change) = 2 pi_pa pi_ap c
    pa_to_ap, ap_to_pa = pi_ap * c, pi_pa * c
    return {"PA": {"PA": 1 - pa_to_ap, "AP": pa_to_ap}, "AP": {"PA": ap_to_pa, "AP": 1 - ap_to_pa}}


# --------------------------------------------------------------------- labels
def thresholds() -> np.ndarray:
    """(14, 2) latent thresholds, columns (PA, AP)."""
    return np.array([[stats.norm.isf(NIH_PREVALENCE_BY_VIEW[f][0]),
                      stats.norm.isf(NIH_PREVALENCE_BY_VIEW[f][1])] for f in CSV_LABELS])


def separated_cooccurrence(gap: float) -> tuple[np.ndarray, list[str]]:
    """NIH_COOCCURRENCE_PCT with every row's top partner at least ``gap``
    percentage points above the others (ties opened symmetrically: the top
    entry goes up and the close runners-up go down by the same amount).
    Returns the adjusted table and a description of each change."""
    c = np.array(NIH_COOCCURRENCE_PCT, dtype=float)
    changes = []
    for i in range(len(CSV_LABELS)):
        row = c[i].copy()
        row[i] = -np.inf
        order = np.argsort(-row)
        top = order[0]
        close = [j for j in order[1:] if row[top] - row[j] < gap]
        if not close:
            continue
        shift = (gap - (row[top] - max(row[j] for j in close))) / 2
        new_top = row[top] + shift
        before = {CSV_LABELS[j]: c[i, j] for j in [top] + close}
        c[i, top] = new_top
        for j in close:
            c[i, j] = min(c[i, j], new_top - gap)
        changes.append(f"{CSV_LABELS[i]}: " + ", ".join(
            f"{f} {v:.1f}->{c[i, CSV_LABELS.index(f)]:.2f}" for f, v in before.items()))
    return c, changes


def joint_targets(cooc_pct: np.ndarray, adjusted: np.ndarray) -> np.ndarray:
    """P(i and j) per pair: the mean of P(j|i) P(i) and P(i|j) P(j), except for
    the entries changed by ``separated_cooccurrence`` (``adjusted[i, j]``), whose
    row's value is used as it stands."""
    c = cooc_pct / 100.0
    p = np.array([NIH_PREVALENCE[f] for f in CSV_LABELS])
    j = c * p[:, None]                      # P(col | row) P(row)
    out = (j + j.T) / 2
    for a, b in zip(*np.nonzero(adjusted)):
        out[a, b] = out[b, a] = j[a, b]
    return out


def fit_pair(tau_i, tau_j, target, pis) -> float:
    def f(r):
        return sum(pi * bvn_upper(tau_i[v], tau_j[v], r) for v, pi in enumerate(pis)) - target
    return float(optimize.brentq(f, -0.95, 0.98, xtol=1e-7))


def nearest_correlation(a: np.ndarray, min_eig: float = MIN_EIGENVALUE, iters: int = 200) -> np.ndarray:
    """Higham's alternating projections with an eigenvalue floor."""
    y = a.copy()
    ds = np.zeros_like(a)
    for _ in range(iters):
        r = y - ds
        w, v = np.linalg.eigh(r)
        x = (v * np.maximum(w, min_eig)) @ v.T
        ds = x - r
        y = x.copy()
        np.fill_diagonal(y, 1.0)
        if np.linalg.eigvalsh(y).min() >= min_eig * 0.5:
            break
    return y


def fit_persistence(tau: np.ndarray, chain) -> np.ndarray:
    views = ("PA", "AP")
    pis = [NIH_VIEW_FRACTION[v] for v in views]
    rho = np.zeros(len(CSV_LABELS))
    for k, f in enumerate(CSV_LABELS):
        def g(r):
            both = sum(pis[a] * chain[views[a]][views[b]] * bvn_upper(tau[k, a], tau[k, b], r)
                       for a in range(2) for b in range(2))
            return both / NIH_PREVALENCE[f] - NIH_PERSISTENCE[f]
        rho[k] = optimize.brentq(g, 0.0, 0.995, xtol=1e-7)
    return rho


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fit and print, write nothing")
    args = parser.parse_args(argv)

    mu, sigma = fit_ipp()
    pmf = ipp_pmf(mu, sigma)
    cdf = np.cumsum(pmf)
    print(f"images per patient: mu={mu:.4f} sigma={sigma:.4f}  F(1)={cdf[1]:.4f} F(2)={cdf[2]:.4f} "
          f"F(3)={cdf[3]:.4f} F(7)={cdf[7]:.4f} F(8)={cdf[8]:.4f} F(34)={cdf[34]:.4f} "
          f"F(35)={cdf[35]:.4f} mean={(np.arange(len(pmf)) * pmf).sum():.3f}")

    chain = view_chain()
    tau = thresholds()
    pis = [NIH_VIEW_FRACTION["PA"], NIH_VIEW_FRACTION["AP"]]
    cooc, changes = separated_cooccurrence(TOP_GAP_PCT)
    adjusted = ~np.isclose(cooc, np.asarray(NIH_COOCCURRENCE_PCT))
    print(f"co-occurrence targets separated by {TOP_GAP_PCT} points: " + "; ".join(changes))
    joint = joint_targets(cooc, adjusted)
    n = len(CSV_LABELS)
    r = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            r[i, j] = r[j, i] = fit_pair(tau[i], tau[j], joint[i, j], pis)
    eig = np.linalg.eigvalsh(r).min()
    print(f"pairwise latent correlation: min eigenvalue {eig:.4f}")
    if eig < MIN_EIGENVALUE:
        r = nearest_correlation(r)
        print(f"  projected to the nearest correlation matrix: min eigenvalue "
              f"{np.linalg.eigvalsh(r).min():.4f}")

    rho = fit_persistence(tau, chain)
    d = np.diag(rho)
    scale = np.diag(1.0 / np.sqrt(1.0 - rho ** 2))
    s = scale @ (r - d @ r @ d) @ scale
    eig_s = np.linalg.eigvalsh(s).min()
    print(f"AR(1) coefficients: " + ", ".join(f"{f} {x:.3f}" for f, x in zip(CSV_LABELS, rho)))
    print(f"innovation correlation: min eigenvalue {eig_s:.4f}")
    if eig_s < MIN_EIGENVALUE:
        s = nearest_correlation(s)
        print(f"  projected: min eigenvalue {np.linalg.eigvalsh(s).min():.4f}")

    def mat(m):
        return "(\n" + "".join("    (" + ", ".join(f"{x:.6f}" for x in row) + "),\n" for row in m) + ")"

    r6 = np.round(r, 6)
    s6 = np.round(s, 6)
    for name, m in (("R", r6), ("S", s6)):
        np.linalg.cholesky(m)   # raises if the rounded matrix is not positive definite
    text = f'''"""Fitted parameters of the synthetic label model.

GENERATED by scripts/fit_synth_labels.py from the NIH figures in
course_utils.constants (Wang et al., CVPR 2017): do not edit by hand, re-run
the script.  Matrices are in CSV_LABELS (alphabetical) order.
"""
# images per patient: 1 with probability NIH fraction_single, else 2 + floor(LogNormal(mu, sigma))
IPP_LOGNORMAL_MU = {mu:.6f}
IPP_LOGNORMAL_SIGMA = {sigma:.6f}

# view chain: VIEW_TRANSITION[previous][next]
VIEW_TRANSITION = {{
    "PA": {{"PA": {chain["PA"]["PA"]:.6f}, "AP": {chain["PA"]["AP"]:.6f}}},
    "AP": {{"PA": {chain["AP"]["PA"]:.6f}, "AP": {chain["AP"]["AP"]:.6f}}},
}}

# latent thresholds per finding: (PA, AP)
THRESHOLDS = {{
''' + "".join(f'    "{f}": ({tau[k, 0]:.6f}, {tau[k, 1]:.6f}),\n' for k, f in enumerate(CSV_LABELS)) + f'''}}

# correlation of the latent vector of one image
LATENT_CORRELATION = {mat(r6)}

# lag-1 autocorrelation of each latent coordinate over a patient's follow-ups
AR_COEFFICIENT = {{
''' + "".join(f'    "{f}": {rho[k]:.6f},\n' for k, f in enumerate(CSV_LABELS)) + f'''}}

# correlation of the AR(1) innovations (keeps every image's latent ~ N(0, LATENT_CORRELATION))
INNOVATION_CORRELATION = {mat(s6)}
'''
    if args.check:
        print("--check: nothing written")
    else:
        OUT.write_text(text)
        print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
