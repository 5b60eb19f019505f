# Training and merge-lora: Axolotl's own CUDA image plus the project.
# Axolotl 0.19 images exist only for Python 3.12 / CUDA 13.0 with torch 2.11.0 or 2.12.0 (the
# matrix of Axolotl's image build workflow, .github/workflows/main.yml); CUDA 13.0 needs NVIDIA
# driver 580 or newer on the nodes. Check the tag with `docker manifest inspect` and pin it by
# digest (@sha256:...) for reproducible runs.
# Build from the project root:  docker build -f containers/train.Dockerfile -t REGISTRY/tunebench-train:TAG .
ARG AXOLOTL_IMAGE=axolotlai/axolotl:0.19.0-py3.12-cu130-2.12.0
FROM ${AXOLOTL_IMAGE}

# The image's Python is uv's relocatable virtualenv /workspace/axolotl-venv (first on PATH), which
# may have no pip: packages go in with uv. Axolotl is an editable install in /workspace/axolotl;
# the pods' volumes are mounted under /mnt, so nothing hides either.
ARG VENV=/workspace/axolotl-venv
# Kubernetes' `command` replaces the image's ENTRYPOINT (Axolotl's uv-entrypoint.sh), which is
# what puts the CUDA 13 libraries of the nvidia-cu13 wheel on LD_LIBRARY_PATH: set it here too
# (the build checks it is the path Axolotl's own helper computes).
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AXOLOTL_DO_NOT_TRACK=1 \
    HOME=/home/tunebench \
    LD_LIBRARY_PATH=${VENV}/lib/python3.12/site-packages/nvidia/cu13/lib${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}}

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY containers/image_constraints.py containers/
COPY workflows/ workflows/
COPY steps/ steps/
COPY configs/ configs/
# Everything the image ships keeps its version (torch, transformers, peft, ... as Axolotl pins
# them); the project's pins apply to the rest; `uv pip check` proves the result consistent.
# uv's Python lives under /root/.local/share/uv, which the venv links to: UID 1000 must traverse /root.
RUN "${VENV}/bin/python" containers/image_constraints.py constraints.txt > /tmp/image-constraints.txt \
    && uv pip install --python "${VENV}/bin/python" --no-cache -c /tmp/image-constraints.txt . \
    && uv pip check --python "${VENV}/bin/python" \
    && python -c "import axolotl, steps.train, steps.merge_lora; assert axolotl.__version__ == '0.19.0', axolotl.__version__" \
    && python -c "import os, sys; from axolotl.utils.cuda13 import cu13_library_path as lib; \
sys.exit(lib() is not None and lib() not in os.environ['LD_LIBRARY_PATH'].split(':') and f'LD_LIBRARY_PATH lacks {lib()}')" \
    && chmod o+x /root \
    && useradd --uid 1000 --user-group --create-home --home-dir /home/tunebench tunebench \
    && chown -R 1000:1000 /app

USER 1000
# Axolotl's entrypoint stays: `docker run IMAGE python -m steps.train ...` sets up CUDA 13 as Axolotl does.
CMD ["python", "-m", "steps.train", "--help"]
