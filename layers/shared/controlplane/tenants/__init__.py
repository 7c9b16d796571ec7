"""Tenants: their record and contract, their AWS identity, onboarding and offboarding."""
