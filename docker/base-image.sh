#!/bin/sh
# A local stand-in for python:3.11-slim-bookworm, for machines that cannot pull from an image
# registry: Debian bookworm (minbase) with its Python 3.11, `python` on PATH, venv and CA
# certificates, imported as a local image. Needs root, mmdebstrap and podman (or docker).
#   docker/base-image.sh [IMAGE]      (default localhost/mixup-studies/python:3.11-bookworm)
# Then build with PYTHON_IMAGE=<that name> (make images does it when it made the image).
set -eu
IMAGE="${1:-localhost/mixup-studies/python:3.11-bookworm}"
SUITE="${DEBIAN_SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
ENGINE="${ENGINE:-$(command -v podman || command -v docker)}"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/mixup-base.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# python-is-python3: the official image has `python`; the Dockerfiles and healthchecks call it.
mmdebstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
    --aptopt='Acquire::Retries "3"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$SUITE" "$work/rootfs.tar" \
    "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY $SUITE-security main"
"$ENGINE" import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    "$work/rootfs.tar" "$IMAGE"
"$ENGINE" run --rm "$IMAGE" python -c 'import sys, venv, ssl; print(sys.version)'
