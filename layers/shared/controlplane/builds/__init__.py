"""Builds on the shared pipeline: outcomes, resuming the waiting execution, recovering lost completions."""
