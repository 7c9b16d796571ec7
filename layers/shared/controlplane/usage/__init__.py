"""What builds cost: the one price table, the cost of a job, and usage per tenant and tier per month."""
