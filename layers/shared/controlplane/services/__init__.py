"""Use cases that combine domain decisions with data access, shared by several functions or tests."""
