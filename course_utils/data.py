"""Course CSVs, the real NIH ChestX-ray14 table, patient-disjoint splits and
``load_image``.

Two sources of radiographs go through this module:

* the course data (synthetic, written by ``python -m course_utils data``):
  ``train-small.csv``, ``valid-small.csv``, ``test.csv`` in the *course
  layout* (:data:`course_utils.constants.CSV_COLUMNS`: ``Image``, the 14
  findings in alphabetical order, ``PatientId`` between ``Nodule`` and
  ``Pleural_Thickening``; labels are integers 0/1), read with
  :func:`read_course_csv`;
* the real NIH ChestX-ray14 release (Wang et al., "ChestX-ray8:
  Hospital-scale Chest X-ray Database and Benchmarks on Weakly-Supervised
  Classification and Localization of Common Thorax Diseases", CVPR 2017;
  https://nihcc.app.box.com/v/ChestXray-NIHCC), whose ``Data_Entry_2017.csv``
  (or its ``Data_Entry_2017_v2020.csv`` revision, optionally gzipped)
  :func:`read_nih_metadata` converts to the same course layout, and whose
  official ``train_val_list.txt`` / ``test_list.txt`` :func:`nih_splits` uses.

Columns of the NIH table (one row per image): ``Image Index`` (file name,
``{PatientId:08d}_{FollowUp:03d}.png``), ``Finding Labels`` (the findings
separated by ``|``, or ``No Finding``), ``Follow-up #``, ``Patient ID``,
``Patient Age`` (years; an integer in both releases, ``"058Y"``-style strings
in some redistributed samples), ``Patient Gender`` (M/F), ``View Position``
(PA/AP), the original image size and pixel spacing.  The 2017 file ends
every line with a trailing comma (an empty unnamed 12th column); the v2020
revision does not.

Nothing here imports TensorFlow except :func:`load_image`, which uses the
input pipeline's own preprocessing (:mod:`course_utils.pipeline`).
"""
from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from course_utils.constants import CSV_COLUMNS, CSV_LABELS

#: Columns of the NIH table that every conversion needs.
NIH_REQUIRED_COLUMNS: tuple[str, ...] = ("Image Index", "Finding Labels", "Patient ID")

#: NIH metadata columns kept by ``read_nih_metadata(..., keep_metadata=True)``
#: and the course names they get (the names of the generator's metadata.csv).
NIH_METADATA_COLUMNS: dict[str, str] = {
    "View Position": "View", "Patient Age": "Age", "Patient Gender": "Sex",
    "Follow-up #": "FollowUp",
}

#: The NIH label meaning "none of the 14 findings".
NO_FINDING = "No Finding"

#: File names of the official NIH split lists (image names, one per line).
NIH_TRAIN_VAL_LIST = "train_val_list.txt"
NIH_TEST_LIST = "test_list.txt"

_SHOW = 5   # how many offending names an error message lists


def _first(items, n: int = _SHOW) -> str:
    items = list(items)
    shown = ", ".join(repr(x) for x in items[:n])
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


