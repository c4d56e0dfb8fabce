"""Tests of course_utils.data: the real NIH table -> course layout, patient-
disjoint splits, course CSV validation, image checks, and (marker ``nih``)
the real NIH sample in $NIH_SAMPLE_DIR (default ../shared/nih-sample)."""
import gzip
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from course_utils.constants import CSV_COLUMNS, CSV_LABELS, LABELS
from course_utils.data import (
    check_images_exist, nih_splits, read_course_csv, read_nih_metadata)

FILES = Path(__file__).parent / "files" / "nih"
REPO = Path(__file__).resolve().parents[1]
NIH_SAMPLE_DIR = Path(os.environ.get("NIH_SAMPLE_DIR", REPO.parent / "shared" / "nih-sample"))


def fixture(name: str) -> Path:
    return FILES / name


# image -> findings of tests/files/nih/Data_Entry_2017.csv (written out by hand)
EXPECTED_FINDINGS = {
    "00000011_000.png": [],
    "00000011_001.png": ["Atelectasis", "Effusion"],
    "00000012_000.png": ["Cardiomegaly"],
    "00000013_000.png": ["Consolidation", "Infiltration", "Pneumonia"],
    "00000013_001.png": ["Edema", "Infiltration"],
    "00000013_002.png": [],
    "00000014_000.png": ["Emphysema", "Pneumothorax"],
    "00000015_000.png": ["Fibrosis", "Pleural_Thickening"],
    "00000016_000.png": ["Hernia"],
    "00000017_000.png": ["Mass", "Nodule"],
    "00000017_001.png": ["Mass"],
    "00000018_000.png": [],
    "00000019_000.png": list(CSV_LABELS),
    "00000020_000.png": ["Nodule"],
    "00000020_001.png": [],
}
EXPECTED_PATIENTS = [11, 11, 12, 13, 13, 13, 14, 15, 16, 17, 17, 18, 19, 20, 20]
# the 14 label columns in alphabetical order, one row per image (hand-written)
EXPECTED_LABELS = np.array([
    # At Ca Co Ed Ef Em Fi He In Ma No PT Pn Px
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0],
    [0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
])

# Per-finding image counts of the real table (../shared/NIH_FIGURES.md)
NIH_COUNTS = {
    "Atelectasis": 11559, "Cardiomegaly": 2776, "Consolidation": 4667, "Edema": 2303,
    "Effusion": 13317, "Emphysema": 2516, "Fibrosis": 1686, "Hernia": 227,
    "Infiltration": 19894, "Mass": 5782, "Nodule": 6331, "Pleural_Thickening": 3385,
    "Pneumonia": 1431, "Pneumothorax": 5302,
}


def _write_nih(tmp_path, rows, header=None, name="Data_Entry_2017.csv"):
    header = header or ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,"
                        "Patient Gender,View Position,OriginalImage[Width,Height],"
                        "OriginalImagePixelSpacing[x,y]")
    path = tmp_path / name
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


# --------------------------------------------------------------------------
# read_nih_metadata on the fixture
# --------------------------------------------------------------------------
def test_fixture_2017_converts_to_exact_course_layout():
    """Does the 2017-format table become the course layout with the hand-written labels?"""
    df = read_nih_metadata(fixture("Data_Entry_2017.csv"))
    assert tuple(df.columns) == CSV_COLUMNS
    assert list(df["Image"]) == list(EXPECTED_FINDINGS)
    assert np.array_equal(df[list(CSV_LABELS)].to_numpy(), EXPECTED_LABELS)
    assert np.array_equal(df["PatientId"].to_numpy(), EXPECTED_PATIENTS)
    assert all(df[c].dtype == np.int64 for c in list(CSV_LABELS) + ["PatientId"])
    for image, findings in EXPECTED_FINDINGS.items():
        row = df.set_index("Image").loc[image]
        assert sorted(c for c in CSV_LABELS if row[c] == 1) == sorted(findings), image


def test_v2020_gz_equals_2017_csv():
    """Do the v2020 header (gzipped, no trailing comma) and the 2017 file give identical tables?"""
    a = read_nih_metadata(fixture("Data_Entry_2017.csv"))
    b = read_nih_metadata(fixture("Data_Entry_2017_v2020.csv.gz"))
    pd.testing.assert_frame_equal(a, b)


