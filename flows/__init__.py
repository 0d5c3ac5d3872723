"""Prefect 3 flows over the solar_mlops package: train, monitor_drift, retrain, deploy and
rollback. Thin by design: orchestration, retries, logs, artifacts and events here; the
logic in solar_mlops. Deployments, schedules and triggers: flows/prefect.yaml."""
