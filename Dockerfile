# Serving image: gunicorn + Flask on port 5005, non-root, runtime dependencies only.
# A release image bakes one exact registered version and serves it (MODEL_VERSION), with or
# without a reachable registry; without MODEL_VERSION the image follows $MODEL_ALIAS instead.
#   docker build -t imdb-sentiment .                                    # follows the alias
#   docker build --build-arg MODEL_VERSION=7 \
#     --secret id=mlflow_user,env=MLFLOW_TRACKING_USERNAME \
#     --secret id=mlflow_password,env=MLFLOW_TRACKING_PASSWORD \
#     --secret id=mlflow_uri,env=MLFLOW_TRACKING_URI -t imdb-sentiment:v7 .   # release: version 7
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
# A C compiler for the scorer's kernel (runtime/_kernel.c), in this stage only: the runtime
# stage copies the built venv, not the compiler. Not pinned to versions: the base image pins the
# Debian release, and a pinned libc6-dev would vanish from the mirror at its next security update
# (the build would break next month); what it builds is checked below.
# hadolint ignore=DL3008
RUN apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# As every venv of the project (Makefile `venv`): the pinned installer, then exactly the hashed
# pins of serve.txt without resolving, then a consistency check.
COPY requirements/bootstrap.txt requirements/serve.txt requirements/
RUN pip install --require-hashes --no-deps -r requirements/bootstrap.txt \
    && pip install --require-hashes --no-deps -r requirements/serve.txt \
    && pip check
COPY pyproject.toml setup.py README.md ./
COPY src ./src
# Built by the pinned setuptools above (no isolated build env fetching the newest one).
# The installer leaves with the build: the runtime stage copies a venv without pip/setuptools.
RUN pip install --no-deps --no-build-isolation . \
    && pip uninstall -q -y setuptools pip \
    && find /opt/venv -name "__pycache__" -type d -prune -exec rm -rf {} +
# The kernel is optional where a machine has no compiler; this image has one, so it must be in.
RUN python -c "from imdb_sentiment.runtime.kernel import KERNEL; assert KERNEL == 'compiled'"

# Release images: fetch the exact registered version (with its compiled scorer) at build time.
FROM build AS model
ARG MODEL_NAME=imdb-sentiment
ARG MODEL_VERSION=""
ENV MODEL_CACHE_DIR=/model-cache
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Registry URI and credentials arrive as build secrets (never ARG/ENV: they stay out of the image).
RUN --mount=type=secret,id=mlflow_uri,required=false \
    --mount=type=secret,id=mlflow_user,required=false \
    --mount=type=secret,id=mlflow_password,required=false \
    mkdir -p /model-cache \
    && if [ -n "$MODEL_VERSION" ]; then \
         MLFLOW_TRACKING_URI="$(cat /run/secrets/mlflow_uri)" \
         MLFLOW_TRACKING_USERNAME="$(cat /run/secrets/mlflow_user 2>/dev/null || true)" \
         MLFLOW_TRACKING_PASSWORD="$(cat /run/secrets/mlflow_password 2>/dev/null || true)" \
         imdb-sentiment fetch-model --uri "models:/$MODEL_NAME/$MODEL_VERSION"; \
       fi

FROM ${PYTHON_IMAGE} AS runtime
ARG MODEL_NAME=imdb-sentiment
ARG MODEL_VERSION=""
LABEL org.opencontainers.image.title="imdb-sentiment" \
      org.opencontainers.image.description="IMDB review sentiment API and web page" \
      io.imdb-sentiment.model.name="${MODEL_NAME}" \
      io.imdb-sentiment.model.version="${MODEL_VERSION}"
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app \
    && mkdir -p /app/model-cache /app/data && chown 10001:10001 /app/model-cache /app/data
COPY --from=build /opt/venv /opt/venv
# Read-only in the image; the service copies it into the writable MODEL_CACHE_DIR at start, so
# a tmpfs or emptyDir mounted there hides nothing.
COPY --from=model /model-cache /app/model-baked
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=5005 \
    GRPC_PORT=8081 \
    MODEL_NAME=${MODEL_NAME} \
    MODEL_VERSION=${MODEL_VERSION} \
    MODEL_BAKED_DIR=/app/model-baked \
    MODEL_CACHE_DIR=/app/model-cache \
    DATABASE_URL=sqlite:////app/data/predictions.db \
    PREDICTION_SPOOL_DIR=/app/data/spool \
    PROMETHEUS_MULTIPROC_DIR=/tmp/metrics \
    MPLCONFIGDIR=/tmp/matplotlib
WORKDIR /app
USER 10001:10001
EXPOSE 5005 8081
# Healthy means "can serve": /readyz (a model loaded, a usable store schema, the gRPC front up),
# as Kubernetes' readiness probe asks; /healthz only says the server answers. Compose's
# `depends_on: service_healthy` and `docker ps` read this.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '5005') + '/readyz', timeout=2)"]
# `docker run IMAGE` serves; `docker run IMAGE db upgrade` is the release step's migration (the
# Kubernetes Job and compose's migrate service run the same command).
ENTRYPOINT ["imdb-sentiment"]
CMD ["serve"]
