"""The command line of a "generated and committed" file: write it, or with ``--check`` fail when the
committed one differs from what its generator writes (``make asl``, ``make dashboard``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def write_or_check(
    path: Path,
    generate: Callable[[str], str],
    *,
    what: str,
    target: str,
    argv: list[str] | None,
    description: str,
) -> int:
    """``generate`` gets the committed text and returns what it should be. ``what`` names the generated
    part in messages, ``target`` the make target that writes it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help=f"fail if the committed {what} is stale")
    arguments = parser.parse_args(argv)
    committed = path.read_text()
    generated = generate(committed)
    if arguments.check:
        if generated != committed:
            print(f"{what} is stale: run `make {target}` and commit it", file=sys.stderr)
            return 1
        return 0
    path.write_text(generated)
    print(f"wrote {what}")
    return 0
