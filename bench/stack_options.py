"""Command-line options of part (b) (``bench.stack``), importable without loading moto and the emulator."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Final

# ~3.5 minutes on 2 cores; 300 takes ~10 (the emulator's front door is the bottleneck).
DEFAULT_UPLOADS: Final = 120
DEFAULT_PIPELINE_SECONDS: Final = 0.5
DEFAULT_TIMEOUT_SECONDS: Final = 900.0
QUEUE_CHECK_JOBS: Final = 12


def stack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stack-uploads",
        type=int,
        default=DEFAULT_UPLOADS,
        help=f"uploads in the stack run (default {DEFAULT_UPLOADS})",
    )
    parser.add_argument(
        "--stack-pipeline-seconds",
        type=float,
        default=DEFAULT_PIPELINE_SECONDS,
        help="how long each SIMULATED pipeline execution runs",
    )
    parser.add_argument(
        "--stack-timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="give up waiting for a batch of jobs to end after this many seconds",
    )
    parser.add_argument(
        "--stack-queue-check-jobs",
        type=int,
        default=QUEUE_CHECK_JOBS,
        help="jobs per configuration of the transitions-vs-queue-wait check",
    )
    parser.add_argument(
        "--stack-state-dir",
        type=Path,
        default=None,
        help="keep the emulator's state here (function logs under logs/) instead of a temporary directory",
    )
