#!/usr/bin/env bash
# Run precache's whole test suite on a fresh Debian/Ubuntu machine:
# installs the system packages and tox, then runs style checks, the
# documentation build (warnings as errors), unit tests,
# the sample-config drift check and the functional suite against real
# RabbitMQ, Glance, Swift and qemu-img started by the test harness.
#
#   tools/run-tests.sh            # everything
#   tools/run-tests.sh py3        # only the given tox environments
set -euo pipefail
cd "$(dirname "$0")/.."

# systemd: its systemd-analyze verifies etc/systemd/*.service (a unit test).
APT_PACKAGES="python3-venv python3-dev gcc git rabbitmq-server qemu-utils
  memcached zstd curl squid systemd redis-server"

install_system_packages() {
    local missing=()
    for pkg in $APT_PACKAGES; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null |
            grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "Installing system packages: ${missing[*]}"
    # The tests start private servers on their own ports: keep the packages'
    # system services (rabbitmq-server, memcached) from being started.
    local policy=/usr/sbin/policy-rc.d made_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
        $sudo chmod +x "$policy"
        made_policy=1
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" || {
        [ -n "$made_policy" ] && $sudo rm -f "$policy"
        return 1
    }
    [ -n "$made_policy" ] && $sudo rm -f "$policy"
    return 0
}

install_tox() {
    if [ ! -x .tox-bootstrap/bin/tox ]; then
        python3 -m venv .tox-bootstrap
        .tox-bootstrap/bin/pip install -q --upgrade pip
        .tox-bootstrap/bin/pip install -q 'tox>=4'
    fi
}

install_system_packages
install_tox
envs="${*:-pep8,docs,py3,functional}"
if [[ ",${envs// /,}," == *,functional,* ]]; then
    # The database tests need MariaDB and PostgreSQL; here they must run,
    # not skip.
    tools/test-servers/databases.sh
    export PRECACHE_REQUIRE_DATABASES=1
fi
exec .tox-bootstrap/bin/tox -e "$envs"