def _label_hint(name: str) -> str:
    close = difflib.get_close_matches(name, list(CSV_LABELS) + [NO_FINDING], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------
# the real NIH table
# --------------------------------------------------------------------------
def _parse_age(values: pd.Series, csv_path: Path) -> pd.Series:
    """Ages in years as int64: integers, or strings ``"058Y"`` / ``"011M"`` /
    ``"020D"`` (years / months / days, floored to whole years)."""
    if pd.api.types.is_integer_dtype(values):
        return values.astype("int64")
    text = values.astype(str).str.strip().str.upper()
    parts = text.str.extract(r"^(\d+)([YMD]?)$")
    bad = parts[0].isna()
    if bad.any():
        raise ValueError(
            f"{csv_path}: column 'Patient Age' has values that are not ages "
            f"(an integer, optionally followed by Y/M/D): {_first(text[bad].unique())}. "
            "Fix those rows or read the table with keep_metadata=False.")
    number = parts[0].astype("int64")
    divisor = parts[1].map({"": 1, "Y": 1, "M": 12, "D": 365}).astype("int64")
    return (number // divisor).astype("int64")


def read_nih_metadata(csv_path: str | os.PathLike, keep_metadata: bool = False) -> pd.DataFrame:
    """Read NIH ``Data_Entry_2017.csv`` (or ``Data_Entry_2017_v2020.csv``,
    ``.gz`` accepted) and return it in the course CSV layout.

    Parameters
    ----------
    csv_path : the NIH table (Wang et al., CVPR 2017; 112,120 rows for the
        full release).  Compression is inferred from the extension.
    keep_metadata : also return ``View`` (PA/AP), ``Age`` (years, int),
        ``Sex`` (M/F) and ``FollowUp`` (int), in that order, *after* the
        course columns.  Off by default so that the result has exactly
        :data:`~course_utils.constants.CSV_COLUMNS`.

    Returns
    -------
    DataFrame, one row per image in file order (index 0..n-1), columns
    ``CSV_COLUMNS`` (+ the four metadata columns): ``Image`` (str), the 14
    findings as int64 0/1 (``Finding Labels`` split on ``|``; ``No Finding``
    gives all zeros), ``PatientId`` int64.

    Raises
    ------
    FileNotFoundError : the file does not exist.
    ValueError (naming the file) : a required column is missing; a label is
        not one of the 14 findings or ``No Finding``; ``No Finding`` is
        combined with a finding; ``Finding Labels`` is empty; ``Patient ID``
        is not an integer; an image name is empty or repeated.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"NIH table not found: {csv_path}")
    raw = pd.read_csv(csv_path, dtype={"Image Index": str, "Finding Labels": str})
    raw.columns = [str(c).strip() for c in raw.columns]
    # the 2017 file's trailing comma makes an empty 'Unnamed: 11' column
    empty_unnamed = [c for c in raw.columns if c.startswith("Unnamed:") and raw[c].isna().all()]
    raw = raw.drop(columns=empty_unnamed)

    required = list(NIH_REQUIRED_COLUMNS) + (list(NIH_METADATA_COLUMNS) if keep_metadata else [])
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise ValueError(
            f"{csv_path}: missing column(s) {missing}; an NIH Data_Entry table has "
            f"{list(NIH_REQUIRED_COLUMNS) + list(NIH_METADATA_COLUMNS)} "
            f"(found {list(raw.columns)}).")

    images = raw["Image Index"].astype(str).str.strip()
    if raw["Image Index"].isna().any() or (images == "").any():
        rows = np.flatnonzero(raw["Image Index"].isna().to_numpy() | (images == "").to_numpy())
        raise ValueError(f"{csv_path}: empty 'Image Index' in data row(s) {_first(rows.tolist())}.")
    dup = images[images.duplicated()]
    if len(dup):
        raise ValueError(f"{csv_path}: 'Image Index' repeats image(s) {_first(dup.unique())}; "
                         "each image must appear once.")

    findings = raw["Finding Labels"].fillna("").astype(str).str.strip()
    findings = findings.str.replace(r"\s*\|\s*", "|", regex=True)
    empty = findings == ""
    if empty.any():
        raise ValueError(
            f"{csv_path}: empty 'Finding Labels' for image(s) {_first(images[empty])}; "
            f"use {NO_FINDING!r} for an image without findings.")
    onehot = findings.str.get_dummies(sep="|")
    unknown = [c for c in onehot.columns if c not in CSV_LABELS and c != NO_FINDING]
    if unknown:
        name = unknown[0]
        example = images[onehot[name] == 1].iloc[0]
        raise ValueError(
            f"{csv_path}: unknown label(s) {unknown} in 'Finding Labels' "
            f"(first: {name!r}{_label_hint(name)} in image {example!r}). "
            f"Known labels: {list(CSV_LABELS)} and {NO_FINDING!r}.")
    if NO_FINDING in onehot.columns:
        contradictory = (onehot[NO_FINDING] == 1) & (onehot.drop(columns=NO_FINDING).sum(axis=1) > 0)
        if contradictory.any():
            raise ValueError(
                f"{csv_path}: {NO_FINDING!r} combined with a finding for image(s) "
                f"{_first(images[contradictory])}.")

    patient = pd.to_numeric(raw["Patient ID"], errors="coerce")
    bad = patient.isna() | (patient != np.floor(patient))
    if bad.any():
        raise ValueError(f"{csv_path}: 'Patient ID' is not an integer for image(s) "
                         f"{_first(images[bad])} (values {_first(raw['Patient ID'][bad])}).")

    out = pd.DataFrame({"Image": images})
    for label in CSV_LABELS:
        out[label] = onehot[label].astype("int64") if label in onehot.columns else np.zeros(len(out), "int64")
    out["PatientId"] = patient.astype("int64")
    out = out[list(CSV_COLUMNS)]
    if keep_metadata:
        out["View"] = raw["View Position"].astype(str).str.strip()
        out["Age"] = _parse_age(raw["Patient Age"], csv_path)
        out["Sex"] = raw["Patient Gender"].astype(str).str.strip()
        follow = pd.to_numeric(raw["Follow-up #"], errors="coerce")
        bad = follow.isna() | (follow != np.floor(follow))
        if bad.any():
            raise ValueError(f"{csv_path}: 'Follow-up #' is not an integer for image(s) "
                             f"{_first(images[bad])}.")
        out["FollowUp"] = follow.astype("int64")
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------
# patient-disjoint splits
# --------------------------------------------------------------------------
def _read_list(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]


def _split_patients(patients: np.ndarray, fractions: list[float], rng) -> list[np.ndarray]:
    """Shuffle unique patient ids and cut them into len(fractions)+1 groups
    (the last one takes the rest)."""
    order = rng.permutation(patients)
    groups, start = [], 0
    for f in fractions:
        n = int(round(f * len(order)))
        groups.append(order[start:start + n])
        start += n
    groups.append(order[start:])
    return groups


def nih_splits(df: pd.DataFrame, data_dir: str | os.PathLike | None = None,
               valid_fraction: float = 0.1, test_fraction: float = 0.2,
               seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Patient-disjoint (train, valid, test) splits of an NIH table.

    ``df`` is the output of :func:`read_nih_metadata` (needs ``Image`` and
    ``PatientId``).  No patient has images in two splits: images of one
    patient look alike, so a patient in both training and test inflates the
    test score (patient leakage).

    * If ``data_dir`` holds the official NIH lists ``train_val_list.txt`` and
      ``test_list.txt`` (Wang et al. 2017; 86,524 / 25,596 images, patient
      disjoint), the test split is exactly the listed test images and
      ``test_fraction`` is not used; ``valid`` is a seeded random
      ``valid_fraction`` of the *patients* of the train_val list.
    * Otherwise (``data_dir`` None, or neither list in it) the patients are
      shuffled with ``numpy.random.default_rng(seed)`` and cut into
      ``test_fraction`` / ``valid_fraction`` / the rest.  Fractions are of
      patients, not images.

    Returns three DataFrames with ``df``'s columns, rows in ``df``'s order,
    index reset; each has ``attrs["split_source"]`` = ``"official"`` or
    ``"seeded"``.

    Raises ValueError (naming the list file) if only one list is present, if
    an image of ``df`` is in neither or both lists, if the lists put one
    patient in both, if a fraction is outside [0, 1) or leaves training empty.
    """
    for col in ("Image", "PatientId"):
        if col not in df.columns:
            raise ValueError(f"nih_splits: the DataFrame has no {col!r} column; "
                             "pass the output of read_nih_metadata().")
    for name, f in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= f < 1.0:
            raise ValueError(f"nih_splits: {name} must be in [0, 1), got {f}.")
    rng = np.random.default_rng(seed)

    lists = None
    if data_dir is not None:
        data_dir = Path(data_dir)
        tv_path, test_path = data_dir / NIH_TRAIN_VAL_LIST, data_dir / NIH_TEST_LIST
        present = [p.exists() for p in (tv_path, test_path)]
        if any(present) and not all(present):
            have, lack = (tv_path, test_path) if present[0] else (test_path, tv_path)
            raise ValueError(f"nih_splits: found {have} but not {lack}; provide both official "
                             "lists or neither (then a seeded patient split is made).")
        if all(present):
            lists = (tv_path, test_path)

    if lists is not None:
        tv_path, test_path = lists
        tv_names, test_names = set(_read_list(tv_path)), set(_read_list(test_path))
        both = tv_names & test_names
        if both:
            raise ValueError(f"nih_splits: image(s) {_first(sorted(both))} are in both "
                             f"{tv_path} and {test_path}.")
        in_tv = df["Image"].isin(tv_names).to_numpy()
        in_test = df["Image"].isin(test_names).to_numpy()
        neither = df["Image"][~(in_tv | in_test)]
        if len(neither):
            raise ValueError(f"nih_splits: image(s) {_first(neither)} are in neither {tv_path} "
                             f"nor {test_path}; use the lists that belong to this table.")
        shared = set(df["PatientId"][in_tv]) & set(df["PatientId"][in_test])
        if shared:
            raise ValueError(f"nih_splits: patient(s) {_first(sorted(shared))} have images in "
                             f"both {tv_path} and {test_path}: the lists are not patient-disjoint.")
        tv_patients = np.unique(df["PatientId"][in_tv].to_numpy())
        valid_p, _ = _split_patients(tv_patients, [valid_fraction], rng)
        is_valid = df["PatientId"].isin(valid_p).to_numpy() & in_tv
        masks = (in_tv & ~is_valid, is_valid, in_test)
        source = "official"
    else:
        if valid_fraction + test_fraction >= 1.0:
            raise ValueError("nih_splits: valid_fraction + test_fraction must be < 1, got "
                             f"{valid_fraction} + {test_fraction}.")
        patients = np.unique(df["PatientId"].to_numpy())
        test_p, valid_p, _ = _split_patients(patients, [test_fraction, valid_fraction], rng)
        is_test = df["PatientId"].isin(test_p).to_numpy()
        is_valid = df["PatientId"].isin(valid_p).to_numpy()
        masks = (~is_test & ~is_valid, is_valid, is_test)
        source = "seeded"

    if not masks[0].any():
        raise ValueError(f"nih_splits: the training split is empty ({len(df)} images); "
                         "lower valid_fraction/test_fraction.")
    out = []
    for mask in masks:
        part = df[mask].reset_index(drop=True)
        part.attrs["split_source"] = source
        out.append(part)
    return tuple(out)


# --------------------------------------------------------------------------
# course CSVs and image files
# --------------------------------------------------------------------------
def read_course_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a course CSV (train-small.csv, valid-small.csv, test.csv) and
    check its layout.

    Returns a DataFrame with the :data:`~course_utils.constants.CSV_COLUMNS`
    first, in that order (labels and ``PatientId`` as int64), followed by any
    extra columns of the file, unchanged.

    Raises FileNotFoundError if the file is missing, and ValueError naming
    the file and what to fix when a course column is missing, a label holds
    something other than 0/1 (blank included), ``PatientId`` is not an
    integer, or an image name is empty or repeated.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"course CSV not found: {path}")
    df = pd.read_csv(path, dtype={"Image": str})
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in CSV_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}. A course CSV has the columns "
                         f"{list(CSV_COLUMNS)} (found {list(df.columns)}).")
    for label in CSV_LABELS:
        values = pd.to_numeric(df[label], errors="coerce")
        bad = ~values.isin([0, 1])
        if bad.any():
            raise ValueError(
                f"{path}: column {label!r} must hold only 0 or 1; rows (0-based data rows) "
                f"{_first(np.flatnonzero(bad.to_numpy()).tolist())} hold "
                f"{_first(df[label][bad].astype(str))}.")
        df[label] = values.astype("int64")
    pid = pd.to_numeric(df["PatientId"], errors="coerce")
    bad = pid.isna() | (pid != np.floor(pid))
    if bad.any():
        raise ValueError(f"{path}: 'PatientId' is not an integer in rows "
                         f"{_first(np.flatnonzero(bad.to_numpy()).tolist())}.")
    df["PatientId"] = pid.astype("int64")
    names = df["Image"].fillna("").astype(str).str.strip()
    if (names == "").any():
        raise ValueError(f"{path}: empty 'Image' in rows "
                         f"{_first(np.flatnonzero((names == '').to_numpy()).tolist())}.")
    dup = names[names.duplicated()]
    if len(dup):
        raise ValueError(f"{path}: image(s) {_first(dup.unique())} appear more than once; "
                         "each image must be listed once.")
    df["Image"] = names
    extra = [c for c in df.columns if c not in CSV_COLUMNS]
    return df[list(CSV_COLUMNS) + extra].reset_index(drop=True)


