# syntax=docker/dockerfile:1.7
#
# bertserve: one Dockerfile, two images.
#
#   docker build -t bertserve:0.1.0-gpu .                          # CUDA 13 / cuDNN 9 (default)
#   docker build -t bertserve:0.1.0-cpu --build-arg RUNTIME=cpu .  # hosts without a GPU
#
# Stages:
#   checkpoints   the fine-tuned checkpoints to export: demo/<name>/ from the build context.
#                 Export another folder instead with  --build-context checkpoints=/path/to/checkpoints
#   export        torch + transformers + onnx: checkpoints -> model repository (fused, fp32/fp16/int8,
#                 each variant checked against PyTorch). Never part of the runtime image.
#   models        the model repository only. Ship an already exported repository, skipping the export
#                 stage entirely, with  --build-context models=/path/to/models
#   runtime-deps  the serving venv: the project's runtime dependencies plus onnxruntime-gpu[cuda,cudnn]
#                 (RUNTIME=gpu) or onnxruntime (RUNTIME=cpu). No torch.
#   runtime       python:3.11-slim + venv + app/ + models, non-root, read-only friendly (the final stage)
#
# The GPU image uses the CUDA 13 / cuDNN 9 libraries that onnxruntime-gpu[cuda,cudnn] installs from PyPI
# (the same pins `make install RUNTIME=gpu` tests); the host only provides the driver (>= 580) through the
# NVIDIA Container Toolkit. For reproducible releases pin the base by digest (python:3.11-slim-bookworm@sha256:...).

# --------------------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm AS python-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# --------------------------------------------------------------------------------------------------
FROM scratch AS checkpoints
COPY demo/ /

# --------------------------------------------------------------------------------------------------
FROM python-base AS export
# torch's CPU wheels: the export runs on the build host's CPU; PyPI's default torch is a multi-GB CUDA build.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PRECISIONS=fp32,fp16,int8
# Local checkpoints only: a build never reaches for a model hub.
ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1
WORKDIR /src
COPY pyproject.toml ./
# The export extra plus the CPU onnxruntime (fusion, fp16/int8 conversion and parity checks run on CPU).
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; extra = p['optional-dependencies']; print('\n'.join(p['dependencies'] + extra['export'] + extra['cpu']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "$(grep '^torch==' /tmp/requirements.txt)" \
    && pip install --no-cache-dir -r /tmp/requirements.txt
COPY app/ app/
COPY export/ export/
COPY --from=checkpoints / /src/demo/
RUN python -m export.repository --demo-dir /src/demo --out /models --precisions "${PRECISIONS}"

# --------------------------------------------------------------------------------------------------
FROM scratch AS models
COPY --from=export /models/ /

# --------------------------------------------------------------------------------------------------
FROM python-base AS runtime-deps
# gpu: onnxruntime-gpu[cuda,cudnn] (CUDA 13, cuDNN 9 from PyPI); cpu: onnxruntime. Never both.
ARG RUNTIME=gpu
WORKDIR /src
COPY pyproject.toml ./
RUN case "${RUNTIME}" in gpu|cpu) ;; *) echo "RUNTIME must be gpu or cpu, not '${RUNTIME}'" >&2; exit 1;; esac \
    && python -m venv /opt/venv \
    && python -c "import sys, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies'][sys.argv[1]]))" "${RUNTIME}" > /tmp/requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt \
    && if /opt/venv/bin/pip show torch >/dev/null 2>&1; then echo "torch must not be in the runtime image" >&2; exit 1; fi

# --------------------------------------------------------------------------------------------------
FROM python-base AS runtime
ARG RUNTIME=gpu
LABEL org.opencontainers.image.title="bertserve" \
      org.opencontainers.image.description="Fine-tuned BERT heads (classify, pair, QA, NER) over HTTP on ONNX Runtime" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.bertserve.runtime="${RUNTIME}"
RUN groupadd --system --gid 10001 bertserve \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin bertserve
COPY --from=runtime-deps /opt/venv /opt/venv
COPY app/ /opt/bertserve/app/
# Bytecode compiled at build time: the root filesystem is read-only at run time (PYTHONDONTWRITEBYTECODE).
RUN python -m compileall -q /opt/bertserve/app
# Root-owned and read-only for the server: the model repository is part of the image.
COPY --from=models / /models/
WORKDIR /opt/bertserve
# Every BERTSERVE_* setting may be overridden at run time (see app/settings.py).
# CUDA_CACHE_PATH: the CUDA JIT cache must live on the writable /tmp when the root filesystem is read-only.
# NVIDIA_DRIVER_CAPABILITIES: what the NVIDIA Container Toolkit mounts from the host driver.
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONPATH=/opt/bertserve \
    HOME=/tmp \
    BERTSERVE_MODEL_DIR=/models \
    BERTSERVE_HOST=0.0.0.0 \
    BERTSERVE_PORT=8000 \
    BERTSERVE_DEVICE=auto \
    BERTSERVE_PRECISION=auto \
    BERTSERVE_DRAIN_TIMEOUT_S=25 \
    CUDA_CACHE_PATH=/tmp/cuda-cache \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 10001:10001
EXPOSE 8000
# Ready = every model loaded and warmed up and not draining (503 otherwise, so urlopen raises).
HEALTHCHECK --interval=10s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/health/ready' % os.environ.get('BERTSERVE_PORT', '8000'), timeout=4)"]
# SIGTERM: the server turns unready, finishes accepted work within BERTSERVE_DRAIN_TIMEOUT_S, then exits.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "app"]
