# syntax=docker/dockerfile:1.7
# Serving image: gunicorn + Flask on port 5005, non-root, runtime dependencies only.
#   docker build -t imdb-sentiment .                                    # model from the registry at start
#   docker build --build-arg MODEL_URI=models:/imdb-sentiment@production \
#     --secret id=mlflow_user,env=MLFLOW_TRACKING_USERNAME \
#     --secret id=mlflow_password,env=MLFLOW_TRACKING_PASSWORD \
#     --build-arg MLFLOW_TRACKING_URI=https://mlflow.example.com -t imdb-sentiment:baked .   # baked in
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements/serve.txt requirements/serve.txt
RUN pip install --no-cache-dir -r requirements/serve.txt
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir --no-deps . \
    && find /opt/venv -name "__pycache__" -type d -prune -exec rm -rf {} +

# Optional: fetch a registered model at build time into the model cache.
FROM build AS model
ARG MODEL_URI=""
ARG MLFLOW_TRACKING_URI=""
ENV MODEL_CACHE_DIR=/model-cache
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Credentials arrive as build secrets (never as ARG/ENV, so they stay out of the image).
RUN --mount=type=secret,id=mlflow_user,required=false \
    --mount=type=secret,id=mlflow_password,required=false \
    mkdir -p /model-cache \
    && if [ -n "$MODEL_URI" ]; then \
         MLFLOW_TRACKING_USERNAME="$(cat /run/secrets/mlflow_user 2>/dev/null || true)" \
         MLFLOW_TRACKING_PASSWORD="$(cat /run/secrets/mlflow_password 2>/dev/null || true)" \
         imdb-sentiment fetch-model --uri "$MODEL_URI"; \
       fi

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="imdb-sentiment" \
      org.opencontainers.image.description="IMDB review sentiment API and web page"
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
COPY --from=model --chown=10001:10001 /model-cache /app/model-cache
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=5005 \
    MODEL_CACHE_DIR=/app/model-cache \
    PROMETHEUS_MULTIPROC_DIR=/tmp/metrics \
    MPLCONFIGDIR=/tmp/matplotlib
WORKDIR /app
USER 10001:10001
EXPOSE 5005
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '5005') + '/healthz', timeout=2)"]
ENTRYPOINT ["imdb-sentiment", "serve"]
