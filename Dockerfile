# syntax=docker/dockerfile:1
# One image for every service: `ats <command>` picks the service (gateway today;
# triggers, trading groups and execution as they land).

# ---------------------------------------------------------------- builder
FROM python:3.12-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, in their own layer, so a code change does not reinstall them.
# The lock pins the dev tools too; using it as constraints on the runtime
# requirements installs exactly the locked versions of what the services need,
# and keeps pytest, mypy and ruff out of the image.
COPY pyproject.toml requirements.lock ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > runtime.txt \
 && pip install -r runtime.txt -c requirements.lock

COPY README.md ./
COPY ats ./ats
COPY shared ./shared
COPY gateway ./gateway
COPY triggers ./triggers
COPY trading_groups ./trading_groups
COPY execution ./execution
RUN pip install --no-deps . && ats --help > /dev/null

# ---------------------------------------------------------------- runtime
FROM python:3.12-slim

RUN groupadd --system --gid 10001 ats \
 && useradd --system --uid 10001 --gid ats --home-dir /data --no-create-home ats \
 && mkdir /data \
 && chown ats:ats /data

COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ATS_DATA_DIR=/data \
    ATS_LOG_JSON=true

# Embedded state (the SQLite database and generated keys when no PostgreSQL is set).
VOLUME ["/data"]
WORKDIR /data
USER ats
EXPOSE 8000

# For the gateway; services without an HTTP port override or disable it in compose.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('ATS_PORT', '8000'), timeout=2)"

ENTRYPOINT ["ats"]
CMD ["gateway", "--host", "0.0.0.0", "--port", "8000"]
