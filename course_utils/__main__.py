"""Command line: ``python -m course_utils <command>`` (also installed as ``course``).

Each command lives in its own module, which exposes ``register(subparsers)``
adding a sub-parser whose ``func`` default runs the command.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# command modules, imported lazily so that `course data` never loads TensorFlow
COMMAND_MODULES = (
    "course_utils.synth.cli",      # data
    "course_utils.train",          # train
    "course_utils.evaluate",       # evaluate
    "course_utils.mutation",       # mutation (score of the hidden tests against tests/mutants/)
    "course_utils.nbgrading",      # build, demo, scores
    "course_utils.grading",        # grade (a whole class, in parallel)
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (name == exc.name or name.startswith(exc.name + ".")):   # command not written yet: skip it, say nothing else
                continue
            raise
        module.register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
