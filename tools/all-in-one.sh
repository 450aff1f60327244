#!/usr/bin/env bash
# See precache work end to end on a fresh Debian/Ubuntu machine: installs
# qemu-utils and a virtualenv with precache, then runs precache-all-in-one
# (no broker, no Glance: a sample qcow2 image is listed, fetched, compressed,
# served over HTTP, fanned out to three agents, downloaded, verified,
# converted to raw and landed in each host's Nova _base).
#
#   tools/all-in-one.sh [precache-all-in-one options, e.g. --hosts 5]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v qemu-img >/dev/null || ! python3 -c 'import venv' 2>/dev/null
then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        --no-install-recommends qemu-utils python3-venv
fi
if [ ! -x .venv-all-in-one/bin/precache-all-in-one ]; then
    python3 -m venv .venv-all-in-one
    .venv-all-in-one/bin/pip install -q --upgrade pip
    .venv-all-in-one/bin/pip install -q .
fi
exec .venv-all-in-one/bin/precache-all-in-one "$@"
