"""Grade a whole class in parallel: ``course grade ASSIGNMENT --submissions DIR --workers N``.

nbgrader autogrades one submission at a time (its issue #174) and its gradebook is
SQLite, which tolerates one writer.  This command therefore grades every submission
in **its own throw-away nbgrader course** (own ``gradebook.db``, own ``autograded/``
and ``feedback/``), N at a time, and the parent process -- the only writer -- merges
each result into the instructor's gradebook through nbgrader's ``Gradebook`` API,
exactly as ``nbgrader autograde`` would store it (auto scores, "needs manual grade",
auto comments, late penalty; manual scores already given are kept).

Per submission, in a grading worker process (``python -m course_utils.grading --serve``,
long-lived: nbgrader is imported once per worker, not once per submission): copy the
submission into its work course (the original is only read, never written),
``autograde``, ``generate_feedback``, and write the gradebook's scores as JSON.  The
parent watches the worker's process tree (kernel included): a submission that runs
past ``--timeout`` is killed and recorded as ``timeout``; one whose autograde fails or
that kills its worker is recorded as ``error`` with the reason; a fresh worker takes
the next submission and the others go on.

Where the work runs:

* default: N local threads, each driving its own grading worker process;
* ``--scheduler ADDRESS``: one Dask task per submission on an existing
  ``dask.distributed`` cluster (each Dask worker thread drives its own grading worker).  The workers need this Python environment
  (``course_utils``, nbgrader, TensorFlow) and the same filesystem paths as this
  machine: the submissions, the course and ``--out`` (shared storage, e.g. NFS).

Outputs (``--out DIR``, default ``<course>/graded/<assignment>``): ``grades.csv``
(student, status, score, max_score, reason, seconds, peak_rss_mb), ``grades.json``
(the same plus every grade cell's score), ``feedback/<student>/<assignment>/*.html``
and ``logs/<student>.log``.  In the course: the gradebook, ``autograded/`` and
``feedback/`` as nbgrader leaves them (``nbgrader release_feedback`` works as usual).

Submissions: nbgrader's ``<DIR>/<student>/<assignment>/*.ipynb`` layout (``submitted/``),
or an LMS download (notebooks and/or zip archives in DIR, in any sub-folder), which is
first collected with ``nbgrader zip_collect`` using ``--lms-regexp`` (default:
files named ``<student>_<notebook>.ipynb``).
"""
from __future__ import annotations

import argparse
import atexit
import concurrent.futures as futures
import csv
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .nbgrading import (GradingError, _checked, autograde_one, ensure_venv_on_path,
                        gradebook_url, make_api, new_course, quiet_gradebook)
from .paths import REPO_DIR

#: Columns of grades.csv, in order.
CSV_FIELDS = ("student", "status", "score", "max_score", "reason", "seconds", "peak_rss_mb")

#: Status of a graded submission.
OK, TIMEOUT, ERROR = "ok", "timeout", "error"

#: Default ``nbgrader zip_collect`` file-name pattern: ``<student>_<notebook>.ipynb``
#: anywhere below the download folder (student ids without "_" or "/").
DEFAULT_LMS_REGEXP = r".*/(?P<student_id>[^/_]+)_(?P<file_id>[^/]+)\.ipynb$"

#: How often the parent samples the child's process tree (seconds).
POLL_S = 0.2


# ----------------------------------------------------------------------------- process trees
@dataclass
class TreeRun:
    """Outcome of :func:`run_process_tree`."""
    returncode: int | None          # None: killed after the timeout
    seconds: float
    peak_rss_bytes: int
    timed_out: bool = False


def _kill_tree(proc, seen=()) -> None:
    """Kill ``proc``, its descendants and any process of ``seen`` still alive (a kernel
    whose parent died is re-parented and no longer a descendant)."""
    import psutil

    victims = list(seen)
    try:
        parent = psutil.Process(proc.pid)
        victims += parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        pass
    for p in victims:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(victims, timeout=10)


