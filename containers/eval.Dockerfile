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
    VLLM_NO_USAGE_STATS=1 \
    HOME=/home/tunebench

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY containers/image_constraints.py containers/
COPY workflows/ workflows/
COPY steps/ steps/
COPY configs/ configs/
# vLLM's versions of everything it ships (torch, transformers, ...) stay; the project's pins
# apply to the rest (pyarrow, typer, ...); `pip check` proves the result consistent.
RUN python3 containers/image_constraints.py constraints.txt > /tmp/image-constraints.txt \
    && python3 -m pip install --no-cache-dir -c /tmp/image-constraints.txt . \
    && python3 -m pip check \
    && useradd --uid 1000 --user-group --create-home --home-dir /home/tunebench tunebench \
    && if ! command -v python >/dev/null; then ln -s "$(command -v python3)" /usr/local/bin/python; fi

USER 1000
ENTRYPOINT []
CMD ["python", "-m", "steps.eval_mmlu_pro", "--help"]
