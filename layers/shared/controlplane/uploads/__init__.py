"""Uploads: keys and job ids, registration into a job and a build plan, dataset validation."""
