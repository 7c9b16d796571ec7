"""Jain's fairness index, shared by the simulated benchmark (part a) and the soak (real gate admissions)."""

from __future__ import annotations

from collections.abc import Sequence


def jain(values: Sequence[float]) -> float:
    """(Σx)² / (n·Σx²): 1 when every value is equal, 1/n when one takes everything; 1 for all zeros."""
    total = sum(values)
    squares = sum(v * v for v in values)
    return 1.0 if squares == 0 else total * total / (len(values) * squares)
