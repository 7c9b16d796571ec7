"""Data access: one small module per AWS resource. The only code that imports boto3."""