def _watch(proc, *, timeout: float | None = None, done=lambda: False) -> TreeRun:
    """Sample ``proc``'s process tree until ``done()``, its exit or ``timeout`` seconds.

    The peak resident memory is the largest sum of RSS over the process and all its
    descendants (Jupyter kernels start in their own session but remain children),
    sampled every ``POLL_S`` seconds.  Past ``timeout`` the whole tree is killed.  At
    the end, descendants seen during the watch and still alive (a kernel left behind,
    or orphaned by a crash) are killed; ``proc`` itself survives ``done()``.
    """
    import psutil

    start = time.perf_counter()
    peak = 0
    seen: dict[int, psutil.Process] = {}     # every descendant ever sampled

    def kill_seen():
        for p in seen.values():
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(list(seen.values()), timeout=10)

    try:
        while True:
            try:
                root = psutil.Process(proc.pid)
                tree = [root] + root.children(recursive=True)
                seen.update((p.pid, p) for p in tree[1:])
                rss = 0
                for p in tree:
                    try:
                        rss += p.memory_info().rss
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        pass
                peak = max(peak, rss)
            except psutil.NoSuchProcess:
                pass
            if done():
                kill_seen()
                return TreeRun(0, time.perf_counter() - start, peak)
            try:
                rc = proc.wait(timeout=POLL_S)
                kill_seen()
                return TreeRun(rc, time.perf_counter() - start, peak)
            except subprocess.TimeoutExpired:
                pass
            if timeout is not None and time.perf_counter() - start > timeout:
                _kill_tree(proc, seen.values())
                proc.wait()
                return TreeRun(None, time.perf_counter() - start, peak, timed_out=True)
    except BaseException:          # KeyboardInterrupt, a cancelled Dask task: leave no orphans
        _kill_tree(proc, seen.values())
        raise


def run_process_tree(cmd: list[str], *, cwd: str | os.PathLike, log_path: str | os.PathLike,
                     timeout: float | None = None, env: dict | None = None) -> TreeRun:
    """Run ``cmd`` with stdout+stderr to ``log_path``, watched by :func:`_watch`."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, env=env)
        return _watch(proc, timeout=timeout)


class GradingWorker:
    """A long-lived child process (``python -m course_utils.grading --serve``) that grades
    one submission at a time, so nbgrader is imported once per worker, not per submission.

    It reads the path of a task spec per line on stdin; for each it sends its stdout and
    stderr (and the kernel's) to the task's ``grading.log``, runs :func:`_task_main` and
    writes ``done.json``.  The parent watches its process tree while a task runs; after
    a crash or a timeout the process is gone and the next task starts a fresh one.
    """

    def __init__(self):
        self.proc = None

    def grade(self, spec_path: Path, work: Path, log_path: Path,
              timeout: float | None) -> TreeRun:
        done_path = work / "done.json"
        with open(log_path, "ab") as log:
            if self.proc is None or self.proc.poll() is not None:
                ensure_venv_on_path()
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "course_utils.grading", "--serve"], cwd=work,
                    stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
            try:
                self.proc.stdin.write(f"{spec_path}\n".encode())
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass                       # it died before reading: _watch sees the exit
            run = _watch(self.proc, timeout=timeout, done=done_path.exists)
        if done_path.exists():
            run.returncode = json.loads(done_path.read_text())["rc"]
        else:
            self.proc = None               # crashed or killed: a fresh one next time
        return run

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()        # EOF: the server loop ends
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _kill_tree(self.proc)
        self.proc = None


_THREAD = threading.local()
_WORKERS: list[GradingWorker] = []
_WORKERS_LOCK = threading.Lock()


def thread_worker() -> GradingWorker:
    """This thread's :class:`GradingWorker` (a local pool thread, or a Dask worker thread)."""
    worker = getattr(_THREAD, "worker", None)
    if worker is None:
        worker = _THREAD.worker = GradingWorker()
        with _WORKERS_LOCK:
            _WORKERS.append(worker)
    return worker


def close_workers() -> None:
    """End every grading worker process started by this process."""
    with _WORKERS_LOCK:
        workers, _WORKERS[:] = list(_WORKERS), []
    for worker in workers:
        worker.close()
    _THREAD.__dict__.pop("worker", None)


atexit.register(close_workers)


# ----------------------------------------------------------------------------- discovery
def find_submissions(submissions_dir: str | os.PathLike, assignment: str) -> dict[str, Path]:
    """``{student: <dir>/<student>/<assignment>}`` for every folder holding a notebook."""
    root = Path(submissions_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"submissions folder {root} does not exist")
    found = {}
    for student_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        folder = student_dir / assignment
        if folder.is_dir() and any(folder.glob("*.ipynb")):
            found[student_dir.name] = folder
    return found


def is_lms_download(submissions_dir: str | os.PathLike, assignment: str) -> bool:
    """True when DIR is not nbgrader's ``<student>/<assignment>/*.ipynb`` layout (for any
    assignment) but holds notebooks or zip archives."""
    root = Path(submissions_dir)
    if any(root.glob("*/*/*.ipynb")):
        return False
    return any(p.suffix in (".ipynb", ".zip", ".gz") for p in root.rglob("*") if p.is_file())


def zip_collect(download_dir: str | os.PathLike, assignment: str, course_dir: str | os.PathLike,
                staging: str | os.PathLike, regexp: str = DEFAULT_LMS_REGEXP) -> Path:
    """Collect an LMS download with ``nbgrader zip_collect``; return the ``submitted/`` folder.

    ``download_dir`` (notebooks and/or zip archives) is copied to
    ``<staging>/downloaded/<assignment>/archive/`` of a throw-away course, where
    ``nbgrader zip_collect`` extracts it and files each notebook under
    ``<staging>/submitted/<student>/<assignment>/`` using ``regexp`` (nbgrader's
    ``FileNameCollectorPlugin.named_regexp``: groups ``student_id`` and ``file_id``,
    optionally ``timestamp``).
    """
    course_dir, staging = Path(course_dir).resolve(), Path(staging).resolve()
    if staging.exists():
        shutil.rmtree(staging)
    new_course(staging, course_dir, [assignment])
    release = course_dir / "release" / assignment
    if release.is_dir():                          # zip_collect checks notebook names against it
        shutil.copytree(release, staging / "release" / assignment)
    shutil.copytree(download_dir, staging / "downloaded" / assignment / "archive")
    ensure_venv_on_path()
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", "zip_collect", assignment, "--force",
         f"--FileNameCollectorPlugin.named_regexp={regexp}"],
        cwd=staging, capture_output=True, text=True)
    submitted = staging / "submitted"
    if proc.returncode != 0 or not find_submissions(submitted, assignment):
        raise GradingError(
            f"nbgrader zip_collect found no submission of {assignment} in {download_dir} "
            f"(exit {proc.returncode}). File names must match --lms-regexp {regexp!r} "
            f"(groups student_id and file_id).\n{proc.stderr[-3000:]}")
    return submitted


