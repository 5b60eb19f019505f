"""tunebench: pipeline config, Hera DAG builders, CLI and the local runner."""
