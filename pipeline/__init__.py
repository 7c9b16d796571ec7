"""The shared training pipeline: its definition generator and step scripts (see README.md)."""
