# Training and merge-lora: Axolotl's own CUDA image plus the project.
# The tag pins Axolotl 0.19.0; check it exists for your CUDA/torch with `docker manifest inspect`
# and pin it by digest (@sha256:...) for reproducible runs.
# Build from the project root:  docker build -f containers/train.Dockerfile -t REGISTRY/tunebench-train:TAG .
ARG AXOLOTL_IMAGE=axolotlai/axolotl:0.19.0-py3.11-cu128-2.9.1
FROM ${AXOLOTL_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AXOLOTL_DO_NOT_TRACK=1 \
    HOME=/home/tunebench

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY workflows/ workflows/
COPY steps/ steps/
COPY configs/ configs/
# The constraints keep the libraries Axolotl 0.19.0 was tested with; torch stays the image's own.
# Axolotl is reinstalled into site-packages: the image's editable install points into
# /workspace/axolotl, and the pods' volumes are mounted under /mnt, never over site-packages.
# The image's Python may live under /root (conda); UID 1000 needs to traverse it.
RUN pip install --no-cache-dir --no-deps --force-reinstall "axolotl==0.19.0" \
    && pip install --no-cache-dir -c constraints.txt . \
    && python -c "import axolotl, sys; sys.exit('/workspace/' in axolotl.__file__)" \
    && chmod o+rx /root \
    && useradd --uid 1000 --user-group --create-home --home-dir /home/tunebench tunebench \
    && chown -R 1000:1000 /app

USER 1000
ENTRYPOINT []
CMD ["python", "-m", "steps.train", "--help"]
