# MOSAIC API image. Build: docker build -t mosaic .   Run: see docs/deployment.md.
#
# Two stages: the first installs the locked requirements (every dependency pinned, hashes
# checked) into a virtualenv, the second copies that virtualenv and the code onto a clean slim
# image, without pip's caches or build leftovers.

FROM python:3.11.14-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.lock /tmp/requirements.lock
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock


FROM python:3.11.14-slim-bookworm AS runtime

# Production by default: the app then refuses to start without a real SECRET_KEY.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ENVIRONMENT=production \
    LOG_FORMAT=json \
    DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=8000

# A fixed, unprivileged uid, so the data volume's ownership is predictable across rebuilds.
# /data is created here, owned by that user, so a fresh named volume mounted on it inherits it.
RUN groupadd --system --gid 10001 mosaic \
    && useradd --system --uid 10001 --gid mosaic --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin mosaic \
    && mkdir -p /data/objects \
    && chown -R mosaic:mosaic /data

WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY main.py alembic.ini ./
COPY alembic ./alembic
COPY src ./src
RUN python -m compileall -q /app

# Numeric, so runtimes can verify it is not root (e.g. Kubernetes runAsNonRoot).
USER 10001:10001
EXPOSE 8000

# Liveness only (/healthz); the standard library does the request, so no curl in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

# `python main.py serve` runs the Alembic migrations, then uvicorn. Other commands reuse the
# entry point: docker run ... mosaic migrate | create-admin --email E
ENTRYPOINT ["python", "main.py"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"]
