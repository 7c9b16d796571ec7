"""Plain-Python domain rules. Nothing in this package may import boto3/botocore (a unit test enforces it)."""
