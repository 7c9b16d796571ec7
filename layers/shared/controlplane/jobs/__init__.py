"""The job record's one owner: statuses and transitions, the typed Job, its store, closing, cancelling."""