# ----------------------------------------------------------------------------- one submission
def _grade_cells(gb, assignment: str) -> dict[str, dict[str, float]]:
    """``{notebook: {grade cell: max score}}`` of an assignment in a gradebook."""
    return {nb.name: {cell.name: float(cell.max_score) for cell in nb.grade_cells}
            for nb in gb.find_assignment(assignment).notebooks}


def prepare_template(course_dir: str | os.PathLike, assignment: str,
                     template: str | os.PathLike) -> Path:
    """A course holding only ``assignment``, generated, with a gradebook of its own.

    Each submission's work course is a copy of it.  Its grade cells must be the
    instructor gradebook's (same names and points): otherwise ``source/`` changed
    after ``generate_assignment`` and merged grades would not match.
    """
    from nbgrader.api import Gradebook, MissingEntry

    course_dir, template = Path(course_dir).resolve(), Path(template).resolve()
    if not (course_dir / "source" / assignment).is_dir():
        raise GradingError(f"{course_dir}/source/{assignment} does not exist: "
                           f"not an assignment of this course")
    instructor_db = gradebook_url(course_dir)
    with quiet_gradebook(), Gradebook(instructor_db) as gb:
        try:
            expected = _grade_cells(gb, assignment)
            duedate = gb.find_assignment(assignment).duedate
        except MissingEntry:
            raise GradingError(
                f"the gradebook of {course_dir} does not know {assignment}: run "
                f"`nbgrader generate_assignment {assignment}` (or `course build {assignment}`) "
                f"in {course_dir} first") from None
    if template.exists():
        shutil.rmtree(template)
    new_course(template, course_dir, [assignment])
    api = make_api(template)
    with quiet_gradebook():
        _checked(api.generate_assignment(assignment, force=True, create=True),
                 f"generate_assignment {assignment} (grading template)")
    shutil.rmtree(template / "release", ignore_errors=True)
    template_db = gradebook_url(template)
    with quiet_gradebook(), Gradebook(template_db) as gb:
        got = _grade_cells(gb, assignment)
        gb.update_or_create_assignment(assignment, duedate=duedate)
    if got != expected:
        raise GradingError(
            f"{assignment}: the grade cells of source/ differ from the gradebook's "
            f"({got} vs {expected}): run `nbgrader generate_assignment {assignment} --force` "
            f"so that the gradebook matches the notebooks you grade")
    return template


