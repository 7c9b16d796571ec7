"""A tenant's model versions: listing them with their metrics, approving or rejecting them, and the
model-approved hand-off event a deployment workflow starts from."""
