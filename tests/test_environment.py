"""The environment files agree with each other and with the running .venv, and the
documented entry points (README, Makefile, .ci/run) name commands that exist."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version

import pytest
import yaml
from packaging.requirements import Requirement

from course_utils.paths import REPO_DIR

#: Packages the issue requires environment.yml to list (its direct dependencies).
DIRECT = ("tensorflow-cpu", "keras", "nbgrader", "jupyterlab", "numpy", "pandas", "seaborn",
          "scikit-learn", "matplotlib", "pytest", "pytest-xdist", "nbformat", "nbclient",
          "pillow", "tqdm")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_pins() -> dict[str, str]:
    """requirements.txt as {canonical name: exact version}; fails on a non-exact line."""
    pins = {}
    for line in (REPO_DIR / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert match, f"requirements.txt: {line!r} is not an exact pin (name==version)"
        pins[canonical(match[1])] = match[2]
    return pins


def environment_yml() -> tuple[dict, str]:
    text = (REPO_DIR / "environment.yml").read_text()
    return yaml.safe_load(text), text


def yml_pip_pins() -> dict[str, str]:
    env, _ = environment_yml()
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pins = {}
    for item in pip_section:
        if item.startswith("-"):          # -r requirements.txt, -e .
            continue
        name, _, ver = item.partition("==")
        assert ver, f"environment.yml: {item!r} is not an exact pin"
        pins[canonical(name)] = ver
    return pins


def test_requirements_are_exact_pins_of_the_running_venv():
    """Is every pin of requirements.txt the version installed in the interpreter running the tests?"""
    wrong = {}
    for name, pinned in requirement_pins().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        if installed != pinned:
            wrong[name] = (pinned, installed)
    assert not wrong, f"pinned vs installed: {wrong}"


def test_environment_yml_agrees_with_requirements():
    """Does environment.yml pin every direct package to exactly requirements.txt's version?"""
    env, _ = environment_yml()
    assert "python=3.11" in env["dependencies"]
    yml, req = yml_pip_pins(), requirement_pins()
    missing = [p for p in DIRECT if canonical(p) not in yml]
    assert not missing, f"environment.yml lacks {missing}"
    differ = {n: (v, req.get(n)) for n, v in yml.items() if req.get(n) != v}
    assert not differ, f"environment.yml vs requirements.txt: {differ}"
    pip_items = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-r requirements.txt" in pip_items


def test_environment_yml_says_why_for_each_package():
    """Does every dependency line of environment.yml carry a comment saying why?"""
    _, text = environment_yml()
    lines = [l for l in text.splitlines() if re.match(r"^\s+- ", l)]
    bare = [l.strip() for l in lines if "#" not in l]
    assert not bare, f"lines without a comment: {bare}"
    assert len(lines) >= len(DIRECT) + 2


def test_pyproject_dependencies_are_satisfied_by_the_pins():
    """Does each dependency range of pyproject.toml admit the version pinned in requirements.txt?"""
    import tomllib
    project = tomllib.loads((REPO_DIR / "pyproject.toml").read_text())["project"]
    pins = requirement_pins()
    for spec in project["dependencies"]:
        req = Requirement(spec)
        pinned = pins.get(canonical(req.name))
        assert pinned is not None, f"{req.name} is not pinned in requirements.txt"
        assert req.specifier.contains(pinned, prereleases=True), f"{spec} excludes the pin {pinned}"


def test_canonical_names_match_pip_normalisation():
    """Are tensorflow_cpu / tensorflow-cpu and PyYAML / pyyaml taken for the same package?"""
    assert canonical("tensorflow_cpu") == canonical("tensorflow-cpu") == "tensorflow-cpu"
    assert canonical("PyYAML") == "pyyaml"


# ----------------------------------------------------------------------------- entry points
def readme_make_targets() -> set[str]:
    """Targets of every `make X` written as code in the README (code spans and blocks)."""
    readme = (REPO_DIR / "README.md").read_text()
    code = re.findall(r"```.*?```", readme, flags=re.S) + re.findall(r"`[^`\n]+`", readme)
    return set(re.findall(r"\bmake ([a-z][a-z0-9_-]*)", "\n".join(code)))


def make_targets() -> set[str]:
    text = (REPO_DIR / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z0-9_-]*):", text, flags=re.M))


def test_ci_runs_exactly_the_readme_test_command():
    """Does .ci/run run `make test`, the test command the README documents, under set -euo pipefail?"""
    ci = (REPO_DIR / ".ci" / "run").read_text()
    assert ci.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in ci
    commands = [l.strip() for l in ci.splitlines() if l.strip() and not l.strip().startswith("#")]
    assert commands[-1] == "make test", commands
    assert "make test" in (REPO_DIR / "README.md").read_text()


def test_readme_make_targets_exist():
    """Is every `make <target>` in the README a target of the Makefile (and the required ones there)?"""
    mentioned = readme_make_targets()
    targets = make_targets()
    assert {"course", "test", "release", "data", "lab", "venv"} <= targets, targets
    assert mentioned and mentioned <= targets, f"README names missing targets {mentioned - targets}"


