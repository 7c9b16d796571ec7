"""What every feature shares: typed base model and clock, errors, AWS clients and DynamoDB conversions."""
