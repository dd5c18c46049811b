# syntax=docker/dockerfile:1
# The Polaris service image: `polaris` is the entry point, so the same image runs `serve`,
# `worker`, `migrate` and the user commands. No secret is baked in: they come from the
# environment at run time (see docker-compose.yml and .env.example).

FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/polaris
# Dependencies first, pinned by constraints.txt, so a code change does not reinstall them.
COPY pyproject.toml constraints.txt README.md ./
COPY app ./app
COPY statemachines ./statemachines
COPY simulator ./simulator
RUN /opt/polaris/bin/pip install --no-cache-dir --disable-pip-version-check \
        -c constraints.txt .

FROM python:3.11-slim
RUN useradd --system --create-home --home-dir /var/lib/polaris --uid 10001 polaris
COPY --from=build /opt/polaris /opt/polaris
ENV PATH=/opt/polaris/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    POLARIS_ENV=production \
    POLARIS_DATA_DIR=/var/lib/polaris \
    LOG_JSON=true
USER polaris
WORKDIR /var/lib/polaris
EXPOSE 8000
# Liveness only; readiness (database and Redis reachable) is /readyz, checked by compose.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["polaris"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
