"""Helpers shared by several test packages (imported as ``tests.support``; the repository root is on the
pytest path)."""
