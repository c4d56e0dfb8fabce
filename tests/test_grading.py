"""``course grade``: a class autograded in parallel worker processes, or on a Dask cluster.

One throw-away course (the light assignment lab_counting_labels) is graded once per
module with 2 local workers: a reference, a blank release, a notebook that is not
JSON and one that kills its grading process.  Checked: grades.csv (scores, statuses,
reasons), the instructor's gradebook after the merge, feedback HTML, untouched
submissions (checksums), a timeout that kills the whole process tree, and the same
scores from a ``distributed.LocalCluster`` grading an LMS download (zip_collect).
"""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import psutil
import pytest

from course_utils import grading, nbgrading
from course_utils.paths import REPO_DIR

pytestmark = pytest.mark.slow

ASSIGNMENT = "lab_counting_labels"
#: Solution cell whose code, in the "crasher" submission, kills the process grading it.
CRASH_CODE = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n"


def checksums(root: Path) -> dict[str, str]:
    """sha256 of every file below ``root`` (relative path -> digest)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def read_csv(path: Path) -> dict[str, dict]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and tuple(rows[0]) == grading.CSV_FIELDS, f"{path}: columns {tuple(rows[0])}"
    return {r["student"]: r for r in rows}


def max_points(course: Path) -> float:
    from nbgrader.api import Gradebook

    with Gradebook(nbgrading.gradebook_url(course)) as gb:
        return float(gb.find_assignment(ASSIGNMENT).max_score)


@pytest.fixture(scope="module")
def graded(tmp_path_factory, course_data):
    """The course, the submissions, their checksums before grading, the run's results."""
    root = tmp_path_factory.mktemp("grade")
    course = nbgrading.new_course(root / "course", REPO_DIR, [ASSIGNMENT])
    nbgrading.build(course, [ASSIGNMENT])
    subs = root / "submitted"
    nbgrading.write_submission(subs / "reference" / ASSIGNMENT, course, ASSIGNMENT)
    nbgrading.write_submission(subs / "blank" / ASSIGNMENT, course, ASSIGNMENT, solutions=False)
    (subs / "broken" / ASSIGNMENT).mkdir(parents=True)
    (subs / "broken" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").write_text("{not json")
    first = next(iter(nbgrading.solution_codes(course, ASSIGNMENT)))
    nbgrading.write_submission(subs / "crasher" / ASSIGNMENT, course, ASSIGNMENT,
                               overrides={first: CRASH_CODE})
    before = checksums(subs)
    run = grading.ClassGrading(ASSIGNMENT, subs, course_dir=course, out=root / "out",
                               workers=2, keep_work=True)
    lines = []
    run.run(log=lines.append)
    return dict(course=course, subs=subs, before=before, run=run, out=root / "out",
                lines=lines, root=root)


def test_grades_csv_has_every_submission_with_score_or_reason(graded):
    """Reference full marks, blank 0, and the two failures recorded with their reason."""
    rows = read_csv(graded["out"] / "grades.csv")
    full = max_points(graded["course"])
    assert full > 0
    assert set(rows) == {"reference", "blank", "broken", "crasher"}
    assert (rows["reference"]["status"], float(rows["reference"]["score"]),
            float(rows["reference"]["max_score"])) == ("ok", full, full)
    assert (rows["blank"]["status"], float(rows["blank"]["score"])) == ("ok", 0.0)
    assert rows["broken"]["status"] == "error"
    assert "NotJSONError" in rows["broken"]["reason"], rows["broken"]["reason"]
    assert rows["crasher"]["status"] == "error"
    assert rows["crasher"]["reason"] == "grading process killed by signal 9"
    for student, row in rows.items():
        assert float(row["seconds"]) > 0, f"{student}: no wall time recorded"
    assert float(rows["reference"]["peak_rss_mb"]) > 50, "kernel memory not measured"
    # progress: one line per submission, then the summary
    assert sum(line.startswith("[") for line in graded["lines"]) == 4
    assert "2 ok, 0 timeout, 2 error" in graded["lines"][-1]


def test_submissions_are_never_modified(graded):
    assert checksums(graded["subs"]) == graded["before"]


def test_merged_gradebook_holds_nbgraders_own_scores(graded):
    """The instructor's gradebook gets, cell by cell, what the worker's autograde stored."""
    from nbgrader.api import MissingEntry

    course, work = graded["course"], graded["out"] / "work" / "students"
    for student in ("reference", "blank"):
        merged = nbgrading.cell_scores(course, ASSIGNMENT, student)
        worker = nbgrading.cell_scores(work / student, ASSIGNMENT, student)
        assert merged == worker and len(merged) >= 3
    assert all(c.score == c.max_score for c in nbgrading.cell_scores(course, ASSIGNMENT, "reference"))
    assert all(c.score == 0 for c in nbgrading.cell_scores(course, ASSIGNMENT, "blank"))
    with pytest.raises(MissingEntry):
        nbgrading.cell_scores(course, ASSIGNMENT, "broken")
    assert (course / "autograded" / "reference" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb").is_file()
    cells = {r["student"]: r["cells"] for r in json.loads((graded["out"] / "grades.json").read_text())}
    assert set(cells["reference"].values()) != {0.0} and set(cells["blank"].values()) == {0.0}


def test_feedback_html_per_student(graded):
    full = max_points(graded["course"])
    for student, score in (("reference", full), ("blank", 0.0)):
        for where in (graded["out"], graded["course"]):
            html = where / "feedback" / student / ASSIGNMENT / f"{ASSIGNMENT}.html"
            assert html.is_file(), f"no feedback {html}"
            assert f"Score: {score:.1f} / {full:.1f}" in html.read_text()
    assert not (graded["out"] / "feedback" / "broken").exists()


def test_timeout_kills_the_whole_process_tree(graded):
    """A submission past --timeout is recorded as timeout; no kernel is left running."""
    work = graded["root"] / "timeout-work"
    spec = dict(assignment=ASSIGNMENT, student="slow", timeout=3.0,
                submission=str(graded["subs"] / "reference" / ASSIGNMENT),
                template=str(graded["out"] / "work" / "_template"), work=str(work))
    result = grading.grade_submission(spec)
    assert result["status"] == "timeout", result
    assert "3 s timeout" in result["reason"] and 3.0 <= result["seconds"] < 30
    survivors = [p for p in psutil.process_iter(["cwd"]) if str(work) in (p.info["cwd"] or "")]
    assert not survivors, f"processes left running in {work}: {survivors}"


def test_dask_cluster_grades_an_lms_download_with_identical_scores(graded, tmp_path):
    """zip_collect + Dask LocalCluster (2 worker processes): same scores as local workers."""
    from distributed import LocalCluster

    download = tmp_path / "lms"
    download.mkdir()
    with zipfile.ZipFile(download / "class.zip", "w") as zf:
        for student in ("reference", "blank"):
            zf.write(graded["subs"] / student / ASSIGNMENT / f"{ASSIGNMENT}.ipynb",
                     f"{student}_{ASSIGNMENT}.ipynb")
    before = checksums(download)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        run = grading.ClassGrading(ASSIGNMENT, download, course_dir=graded["course"],
                                   out=tmp_path / "out", scheduler=cluster.scheduler_address,
                                   feedback=False, merge=False)
        results = run.run(log=lambda line: None)
    assert checksums(download) == before
    local = read_csv(graded["out"] / "grades.csv")
    dask = read_csv(tmp_path / "out" / "grades.csv")
    assert set(dask) == {"reference", "blank"}
    for student in dask:
        assert dask[student]["status"] == "ok", f"{student}: {dask[student]['reason']}"
        assert (dask[student]["score"], dask[student]["max_score"]) == \
            (local[student]["score"], local[student]["max_score"])
    local_cells = {r["student"]: r["cells"] for r in json.loads((graded["out"] / "grades.json").read_text())}
    assert {r["student"]: r["record"]["notebooks"] for r in results} and all(
        {f"{nb}/{g}": v["auto_score"] for nb, n in r["record"]["notebooks"].items()
         for g, v in n["grades"].items()} == local_cells[r["student"]] for r in results)


@pytest.fixture
def port_taken():
    """A TCP port on 127.0.0.1 held by this test (released by calling ``release``)."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    yield dict(port=port, release=sock.close)
    sock.close()


def kernel_on_port(course: Path, port: int):
    """An NbGraderAPI whose kernels must bind their shell socket to ``port`` (what two
    kernels started at the same moment can end up doing: jupyter_client's port race)."""
    from nbgrader.apps import NbGraderAPI

    config = nbgrading.load_config(course)
    config.KernelManager.cache_ports = False
    config.KernelManager.shell_port = port
    nbgrading.ensure_venv_on_path()
    return NbGraderAPI(config=config)


@pytest.mark.parametrize("freed_after", [1, None])
def test_a_kernel_that_dies_while_starting_is_retried(graded, tmp_path, port_taken, freed_after):
    """The kernel cannot bind its port ("Address already in use"): autograde_one tries the
    submission again; once the port is free it grades it in full, and if it never is, it
    stops after KERNEL_START_ATTEMPTS with nbgrader's message.  Any other failure is not
    retried (the broken submission of the ``graded`` run failed once: one attempt)."""
    course = tmp_path / "course"
    shutil.copytree(graded["course"], course)
    shutil.copytree(graded["subs"] / "reference", course / "submitted" / "reference")
    api = kernel_on_port(course, port_taken["port"])
    retries = []

    def log(line):
        retries.append(line)
        if len(retries) == freed_after:
            port_taken["release"]()

    if freed_after:
        nbgrading.autograde_one(api, ASSIGNMENT, "reference", log=log)
        scores = nbgrading.cell_scores(course, ASSIGNMENT, "reference")
        assert scores and all(c.score == c.max_score for c in scores)
        assert len(retries) == freed_after
    else:
        with pytest.raises(nbgrading.GradingError) as err:
            nbgrading.autograde_one(api, ASSIGNMENT, "reference", log=log)
        message = str(err.value)
        assert f"(attempt {nbgrading.KERNEL_START_ATTEMPTS})" in message
        assert nbgrading.KERNEL_START_FAILURE in message
        assert len(retries) == nbgrading.KERNEL_START_ATTEMPTS - 1
    assert all("the kernel died while starting" in line for line in retries)
    broken_log = (graded["out"] / "logs" / "broken.log").read_text()
    assert "the kernel died while starting" not in broken_log


def test_cli_reports_a_folder_without_submissions(tmp_path, capsys):
    from course_utils.__main__ import main

    (tmp_path / "empty").mkdir()
    rc = main(["grade", ASSIGNMENT, "--submissions", str(tmp_path / "empty"),
               "--out", str(tmp_path / "out"), "--no-merge"])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"no submission of {ASSIGNMENT}" in err and "submitted/ layout" in err
    assert main(["grade", ASSIGNMENT, "--submissions", str(tmp_path), "--workers", "0"]) == 2
    assert "--workers must be at least 1, got 0" in capsys.readouterr().err


def test_unreachable_scheduler_says_how_to_start_one(tmp_path):
    run = grading.ClassGrading(ASSIGNMENT, tmp_path, out=tmp_path / "out",
                               scheduler="tcp://127.0.0.1:9", connect_timeout="2s")
    with pytest.raises(nbgrading.GradingError, match="cannot reach the Dask scheduler "
                                                     r"tcp://127.0.0.1:9 .*dask scheduler"):
        list(run._execute([]))


def test_assignment_unknown_to_the_gradebook_says_to_generate_it(course_dir, tmp_path):
    import shutil

    shutil.copytree(REPO_DIR / "source" / ASSIGNMENT, course_dir / "source" / ASSIGNMENT)
    with pytest.raises(nbgrading.GradingError,
                       match=f"does not know {ASSIGNMENT}: run `nbgrader generate_assignment"):
        grading.prepare_template(course_dir, ASSIGNMENT, tmp_path / "template")


def test_a_failed_merge_is_an_error_row_and_the_run_goes_on(tmp_path, monkeypatch):
    import sqlite3

    def locked(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(grading, "merge_into_gradebook", locked)
    run = grading.ClassGrading(ASSIGNMENT, tmp_path, out=tmp_path / "out", feedback=False)
    (tmp_path / "out").mkdir()
    run._finish(dict(student="x", status="ok", score=5.0, max_score=10.0, reason="",
                     seconds=1.0, peak_rss_mb=1.0, work=str(tmp_path / "work")))
    rows = read_csv(tmp_path / "out" / "grades.csv")
    assert rows["x"]["status"] == "error"
    assert rows["x"]["reason"].startswith("graded (5/10) but not stored in ")
    assert "OperationalError: database is locked" in rows["x"]["reason"]
