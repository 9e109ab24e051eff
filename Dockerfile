# syntax=docker/dockerfile:1
# Multi-stage build: the builder turns the project and its dependencies into wheels,
# the runtime installs only those wheels (no compiler, no pip cache, no sources).
# Build:  docker build --build-arg VCS_REF="$(git rev-parse HEAD)" -t cryptomus-exporter .
# Run:    docker run --rm -p 9841:9841 --read-only cryptomus-exporter --demo

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
# VERSION must equal exporter.__version__ (a test checks it); VCS_REF and BUILD_DATE come from CI.
ARG VERSION=0.1.0
ARG VCS_REF=unknown
ARG BUILD_DATE=unknown
LABEL org.opencontainers.image.title="cryptomus-exporter" \
      org.opencontainers.image.description="Prometheus exporter for the Cryptomus exchange: prices, order books, trades, balances, orders, fills and WebSocket health" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/cryptomus-exporter/cryptomus-exporter" \
      org.opencontainers.image.url="https://github.com/cryptomus-exporter/cryptomus-exporter" \
      org.opencontainers.image.documentation="https://github.com/cryptomus-exporter/cryptomus-exporter#readme" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
# No .pyc writes at run time: the root filesystem may be read-only (wheels are compiled at install).
# Buffers above 128 KiB (large frames) go to mmap and return to the OS when freed: the soak
# showed glibc heap fragmentation otherwise (+3.4 MiB over 10 min vs +0.7 MiB with it).
ENV PYTHONDONTWRITEBYTECODE=1 \
    MALLOC_MMAP_THRESHOLD_=131072 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
# The wheels are bind-mounted from the builder, so they never become a layer of this image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/*.whl \
    && pip check \
    && cryptomus-exporter --help > /dev/null
# 65534 is "nobody" in Debian; numeric so Kubernetes runAsNonRoot can verify it.
USER 65534:65534
WORKDIR /tmp
EXPOSE 9841
ENTRYPOINT ["cryptomus-exporter"]
