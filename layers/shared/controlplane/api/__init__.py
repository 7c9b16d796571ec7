"""The status API: request and response models, keys and what a caller may invoke."""