def _submission_record(course_dir: Path, assignment: str, student: str) -> dict:
    """What autograde stored for one submission, as plain JSON."""
    from nbgrader.api import Gradebook

    db = gradebook_url(course_dir)
    with quiet_gradebook(), Gradebook(db) as gb:
        sub = gb.find_submission(assignment, student)
        notebooks = {}
        for nb in sub.notebooks:
            notebooks[nb.name] = dict(
                late_submission_penalty=nb.late_submission_penalty,
                grades={g.name: dict(auto_score=g.auto_score, manual_score=g.manual_score,
                                     max_score=float(g.max_score)) for g in nb.grades},
                comments={c.name: c.auto_comment for c in nb.comments})
        return dict(timestamp=sub.timestamp.isoformat() if sub.timestamp else None,
                    score=float(sub.score), max_score=float(sub.max_score),
                    notebooks=notebooks)


def _task_main(spec_path: str) -> int:
    """In the worker process: autograde + feedback in the work course, write result.json."""
    spec = json.loads(Path(spec_path).read_text())
    work, assignment, student = Path(spec["work"]), spec["assignment"], spec["student"]
    api = make_api(work)
    autograde_one(api, assignment, student)
    with quiet_gradebook():
        if spec.get("feedback", True):
            _checked(api.generate_feedback(assignment, student, force=True),
                     f"generate_feedback {assignment} for {student}")
    record = _submission_record(work, assignment, student)
    (work / "result.json").write_text(json.dumps(record))
    return 0


def _serve() -> int:
    """The :class:`GradingWorker` loop: one task spec path per stdin line, until EOF."""
    import traceback

    import nbgrader.apps  # noqa: F401  (imported once, before the first task)

    while True:
        line = sys.stdin.readline()
        if not line:
            return 0
        spec_path = line.strip()
        work = Path(json.loads(Path(spec_path).read_text())["work"])
        sys.stdout.flush()
        sys.stderr.flush()
        with open(work / "grading.log", "ab", buffering=0) as log:
            os.dup2(log.fileno(), 1)       # nbgrader's log and the kernel's output
            os.dup2(log.fileno(), 2)
        os.chdir(work)
        try:
            rc = _task_main(spec_path)
        except Exception:                  # noqa: BLE001 -- the parent reads the log's reason
            traceback.print_exc()
            rc = 1
        sys.stdout.flush()
        sys.stderr.flush()
        (work / "done.json").write_text(json.dumps({"rc": rc}))


def _failure_reason(log_text: str, returncode: int) -> str:
    """The most telling line of a failed child's log: the last exception raised by
    nbgrader or the notebook (not our GradingError wrapper), else the last line."""
    if returncode < 0:
        return f"grading process killed by signal {-returncode}"
    lines = [ln.strip() for ln in log_text.splitlines() if ln.strip()]
    exceptions = [ln for ln in lines
                  if re.match(r"^[\w.]*(Error|Exception|Exit)\b[\w.]*:", ln)
                  and "GradingError" not in ln.split(":", 1)[0]]
    if exceptions:
        return exceptions[-1][:300]
    errors = [ln for ln in lines if "ERROR" in ln or "GradingError" in ln]
    if errors:
        return errors[0][:300]
    return lines[-1][:300] if lines else f"grading process exited with status {returncode}"


