"""Operations around the running platform: playbook runs (deploy, rollback), their
outcome metrics, replayed traffic and the end-to-end demo. Flows and the CLI call these;
the library and the service never do."""
