"""The tenant build control plane: domain rules, data access and observability shared by every function.

Layout:
- ``domain``: plain Python (no AWS SDK) — models, naming, validation, admission and outcome rules.
- ``access``: one small module per AWS resource, the only place that talks to AWS.
- ``services``: use cases that combine domain decisions with data access (admission, rendezvous).
"""
