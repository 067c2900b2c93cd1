#
# bertserve: one Dockerfile, two images. Builds with BuildKit (docker buildx build) and with the legacy builder.
#
#   docker build -t bertserve:0.1.0-gpu .                          # CUDA 13 / cuDNN 9 (default)
#   docker build -t bertserve:0.1.0-cpu --build-arg RUNTIME=cpu .  # hosts without a GPU
#
# Stages:
#   checkpoints   the fine-tuned checkpoints to export: demo/<name>/ from the build context.
#                 BuildKit only: export another folder with  --build-context checkpoints=/path/to/checkpoints
#   export        torch + transformers + onnx: checkpoints -> model repository (fused, each variant checked
#                 against PyTorch), pruned to what the runtime serves. Never part of the runtime image.
#   models        the model repository only. BuildKit only: ship an already exported repository, skipping
#                 the export stage entirely, with  --build-context models=/path/to/models
#   runtime-deps  the serving venv: the project's runtime dependencies plus onnxruntime-gpu[cuda,cudnn]
#                 (RUNTIME=gpu) or onnxruntime (RUNTIME=cpu). No torch, no pip.
#   runtime       python:3.11-slim + venv + app/ + models, non-root, read-only friendly (the final stage)
#
# Build arguments:
#   RUNTIME=gpu|cpu      which onnxruntime the image carries
#   PRECISIONS           the model variants the image carries; default: per model, what BERTSERVE_PRECISION=auto
#                        serves on that runtime (gpu: fp16 on CUDA + fp32 for a CPU fallback; cpu: int8, or
#                        fp32 where int8 failed validation). All of a list: --build-arg PRECISIONS=int8,fp32
#   PYTHON_IMAGE         the base image; pin it by digest for reproducible releases
#                        (--build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:...)
#   TORCH_INDEX_URL      an extra package index offering torch's CPU wheels (export stage only; the default
#                        index still serves everything else)
#   PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_TRUSTED_HOST
#                        a PyPI mirror or proxy for both pip stages (pip reads them from the environment);
#                        with Docker's predefined HTTP_PROXY / HTTPS_PROXY / NO_PROXY. Declared only in the
#                        build stages, so they never reach the final image or its history.
#
# The GPU image uses the CUDA 13 / cuDNN 9 libraries that onnxruntime-gpu[cuda,cudnn] installs from PyPI
# (the same pins `make install RUNTIME=gpu` tests); the host only provides the driver (>= 580) through the
# NVIDIA Container Toolkit.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --------------------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS python-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# --------------------------------------------------------------------------------------------------
FROM scratch AS checkpoints
COPY demo/ /

# --------------------------------------------------------------------------------------------------
# The labelled data the demo heads are scored on (their bertserve.json eval_data): empty unless given,
# BuildKit only, with  --build-context data=../shared/data  (or any builder: --build-arg EVAL_DATA_URL=URL
# of that folder served over HTTP). Without it int8 is not served by default.
FROM scratch AS data

# --------------------------------------------------------------------------------------------------
FROM python-base AS export
# torch's CPU wheels: the export runs on the build host's CPU; PyPI's default torch is a multi-GB CUDA build.
# An extra index: pip takes torch's +cpu build from it (the higher version), everything else from the default.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
ARG RUNTIME=gpu
ARG PRECISIONS=
# Where the evaluation data can be downloaded from instead (the legacy builder has no named contexts).
ARG EVAL_DATA_URL=
# Local checkpoints only: a build never reaches for a model hub.
ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1
WORKDIR /src
COPY pyproject.toml ./
# The export extra plus the CPU onnxruntime (fusion, fp16/int8 conversion and parity checks run on CPU).
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; extra = p['optional-dependencies']; print('\n'.join(p['dependencies'] + extra['export'] + extra['cpu']))" > /tmp/requirements.txt \
    && pip install --no-cache-dir --extra-index-url "${TORCH_INDEX_URL}" "$(grep '^torch==' /tmp/requirements.txt)" \
    && python -c "import sys, torch; sys.exit(0 if torch.version.cuda is None else 'torch is a CUDA build: TORCH_INDEX_URL must offer the CPU wheels')" \
    && pip install --no-cache-dir -r /tmp/requirements.txt
COPY app/ app/
COPY export/ export/
COPY scripts/serving_variants.py scripts/fetch_eval_data.py scripts/
COPY --from=checkpoints / /src/demo/
COPY --from=data / /src/data/
# Then each model keeps only the variant(s) BERTSERVE_PRECISION=auto serves on this runtime (an explicit
# PRECISIONS keeps all it names): cpu int8 where it is within its accuracy budget, else fp32; gpu fp16 + a
# CPU fallback.
RUN if [ -n "${EVAL_DATA_URL}" ]; then python scripts/fetch_eval_data.py "${EVAL_DATA_URL}" /src/demo /src/data; fi \
    && case "${RUNTIME}" in gpu) candidates=fp16,fp32;; cpu) candidates=int8,fp32;; *) echo "RUNTIME must be gpu or cpu, not '${RUNTIME}'" >&2; exit 1;; esac \
    && python -m export.repository --demo-dir /src/demo --data-dir /src/data --out /models --precisions "${PRECISIONS:-$candidates}" \
    && if [ -z "${PRECISIONS}" ]; then PYTHONPATH=/src python scripts/serving_variants.py --runtime "${RUNTIME}" /models; fi

# --------------------------------------------------------------------------------------------------
FROM scratch AS models
COPY --from=export /models/ /

# --------------------------------------------------------------------------------------------------
FROM python-base AS runtime-deps
# gpu: onnxruntime-gpu[cuda,cudnn] (CUDA 13, cuDNN 9 from PyPI); cpu: onnxruntime. Never both.
ARG RUNTIME=gpu
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_TRUSTED_HOST
WORKDIR /src
COPY pyproject.toml ./
# The base image's pip installs into the venv (--python): the venv itself carries no pip or setuptools.
# Not needed to serve, so not shipped: numpy's test suites, onnxruntime's offline tooling (graph optimizer,
# quantizer, converters: the export stage's job), and the model-hub client tokenizers pulls in (the server
# reads tokenizer.json files and never downloads).
RUN case "${RUNTIME}" in gpu|cpu) ;; *) echo "RUNTIME must be gpu or cpu, not '${RUNTIME}'" >&2; exit 1;; esac \
    && python -m venv --without-pip /opt/venv \
    && python -c "import sys, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies'][sys.argv[1]]))" "${RUNTIME}" > /tmp/requirements.txt \
    && pip --python /opt/venv/bin/python install --no-cache-dir -r /tmp/requirements.txt \
    && if /opt/venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"; then echo "torch must not be in the runtime image" >&2; exit 1; fi \
    && pip --python /opt/venv/bin/python uninstall -y -q huggingface-hub hf-xet \
    && site="$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && rm -rf "${site}"/numpy/*/tests "${site}"/onnxruntime/transformers "${site}"/onnxruntime/quantization "${site}"/onnxruntime/tools \
    && /opt/venv/bin/python -c "import onnxruntime, numpy, tokenizers, fastapi, uvicorn, prometheus_client, pydantic_settings"

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