def test_no_finding_rows_are_all_zero_and_model_order_by_name():
    """Are 'No Finding' rows all zero, and does LABELS order select the same values by name?"""
    df = read_nih_metadata(fixture("Data_Entry_2017.csv"))
    no_finding = [i for i, f in enumerate(EXPECTED_FINDINGS.values()) if not f]
    assert no_finding == [0, 5, 11, 14]
    assert df.loc[no_finding, list(CSV_LABELS)].to_numpy().sum() == 0
    order = [CSV_LABELS.index(lab) for lab in LABELS]
    assert np.array_equal(df[list(LABELS)].to_numpy(), EXPECTED_LABELS[:, order])


def test_keep_metadata_appends_after_course_columns():
    """Does keep_metadata add View, Age, Sex, FollowUp after the unchanged course columns?"""
    df = read_nih_metadata(fixture("Data_Entry_2017_v2020.csv.gz"), keep_metadata=True)
    assert tuple(df.columns) == CSV_COLUMNS + ("View", "Age", "Sex", "FollowUp")
    assert list(df["View"][:4]) == ["PA", "AP", "PA", "AP"]
    assert list(df["Age"][:4]) == [45, 46, 67, 33]
    assert list(df["Sex"][:3]) == ["F", "F", "M"]
    assert list(df["FollowUp"][:6]) == [0, 1, 0, 0, 1, 2]
    assert df["Age"].dtype == np.int64 and df["FollowUp"].dtype == np.int64


def test_string_ages_are_parsed_to_years(tmp_path):
    """Are '058Y'-style ages (redistributed samples) read as integer years, months floored?"""
    path = _write_nih(tmp_path, [
        "00000001_000.png,No Finding,0,1,058Y,M,PA,2500,2048,0.1,0.1",
        "00000002_000.png,Hernia,0,2,018M,F,AP,2500,2048,0.1,0.1",
        "00000003_000.png,Mass,0,3,7,F,AP,2500,2048,0.1,0.1"])
    assert list(read_nih_metadata(path, keep_metadata=True)["Age"]) == [58, 1, 7]


def test_unknown_label_names_file_label_image_and_suggestion(tmp_path):
    """Does 'Infiltrate' (the BBox file's spelling) raise naming the label, file, image and fix?"""
    path = _write_nih(tmp_path, ["00000001_000.png,Mass|Infiltrate,0,1,58,M,PA,2500,2048,0.1,0.1"])
    with pytest.raises(ValueError, match="Infiltrate") as err:
        read_nih_metadata(path)
    msg = str(err.value)
    assert str(path) in msg and "00000001_000.png" in msg and "'Infiltration'" in msg