def test_readme_course_commands_exist():
    """Is every `python -m course_utils <command>` in the README a command of the course CLI?"""
    from course_utils.__main__ import main
    readme = (REPO_DIR / "README.md").read_text()
    mentioned = set(re.findall(r"-m course_utils ([a-z][a-z_-]*)", readme))
    assert {"data", "build", "demo", "scores"} <= mentioned, mentioned
    for command in sorted(mentioned):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0, command


def test_make_dry_run_of_every_documented_target():
    """Does `make -n <target>` parse for every target the README names (no missing rule)?"""
    for target in sorted(readme_make_targets()):
        proc = subprocess.run(["make", "-n", target], cwd=REPO_DIR, capture_output=True, text=True)
        assert proc.returncode == 0, f"make -n {target}: {proc.stderr}"


def test_python_is_the_course_interpreter():
    """Do the tests run on Python 3.11, the course's interpreter?"""
    assert sys.version_info[:2] == (3, 11), sys.version


def test_make_lab_copies_releases_without_overwriting_and_uses_the_venv(tmp_path):
    """Does `make lab` copy each release into LAB_DIR, keep a student's existing work, and
    start the venv's JupyterLab (here only asked for its version) without an activated venv?"""
    from course_utils.nbgrading import discover_assignments
    from course_utils.paths import data_dir

    lab_dir = tmp_path / "lab"
    kept = lab_dir / "lab_counting_labels"
    kept.mkdir(parents=True)
    (kept / "my_work.txt").write_text("a student's work")
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        ["make", "lab", f"LAB_DIR={lab_dir}", "LAB_ARGS=--version",
         # the stamps are not remade here: this test must not install or generate anything
         "-o", str(REPO_DIR / ".venv" / ".course-installed"), "-o", str(data_dir() / "MANIFEST.sha256")],
        cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^4\.\d+\.\d+$", proc.stdout, flags=re.M), proc.stdout   # JupyterLab 4
    released = {p.parent.name for p in (REPO_DIR / "release").glob("*/*.ipynb")}
    assert released and {p.name for p in lab_dir.iterdir()} == released
    assert sorted(p.name for p in kept.iterdir()) == ["my_work.txt"]   # not overwritten
    assert set(discover_assignments(REPO_DIR)) >= released


def test_make_test_installs_debian_chromium_for_the_browser_tests():
    """Does `make test` (and so .ci/run) install Debian's chromium + chromium-driver when either
    is missing, before pytest, and never a downloaded browser?"""
    script = (REPO_DIR / "scripts" / "ensure_browser.sh").read_text()
    assert re.search(r"apt-get install -y -qq chromium chromium-driver", script), script
    assert "playwright" not in script and "playwright" not in (REPO_DIR / ".ci" / "run").read_text()
    dry = subprocess.run(["make", "-n", "test"], cwd=REPO_DIR, capture_output=True, text=True, check=True)
    assert dry.stdout.index("scripts/ensure_browser.sh") < dry.stdout.index("-m pytest"), dry.stdout


def test_browser_install_says_what_to_do_when_it_cannot(tmp_path):
    """With the browser present the script does nothing; missing, on a machine without apt-get,
    does it fail with what to install and how to run the other tests?"""
    script = str(REPO_DIR / "scripts" / "ensure_browser.sh")
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "COURSE_CHROMIUM": str(fake), "COURSE_CHROMEDRIVER": str(fake)}
    ok = subprocess.run(["bash", script], env=env, capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout == "" and ok.stderr == ""
    bare = tmp_path / "bin"                     # bash and id, but no apt-get
    bare.mkdir()
    for tool in ("bash", "id"):
        (bare / tool).symlink_to(shutil.which(tool))
    env = {"PATH": str(bare), "COURSE_CHROMIUM": str(tmp_path / "none"), "COURSE_CHROMEDRIVER": str(fake)}
    missing = subprocess.run([str(bare / "bash"), script], env=env, capture_output=True, text=True)
    assert missing.returncode == 1, missing
    assert "no apt-get" in missing.stderr and "apt-get install chromium chromium-driver" in missing.stderr
    assert "-m \"not browser\"" in missing.stderr


def test_make_instructor_starts_the_venv_jupyterlab_in_the_course_folder(tmp_path):
    """Does `make instructor` run the venv's JupyterLab 4 with the course folder as its root?"""
    from course_utils.paths import data_dir

    dry = subprocess.run(["make", "-n", "instructor", "-o", str(REPO_DIR / ".venv" / ".course-installed"),
                          "-o", str(data_dir() / "MANIFEST.sha256")],
                         cwd=REPO_DIR, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert f'"{REPO_DIR}/.venv/bin/jupyter" lab --ServerApp.root_dir="{REPO_DIR}"' in dry.stdout, dry.stdout
    proc = subprocess.run(
        ["make", "instructor", "LAB_ARGS=--version",
         "-o", str(REPO_DIR / ".venv" / ".course-installed"), "-o", str(data_dir() / "MANIFEST.sha256")],
        cwd=REPO_DIR, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^4\.\d+\.\d+$", proc.stdout, flags=re.M), proc.stdout
