#!/bin/bash
# Install the real OpenStack services used by the functional tests.
#
# Usage: tools/test-servers/install.sh DEST
#
# Each service gets its own virtualenv under DEST (DEST/glance, DEST/swift)
# so that its dependencies never mix with the project's own.  A venv that
# holds a ".installed" stamp is left alone, so the script is idempotent and
# cheap to re-run; delete the venv directory to force a reinstall.
#
# The functional tests find DEST through $PRECACHE_TEST_SERVERS
# (default: <repo>/.tox/test-servers).

set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 DEST" >&2
    exit 2
fi

DEST=$1
PYTHON=${PYTHON:-python3}

mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd)

# make_venv NAME PACKAGE...
#   Create DEST/NAME with PACKAGE... from PyPI unless already stamped.
make_venv() {
    local name=$1
    shift
    local venv=$DEST/$name
    if [[ -e $venv/.installed ]]; then
        echo "$name: already installed in $venv"
        return 0
    fi
    echo "$name: installing $* into $venv"
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "$@"
    "$venv/bin/python" -m pip freeze > "$venv/.installed"
    echo "$name: done"
}

# ---------------------------------------------------------------------------
# Glance: glance-api is run as glance.wsgi.api:application under gunicorn.
# ---------------------------------------------------------------------------
install_glance() {
    make_venv glance glance gunicorn
}

# ---------------------------------------------------------------------------
# Swift: proxy, account, container and object servers.
# ---------------------------------------------------------------------------
install_swift() {
    make_venv swift swift
}

install_glance
install_swift
