"""Helpers for this project's SageMaker images: local runs, pushes, remote jobs and the benchmark."""
