"""The step scripts. Each runs as a standalone file in the SageMaker scikit-learn container."""
