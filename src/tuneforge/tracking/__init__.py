"""Experiment tracking: PNG curves of a job's metrics, W&B and MLflow runs (synced after the fact or logged
live by the worker). Imports no torch; wandb, mlflow and matplotlib are imported where they are used."""
