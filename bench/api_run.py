"""``kirim-import run``'s arguments, run through the Python API (``importer.run``) instead of
the command line: what ``bench/ceiling.py`` compares the CLI with (the API adds no cost).

    python bench/api_run.py run FILE --base-url URL --report-dir DIR --state FILE ...
"""

from __future__ import annotations

import sys

import importer
from importer.cli import _INPUT, _RUN, build_parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    options = {name: getattr(args, name) for name in (*_RUN, *_INPUT) if name != "sandbox"}
    result = importer.run(args.file, labels=args.label, **options)
    return result.exit_code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
