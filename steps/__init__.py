"""The containerised steps of the tunebench DAG: each module runs as `python -m steps.<name>`."""
