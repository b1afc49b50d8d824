"""Check annotation files: ``python -m training.validate FILE...``.

Prints every problem as ``FILE:LINE: span START-END LABEL: reason`` and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import sys

from serving.annotation import validate_file

PROG = "python -m training.validate"  # the name in its usage line (arabic-ner passes its own)


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", metavar="FILE", help="annotation JSONL files")
    args = parser.parse_args(argv)
    problem_count = 0
    for path in args.files:
        problems = validate_file(path)
        for problem in problems:
            print(problem)
        problem_count += len(problems)
    if problem_count:
        print(f"{problem_count} problem(s) in {len(args.files)} file(s)", file=sys.stderr)
        return 1
    print(f"ok: {len(args.files)} file(s), no problems", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
