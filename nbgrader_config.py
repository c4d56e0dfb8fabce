"""nbgrader configuration of the course "Chest X-ray classification under class imbalance".

Loaded by every ``nbgrader`` command run in this directory and by
``course_utils.nbgrading`` (``make course``, the tests).  It runs inside the
nbgrader process; the kernels that execute notebooks (autograde, validate)
are started from that process and inherit its environment, which is why the
environment variables below are set here, before any kernel starts.

How nbgrader scores a test cell (nbgrader/utils.py, ``determine_grade``): the
cell gets 0 points when any of its outputs is an error OR a ``stderr`` stream;
a last-expression value that is a number gives partial credit; anything else
gives full points.  So anything written to stderr by a test cell -- TensorFlow's
C++ log lines, a Python warning -- would cost a correct student all the points.
"""
import os
import sys

# TensorFlow's C++ logging (oneDNN / CPU-feature notices, absl pre-init line)
# writes to stderr: silence everything below FATAL.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Python warnings (e.g. Keras' UserWarning about `input_shape`, deprecations
# inside libraries) are printed to stderr: ignore them in graded kernels.  A
# test that needs a warning records it with warnings.catch_warnings(), which
# overrides this default.  An instructor who wants them back sets PYTHONWARNINGS.
os.environ.setdefault("PYTHONWARNINGS", "ignore")

# nbgrader runs `alembic` as a subprocess when it creates a gradebook: put the
# folder of the Python running nbgrader (the course's .venv/bin) first on PATH
# so `.venv/bin/nbgrader ...` works without activating the virtual environment.
_BIN = os.path.dirname(sys.executable)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _BIN:
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")

ROOT = os.path.dirname(os.path.abspath(__file__))

c = get_config()  # noqa: F821  (provided by traitlets when nbgrader loads this file)

c.CourseDirectory.course_id = "chest-xray-imbalance"
c.CourseDirectory.root = ROOT

# Every release notebook starts with the header (course title, instructions,
# environment check); the path is absolute so nbgrader can run from anywhere.
c.IncludeHeaderFooter.header = os.path.join(ROOT, "source", "header.ipynb")

# Execution limits, sized for the heaviest notebook (DenseNet121 on a 2-core
# CPU, with other work on the machine): one cell may take up to 10 minutes;
# a kernel may take 2 minutes to start when the machine is busy.
c.Execute.timeout = 600
c.Execute.startup_timeout = 120
c.Execute.interrupt_on_timeout = True
# A grade cell a student deleted (or whose nbgrader metadata they removed) is put back,
# from the gradebook, where it was, and run: without this nbgrader 0.9.6 leaves the cell
# out and the gradebook shows it "ungraded" (no score) instead of running its tests
# (tests/test_adversarial.py, cases edited_tests_*).
c.OverwriteCells.add_missing_cells = True
# The kernel's own log (e.g. "Kernel is running over TCP without encryption") goes
# to the terminal, not into any cell; keep it to errors so the build output stays readable.
c.Execute.extra_arguments = ["--IPKernelApp.log_level=ERROR"]

# Where release_assignment/fetch_assignment/submit/collect exchange files.
# nbgrader's default (/usr/local/share/nbgrader/exchange) suits a shared JupyterHub; set
# COURSE_EXCHANGE to a writable folder to try the whole cycle on one machine.
if os.environ.get("COURSE_EXCHANGE"):
    c.Exchange.root = os.environ["COURSE_EXCHANGE"]
