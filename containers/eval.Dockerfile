# GPU evaluation with vLLM: the vLLM OpenAI image (its CUDA torch) plus the project.
# Pin the tag by digest (@sha256:...) for reproducible scores.
# Build from the project root:  docker build -f containers/eval.Dockerfile -t REGISTRY/tunebench-eval:TAG .
ARG VLLM_IMAGE=vllm/vllm-openai:v0.11.0
FROM ${VLLM_IMAGE}

# vLLM's image installs into the system Python; where that Python is marked externally
# managed (PEP 668), pip needs leave to add the project beside vLLM.
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    HOME=/home/tunebench

WORKDIR /app
COPY pyproject.toml README.md ./
COPY workflows/ workflows/
COPY steps/ steps/
COPY configs/ configs/
# No constraints file here: vLLM pins torch and transformers itself, and the project's
# base dependencies (pyarrow, datasets, typer, ...) must fit around them.
RUN python3 -m pip install --no-cache-dir . \
    && useradd --uid 1000 --user-group --create-home --home-dir /home/tunebench tunebench \
    && if ! command -v python >/dev/null; then ln -s "$(command -v python3)" /usr/local/bin/python; fi

USER 1000
ENTRYPOINT []
CMD ["python", "-m", "steps.eval_mmlu_pro", "--help"]