def grade_submission(spec: dict) -> dict:
    """Grade one submission in its own work course, in this thread's grading worker
    process (:class:`GradingWorker`); never raises
    for a problem of the submission: the result's ``status`` says ok/timeout/error."""
    work, student = Path(spec["work"]), spec["student"]
    result = dict(student=student, status=ERROR, reason="", score=None, max_score=None,
                  seconds=0.0, peak_rss_mb=0.0, host=socket.gethostname(), work=str(work))
    start = time.perf_counter()
    try:
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(spec["template"], work)
        shutil.copytree(spec["submission"], work / "submitted" / student / spec["assignment"])
        spec_path = work / "task.json"
        spec_path.write_text(json.dumps(spec))
    except OSError as exc:
        result.update(reason=f"could not copy the submission into {work}: {exc}",
                      seconds=time.perf_counter() - start)
        return result
    log_path = work / "grading.log"
    run = thread_worker().grade(spec_path, work, log_path, spec.get("timeout"))
    result.update(seconds=round(time.perf_counter() - start, 2),
                  peak_rss_mb=round(run.peak_rss_bytes / 2**20, 1), log=str(log_path))
    if run.timed_out:
        result.update(status=TIMEOUT, reason=f"killed after the {spec['timeout']:g} s timeout "
                                             f"(--timeout)")
    elif run.returncode != 0:
        result.update(reason=_failure_reason(log_path.read_text(errors="replace"), run.returncode))
    else:
        record = json.loads((work / "result.json").read_text())
        result.update(status=OK, score=record["score"], max_score=record["max_score"],
                      record=record)
    return result


# ----------------------------------------------------------------------------- merge
def merge_into_gradebook(course_dir: str | os.PathLike, assignment: str, result: dict) -> None:
    """Store one worker's autograde result in the instructor's gradebook.

    Mirrors nbgrader's autograde (``SaveAutoGrades``, ``LateSubmissionPlugin``): the
    submission is created or updated with its timestamp; each grade gets its auto score
    and ``needs_manual_grade`` (True when a manual score exists or no auto score);
    each comment its auto comment.  Manual scores are not touched.
    """
    from nbgrader.api import Gradebook

    record, student = result["record"], result["student"]
    db = gradebook_url(course_dir)
    with quiet_gradebook(), Gradebook(db) as gb:
        gb.update_or_create_student(student)
        kwargs = {"timestamp": record["timestamp"]} if record["timestamp"] else {}
        gb.update_or_create_submission(assignment, student, **kwargs)
        for nb_name, nb in record["notebooks"].items():
            sub_nb = gb.find_submission_notebook(nb_name, assignment, student)
            sub_nb.late_submission_penalty = nb["late_submission_penalty"]
            for grade_id, g in nb["grades"].items():
                grade = gb.find_grade(grade_id, nb_name, assignment, student)
                grade.auto_score = g["auto_score"]
                grade.needs_manual_grade = (grade.manual_score is not None
                                            or grade.auto_score is None)
            for cell_id, auto_comment in nb["comments"].items():
                gb.find_comment(cell_id, nb_name, assignment, student).auto_comment = auto_comment
        gb.db.commit()


def _replace_tree(src: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, dest)