def test_missing_column_names_it_and_the_file(tmp_path):
    """Does a table without 'Patient ID' raise naming the column and the file?"""
    path = _write_nih(tmp_path, ["00000001_000.png,Mass,0,58,M,PA,2500,2048,0.1,0.1"],
                      header="Image Index,Finding Labels,Follow-up #,Patient Age,Patient Gender,"
                             "View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['Patient ID'\]") as err:
        read_nih_metadata(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("labels,pid,match", [
    ("No Finding|Mass", "1", "'No Finding' combined with a finding"),
    ("", "1", "empty 'Finding Labels'"),
    ("Mass", "x1", "'Patient ID' is not an integer"),
])
def test_bad_rows_raise_clear_errors(tmp_path, labels, pid, match):
    """Do contradictory labels, empty labels and non-integer patient ids raise clear errors?"""
    path = _write_nih(tmp_path, [f"00000001_000.png,{labels},0,{pid},58,M,PA,2500,2048,0.1,0.1"])
    with pytest.raises(ValueError, match=match) as err:
        read_nih_metadata(path)
    assert str(path) in str(err.value) and "00000001_000.png" in str(err.value)


def test_duplicate_image_and_missing_file(tmp_path):
    """Does a repeated image or a missing table raise an error naming it?"""
    row = "00000001_000.png,Mass,0,1,58,M,PA,2500,2048,0.1,0.1"
    with pytest.raises(ValueError, match="repeats image"):
        read_nih_metadata(_write_nih(tmp_path, [row, row]))
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_nih_metadata(tmp_path / "nope.csv")


# --------------------------------------------------------------------------
# nih_splits
# --------------------------------------------------------------------------
def _assert_patient_disjoint(parts, df):
    patients = [set(p["PatientId"]) for p in parts]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not patients[i] & patients[j], (i, j, patients[i] & patients[j])
    assert sum(len(p) for p in parts) == len(df)
    assert sorted(pd.concat(parts)["Image"]) == sorted(df["Image"])


def test_official_lists_give_listed_test_set_and_disjoint_patients():
    """With the official lists, is test exactly test_list.txt and no patient in two splits?"""
    df = read_nih_metadata(fixture("Data_Entry_2017.csv"))
    train, valid, test = nih_splits(df, data_dir=FILES, valid_fraction=0.3, seed=0)
    assert list(test["Image"]) == fixture("test_list.txt").read_text().split()
    _assert_patient_disjoint((train, valid, test), df)
    # 7 train_val patients, round(0.3 * 7) = 2 of them to validation
    assert len(set(valid["PatientId"])) == 2 and len(set(train["PatientId"])) == 5
    assert set(valid["PatientId"]) <= {11, 12, 13, 14, 15, 16, 17}
    assert all(p.attrs["split_source"] == "official" for p in (train, valid, test))
    assert tuple(train.columns) == CSV_COLUMNS


def test_seeded_split_without_lists_is_disjoint_and_reproducible(tmp_path):
    """Without lists, is the split patient-disjoint, the same for a seed, different across seeds?"""
    df = read_nih_metadata(fixture("Data_Entry_2017.csv"))
    a = nih_splits(df, data_dir=tmp_path, valid_fraction=0.2, test_fraction=0.2, seed=1)
    b = nih_splits(df, data_dir=None, valid_fraction=0.2, test_fraction=0.2, seed=1)
    _assert_patient_disjoint(a, df)
    for x, y in zip(a, b):
        pd.testing.assert_frame_equal(x, y)
    assert a[0].attrs["split_source"] == "seeded"
    # 10 patients: 2 test, 2 valid, 6 train
    assert [len(set(p["PatientId"])) for p in a] == [6, 2, 2]
    others = [set(nih_splits(df, valid_fraction=0.2, test_fraction=0.2, seed=s)[2]["PatientId"])
              for s in range(2, 8)]
    assert any(o != set(a[2]["PatientId"]) for o in others)


def test_split_errors(tmp_path):
    """Do a lone list, an unlisted image, patient-mixing lists and bad fractions raise?"""
    df = read_nih_metadata(fixture("Data_Entry_2017.csv"))
    (tmp_path / "test_list.txt").write_text("00000018_000.png\n")
    with pytest.raises(ValueError, match="but not .*train_val_list.txt"):
        nih_splits(df, data_dir=tmp_path)
    tv = fixture("train_val_list.txt").read_text()
    (tmp_path / "train_val_list.txt").write_text(tv)
    with pytest.raises(ValueError, match="in neither") as err:
        nih_splits(df, data_dir=tmp_path)
    assert "00000019_000.png" in str(err.value)
    # patient 20's two images on both sides
    (tmp_path / "train_val_list.txt").write_text(tv + "00000020_000.png\n")
    (tmp_path / "test_list.txt").write_text("00000018_000.png\n00000019_000.png\n00000020_001.png\n")
    with pytest.raises(ValueError, match=r"patient\(s\) 20 have images in both"):
        nih_splits(df, data_dir=tmp_path)
    with pytest.raises(ValueError, match="valid_fraction"):
        nih_splits(df, valid_fraction=1.5)
    with pytest.raises(ValueError, match="must be < 1"):
        nih_splits(df, valid_fraction=0.5, test_fraction=0.5)


# --------------------------------------------------------------------------
# course CSVs and image files
# --------------------------------------------------------------------------
def _course_csv(tmp_path, n=4):
    df = pd.DataFrame({"Image": [f"{i + 1:08d}_000.png" for i in range(n)]})
    for j, label in enumerate(CSV_LABELS):
        df[label] = [(i + j) % 2 for i in range(n)]
    df["PatientId"] = np.arange(1, n + 1)
    df = df[list(CSV_COLUMNS)]
    path = tmp_path / "train-small.csv"
    return df, path


def test_read_course_csv_roundtrip_and_reorders_columns(tmp_path):
    """Does a valid course CSV (columns shuffled, one extra) come back in the course layout?"""
    df, path = _course_csv(tmp_path)
    df["Extra"] = ["a", "b", "c", "d"]
    df[list(reversed(df.columns))].to_csv(path, index=False)
    got = read_course_csv(path)
    assert tuple(got.columns) == CSV_COLUMNS + ("Extra",)
    assert np.array_equal(got[list(CSV_LABELS)].to_numpy(), df[list(CSV_LABELS)].to_numpy())
    assert list(got["Image"]) == list(df["Image"]) and got["PatientId"].dtype == np.int64


@pytest.mark.parametrize("change,match", [
    (lambda d: d.drop(columns=["PatientId", "Hernia"]), r"missing column\(s\) \['Hernia', 'PatientId'\]"),
    (lambda d: d.assign(Mass=[0, 2, 0, 1]), r"column 'Mass' must hold only 0 or 1; rows .*\[?1"),
    (lambda d: d.assign(Edema=[0, None, 0, 1]), "column 'Edema' must hold only 0 or 1"),
    (lambda d: d.assign(Image=["a.png", "b.png", "a.png", "c.png"]), "'a.png'.* more than once"),
    (lambda d: d.assign(PatientId=[1, 2, 3.5, 4]), "'PatientId' is not an integer"),
])
def test_read_course_csv_errors_name_file_and_problem(tmp_path, change, match):
    """Do missing columns, non-0/1 labels, duplicates and bad ids raise naming the file?"""
    df, path = _course_csv(tmp_path)
    change(df).to_csv(path, index=False)
    with pytest.raises(ValueError, match=match) as err:
        read_course_csv(path)
    assert str(path) in str(err.value)


def test_check_images_exist_lists_missing(tmp_path):
    """Does check_images_exist list the first missing names and how many are missing?"""
    names = [f"{i:08d}_000.png" for i in range(8)]
    for n in names[:2]:
        (tmp_path / n).write_bytes(b"x")
    df = pd.DataFrame({"Image": names})
    with pytest.raises(FileNotFoundError, match=r"6 of 8 image\(s\) missing") as err:
        check_images_exist(df, tmp_path)
    assert "00000002_000.png" in str(err.value) and "00000007_000.png" not in str(err.value)
    check_images_exist(df.iloc[:2], tmp_path)       # all present: no error
    with pytest.raises(FileNotFoundError, match="image directory not found"):
        check_images_exist(df, tmp_path / "nope")


# --------------------------------------------------------------------------
# the real NIH sample (skips cleanly without it)
# --------------------------------------------------------------------------
def _sample(name):
    path = NIH_SAMPLE_DIR / name
    if not path.exists():
        pytest.skip(f"real NIH sample not available ({path}); set NIH_SAMPLE_DIR")
    return path


@pytest.fixture(scope="module")
def real_table():
    return read_nih_metadata(_sample("Data_Entry_2017_v2020.csv.gz"), keep_metadata=True)


@pytest.mark.nih
def test_real_table_matches_nih_figures(real_table):
    """Does the real v2020 table give 112,120 images, 30,805 patients and NIH_FIGURES' counts?"""
    df = real_table
    assert len(df) == 112_120 and df["PatientId"].nunique() == 30_805
    assert {lab: int(df[lab].sum()) for lab in CSV_LABELS} == NIH_COUNTS
    assert int((df[list(CSV_LABELS)].sum(axis=1) == 0).sum()) == 60_361   # No Finding, 0.5384
    assert tuple(df.columns[:16]) == CSV_COLUMNS
    first = df.set_index("Image").loc["00000001_000.png"]
    assert [c for c in CSV_LABELS if first[c]] == ["Cardiomegaly"] and first["PatientId"] == 1
    assert first["View"] == "PA" and first["Age"] == 57
    normal = df.set_index("Image").loc["00027426_000.png"]
    assert normal[list(CSV_LABELS)].sum() == 0 and normal["PatientId"] == 27426
    assert (df["View"].value_counts(normalize=True).round(4).to_dict()
            == {"PA": 0.6003, "AP": 0.3997})


@pytest.mark.nih
def test_real_table_seeded_split_is_patient_disjoint(real_table):
    """Is the seeded split of the real table patient-disjoint with the requested patient fractions?"""
    parts = nih_splits(real_table, valid_fraction=0.1, test_fraction=0.2, seed=0)
    _assert_patient_disjoint(parts, real_table)
    assert [p["PatientId"].nunique() for p in parts] == [
        30_805 - 6161 - 3080, 3080, 6161]      # round(0.1 * 30805) = 3080 (banker's), 0.2 -> 6161


@pytest.mark.nih
def test_gz_reading_equals_plain_csv(tmp_path):
    """Does the gzipped real table read the same as its uncompressed copy (first 2000 rows)?"""
    src = _sample("Data_Entry_2017_v2020.csv.gz")
    with gzip.open(src, "rt") as fh:
        head = [next(fh) for _ in range(2001)]
    (tmp_path / "part.csv").write_text("".join(head))
    with gzip.open(tmp_path / "part.csv.gz", "wt") as fh:
        fh.write("".join(head))
    pd.testing.assert_frame_equal(read_nih_metadata(tmp_path / "part.csv"),
                                  read_nih_metadata(tmp_path / "part.csv.gz"))
