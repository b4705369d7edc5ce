# The image the manifests in deploy/ run. Not built by the test suite (no container engine there);
# the manifests are tested by applying them to a real API server and running the service with exactly
# their ServiceAccount's permissions.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY app.py gunicorn.conf.py ./
COPY config/ config/
COPY controllers/ controllers/
COPY routers/ routers/
COPY utils/ utils/
COPY initcontroller/ initcontroller/
RUN pip install -c constraints.txt . \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin krm

USER 10001:10001
EXPOSE 8080
# The root filesystem is read-only in the Deployment: /tmp is an emptyDir (see deploy/deployment.yaml).
CMD ["gunicorn", "-c", "gunicorn.conf.py", "app:app"]
