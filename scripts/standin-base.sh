#!/usr/bin/env bash
# A local stand-in for the Dockerfile's base image (python:3.11-slim-bookworm) where Docker Hub cannot be
# reached: Debian bookworm (debootstrap --variant=minbase) with python3.11, venv, pip and this machine's CA
# certificates, imported into the local Docker engine as
#
#   bertserve-standin/python:3.11-slim-bookworm
#
# It is never pushed and never named as the official image: the image test passes it with
# --build-arg PYTHON_IMAGE=... and builds the Dockerfile unmodified. The Debian mirror is the one this
# machine's apt uses (read at run time). Idempotent: an image made by this same script is reused, and the
# debootstrapped root filesystem is kept as a tarball under $STANDIN_CACHE so a lost image re-imports in
# seconds.
#
#   bash scripts/standin-base.sh            # prints the tag on stdout
set -euo pipefail

TAG=${STANDIN_TAG:-bertserve-standin/python:3.11-slim-bookworm}
CACHE=${STANDIN_CACHE:-/var/cache/bertserve-standin}
SUITE=bookworm
PACKAGES=python3.11,python3-venv,python3-pip,python-is-python3,ca-certificates

log() { printf 'standin-base: %s\n' "$*" >&2; }

recipe="$(sha256sum "$0" | cut -c1-16)"
if [ "$(docker image inspect -f '{{ index .Config.Labels "io.bertserve.standin-recipe" }}' "$TAG" 2>/dev/null)" = "$recipe" ]; then
    echo "$TAG"
    exit 0
fi

tarball="$CACHE/rootfs-$SUITE-$recipe.tar"
if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null 2>&1 || {
        log "debootstrap is not installed (apt-get install debootstrap)"
        exit 1
    }
    # The machine's own Debian mirror for this suite, as its apt is configured.
    mirror="$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' | awk -v s="$SUITE" '$2 == s { print $1; exit }')"
    if [ -z "$mirror" ]; then
        log "no apt source for Debian $SUITE on this machine (apt-get update first?)"
        exit 1
    fi
    rootfs="$(mktemp -d)"
    cleanup() {
        for mount in proc sys dev/pts dev; do umount "$rootfs/$mount" 2>/dev/null || true; done
        rm -rf --one-file-system "$rootfs" "$rootfs.log"
    }
    trap cleanup EXIT
    log "debootstrap --variant=minbase $SUITE from this machine's mirror (about a minute)"
    started=$SECONDS
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
        tail -n 30 "$rootfs.log" >&2
        exit 1
    }
    # As in the official image: pip may install into the system interpreter (no PEP 668 marker).
    rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
    # This machine's CA bundle: its egress may be a TLS-inspecting proxy with a CA of its own.
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* \
        "$rootfs"/usr/share/man/*
    mkdir -p "$CACHE"
    tar -C "$rootfs" --numeric-owner --one-file-system -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
    find "$CACHE" -name 'rootfs-*.tar' ! -name "$(basename "$tarball")" -delete
    log "root filesystem ready in $((SECONDS - started)) s ($(du -h "$tarball" | cut -f1))"
fi

docker import \
    --change "LABEL io.bertserve.standin-recipe=$recipe" \
    --change 'LABEL org.opencontainers.image.description="local stand-in for python:3.11-slim-bookworm (Debian packages); never pushed"' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    "$tarball" "$TAG" >/dev/null
log "imported $TAG"
echo "$TAG"