def check_images_exist(df: pd.DataFrame, image_dir: str | os.PathLike,
                       column: str = "Image") -> None:
    """Raise FileNotFoundError unless every ``df[column]`` file is in ``image_dir``.

    The message gives how many are missing, the first few names and the
    directory.  Listing the directory once makes this fast for the 112,120
    NIH images (the NIH release ships them in ``images_001/images`` ...
    ``images_012/images``: put them, or links to them, in one directory).
    """
    image_dir = Path(image_dir)
    if column not in df.columns:
        raise ValueError(f"check_images_exist: the DataFrame has no {column!r} column.")
    if not image_dir.is_dir():
        raise FileNotFoundError(f"image directory not found: {image_dir}")
    names = df[column].astype(str)
    present = set(os.listdir(image_dir))
    missing = [n for n in names if n not in present and not (image_dir / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(names)} image(s) missing from {image_dir}: {_first(missing)}. "
            "Generate the course data (python -m course_utils data --out DIR) or point "
            "image_dir at the folder holding these files.")


# --------------------------------------------------------------------------
# one image, ready for the model
# --------------------------------------------------------------------------
def load_image(path: str | os.PathLike, size: int | None = None,
               mean: float | None = None, std: float | None = None) -> np.ndarray:
    """Load one radiograph exactly as :func:`course_utils.pipeline.make_dataset`
    does and return a float32 array of shape ``(size, size, 3)``.

    It calls :func:`course_utils.pipeline.load_png`, which runs the graph
    functions of the dataset's map (bit-identical output, tested): PNG of
    any size and mode (gray, gray+alpha, RGB, RGBA; 8 or 16 bit) ->
    grayscale in [0, 1] -> resize to ``size`` x ``size`` (bilinear,
    antialiased) -> ``(x - mean) / std`` -> 3 identical channels.

    ``size`` None -> :data:`course_utils.pipeline.DEFAULT_IMAGE_SIZE` (128,
    the course model's input).  ``mean``/``std`` are the TRAINING set's
    pixel statistics on the [0, 1] scale (from
    :func:`course_utils.pipeline.compute_normalization`); both None -> the
    course defaults from :func:`course_utils.pipeline.course_normalization`
    (computed once from the course ``train-small.csv`` and cached in
    ``train_normalization.json`` in the course data directory).

    Raises FileNotFoundError if the file is missing, ValueError naming the
    file if it is not a readable PNG.
    """
    from course_utils import pipeline   # imports TensorFlow

    return pipeline.load_png(path, size=size, mean=mean, std=std)