# ----------------------------------------------------------------------------- the class
@dataclass
class ClassGrading:
    """Everything one ``course grade`` run needs."""
    assignment: str
    submissions: Path
    course_dir: Path = REPO_DIR
    out: Path | None = None
    workers: int = 2
    scheduler: str | None = None
    timeout: float | None = None
    feedback: bool = True
    merge: bool = True
    keep_work: bool = False
    lms_regexp: str = DEFAULT_LMS_REGEXP
    connect_timeout: str = "30s"
    results: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self.course_dir = Path(self.course_dir).resolve()
        self.submissions = Path(self.submissions).resolve()
        self.out = Path(self.out or self.course_dir / "graded" / self.assignment).resolve()
        if self.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {self.workers}")

    @property
    def work_dir(self) -> Path:
        return self.out / "work"

    def specs(self, found: dict[str, Path]) -> list[dict]:
        return [dict(assignment=self.assignment, student=student, submission=str(path),
                     template=str(self.work_dir / "_template"),
                     work=str(self.work_dir / "students" / student),
                     timeout=self.timeout, feedback=self.feedback)
                for student, path in found.items()]

    def run(self, log=print) -> list[dict]:
        ensure_venv_on_path()
        self.out.mkdir(parents=True, exist_ok=True)
        source = self.submissions
        if is_lms_download(source, self.assignment):
            log(f"{source} is an LMS download: collecting it with nbgrader zip_collect")
            source = zip_collect(source, self.assignment, self.course_dir,
                                 self.work_dir / "_zip_collect", self.lms_regexp)
        found = find_submissions(source, self.assignment)
        if not found:
            raise GradingError(
                f"no submission of {self.assignment} in {source}: expected "
                f"<student>/{self.assignment}/*.ipynb folders (nbgrader's submitted/ layout) "
                f"or an LMS download of notebooks / zip archives")
        prepare_template(self.course_dir, self.assignment, self.work_dir / "_template")
        specs = self.specs(found)
        where = (f"Dask scheduler {self.scheduler}" if self.scheduler
                 else f"{self.workers} local worker(s)")
        log(f"grading {len(specs)} submission(s) of {self.assignment} on {where}")
        start = time.perf_counter()
        done = 0
        for result in self._execute(specs):
            done += 1
            self._finish(result)
            score = (f"{result['score']:g}/{result['max_score']:g}" if result["status"] == OK
                     else result["reason"])
            log(f"[{done}/{len(specs)}] {result['student']}: {result['status']} {score} "
                f"({result['seconds']:.1f} s, peak {result['peak_rss_mb']:.0f} MiB)")
        if not self.scheduler:
            close_workers()
        self.wall_seconds = time.perf_counter() - start
        self.results.sort(key=lambda r: r["student"])
        if not self.keep_work:
            shutil.rmtree(self.work_dir, ignore_errors=True)
        counts = {s: sum(r["status"] == s for r in self.results) for s in (OK, TIMEOUT, ERROR)}
        log(f"graded {len(self.results)} submission(s) in {self.wall_seconds:.1f} s "
            f"({60 * len(self.results) / max(self.wall_seconds, 1e-9):.1f} per minute): "
            f"{counts[OK]} ok, {counts[TIMEOUT]} timeout, {counts[ERROR]} error -> "
            f"{self.out / 'grades.csv'}")
        return self.results

    def _execute(self, specs):
        """Yield each submission's result as it completes (never stops at a failure)."""
        if self.scheduler:
            try:
                from distributed import Client, as_completed
            except ImportError as exc:
                raise GradingError(f"--scheduler needs dask.distributed ({exc}): "
                                   f"pip install -r requirements.txt") from None
            try:
                client = Client(self.scheduler, timeout=self.connect_timeout)
            except (OSError, TimeoutError) as exc:
                raise GradingError(
                    f"cannot reach the Dask scheduler {self.scheduler} ({exc}): start one with "
                    f"`dask scheduler` and workers with `dask worker {self.scheduler}`") from None
            with client:
                run_id = uuid.uuid4().hex[:8]
                tasks = {client.submit(grade_submission, spec, pure=False,
                                       key=f"grade-{self.assignment}-{spec['student']}-{run_id}"): spec
                         for spec in specs}
                for task in as_completed(tasks):
                    yield self._result_of(task, tasks[task])
        else:
            with futures.ThreadPoolExecutor(max_workers=self.workers) as pool:
                tasks = {pool.submit(grade_submission, spec): spec for spec in specs}
                for task in futures.as_completed(tasks):
                    yield self._result_of(task, tasks[task])

    @staticmethod
    def _result_of(task, spec: dict) -> dict:
        """The task's result, or an error result when the task itself failed (a Dask
        worker lost, a full disk): one submission never stops the others."""
        try:
            return task.result()
        except Exception as exc:     # noqa: BLE001 -- recorded in grades.csv with its reason
            return dict(student=spec["student"], status=ERROR, score=None, max_score=None,
                        reason=f"grading task failed: {type(exc).__name__}: {exc}"[:300],
                        seconds=0.0, peak_rss_mb=0.0, host="", work=spec["work"])

    def _finish(self, result: dict) -> None:
        """Copy logs, feedback and autograded notebooks; merge into the gradebook."""
        student, work = result["student"], Path(result["work"])
        logs = self.out / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        if result.get("log") and Path(result["log"]).is_file():
            shutil.copy2(result["log"], logs / f"{student}.log")
        if result["status"] == OK:
            feedback = work / "feedback" / student / self.assignment
            if self.feedback and feedback.is_dir():
                _replace_tree(feedback, self.out / "feedback" / student / self.assignment)
            if self.merge:
                try:
                    merge_into_gradebook(self.course_dir, self.assignment, result)
                    _replace_tree(work / "autograded" / student / self.assignment,
                                  self.course_dir / "autograded" / student / self.assignment)
                    if self.feedback and feedback.is_dir():
                        _replace_tree(feedback,
                                      self.course_dir / "feedback" / student / self.assignment)
                except Exception as exc:   # noqa: BLE001 -- e.g. gradebook locked: keep going
                    result.update(status=ERROR, reason=(
                        f"graded ({result['score']:g}/{result['max_score']:g}) but not stored "
                        f"in {self.course_dir}: {type(exc).__name__}: {exc}; re-run "
                        f"`course grade` for this student")[:300])
        self.results.append(result)
        self.write_outputs()             # after each submission: an interrupted run keeps them

    def write_outputs(self) -> None:
        rows = sorted(self.results, key=lambda r: r["student"])
        with open(self.out / "grades.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
            writer.writeheader()
            for r in rows:
                writer.writerow({k: ("" if r.get(k) is None else r[k]) for k in CSV_FIELDS})
        summary = [dict({k: r.get(k) for k in CSV_FIELDS}, host=r.get("host"),
                        cells={f"{nb}/{gid}": g["auto_score"]
                               for nb, n in r.get("record", {}).get("notebooks", {}).items()
                               for gid, g in n["grades"].items()})
                   for r in rows]
        (self.out / "grades.json").write_text(json.dumps(summary, indent=1))


# ----------------------------------------------------------------------------- CLI
def _cmd_grade(args) -> int:
    try:
        grading = ClassGrading(
            assignment=args.assignment,
            submissions=args.submissions or Path(args.course_dir) / "submitted",
            course_dir=args.course_dir, out=args.out, workers=args.workers,
            scheduler=args.scheduler, timeout=args.timeout, feedback=not args.no_feedback,
            merge=not args.no_merge, keep_work=args.keep_work, lms_regexp=args.lms_regexp)
        grading.run(log=lambda line: print(line, flush=True))
    except (GradingError, FileNotFoundError, ValueError) as exc:
        print(f"course grade: {exc}", file=sys.stderr)
        return 2
    return 0


def register(subparsers) -> None:
    """Add the ``grade`` command to the course CLI."""
    p = subparsers.add_parser(
        "grade", help="autograde every submission of an assignment in parallel "
                      "(local processes or a Dask cluster): gradebook, grades.csv, feedback")
    p.add_argument("assignment", help="assignment name (a folder of source/)")
    p.add_argument("--submissions", default=None,
                   help="folder of <student>/<assignment>/ submissions (default: "
                        "<course>/submitted), or an LMS download (notebooks / zip archives)")
    p.add_argument("--workers", type=int, default=2,
                   help="submissions graded at the same time on this machine (default 2)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="grade on an existing Dask cluster (e.g. tcp://host:8786) instead; "
                        "its workers must see the same paths")
    p.add_argument("--out", default=None,
                   help="grades.csv, grades.json, feedback/ and logs/ (default: "
                        "<course>/graded/<assignment>)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="kill a submission's grading after this long and record it as "
                        "'timeout' (default: none; nbgrader's per-cell timeout still applies)")
    p.add_argument("--course-dir", default=str(REPO_DIR),
                   help="the instructor's nbgrader course (default: this checkout)")
    p.add_argument("--no-feedback", action="store_true",
                   help="skip nbgrader generate_feedback")
    p.add_argument("--no-merge", action="store_true",
                   help="leave the course's gradebook, autograded/ and feedback/ untouched")
    p.add_argument("--keep-work", action="store_true",
                   help="keep <out>/work (each submission's throw-away course) for debugging")
    p.add_argument("--lms-regexp", default=DEFAULT_LMS_REGEXP,
                   help="nbgrader zip_collect file-name pattern for an LMS download "
                        "(groups student_id and file_id); default: <student>_<notebook>.ipynb")
    p.set_defaults(func=_cmd_grade)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        sys.exit(_serve())
    sys.exit("usage: python -m course_utils.grading --serve "
             "(internal: a grading worker; use `course grade ASSIGNMENT ...`)")
