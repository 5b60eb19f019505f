# Light steps: convert-dataset, memory-gate, upload, plan-eval, aggregate.
# Build from the project root:  docker build -f containers/light.Dockerfile -t REGISTRY/tunebench:TAG .
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/tunebench

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY workflows/ workflows/
COPY steps/ steps/
COPY configs/ configs/
RUN pip install --no-cache-dir -c constraints.txt . \
    && pip check \
    && useradd --uid 1000 --user-group --create-home --home-dir /home/tunebench tunebench

USER 1000
ENTRYPOINT []
CMD ["python", "-m", "workflows.cli", "--help"]
