"""Admission: tiers and the account cap, slots, fair sharing, and the gate that admits waiting jobs."""
