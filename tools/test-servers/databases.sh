#!/bin/bash
# Make sure a MariaDB and a PostgreSQL server answer on 127.0.0.1 for the
# functional database tests, at their default URLs:
#
#   mysql+pymysql://root@127.0.0.1/                    (port 3306)
#   postgresql+psycopg2://postgres@127.0.0.1/postgres  (port 5432)
#
# Usage: tools/test-servers/databases.sh
#
# A server that already answers is left alone, and so is one replaced by
# $PRECACHE_TEST_MYSQL_URL or $PRECACHE_TEST_POSTGRESQL_URL. Otherwise, on
# Debian or Ubuntu (as root, or through sudo), the script installs
# mariadb-server / postgresql (keeping the packages from starting their
# services), starts the servers without systemd and lets root (MariaDB) and
# postgres (PostgreSQL) log in over 127.0.0.1 without a password. This
# opens both servers to every local user: it is meant for test and CI
# machines. Running it again changes nothing.

set -euo pipefail

WAIT_SECONDS=${WAIT_SECONDS:-60}
MYSQL_SOCKET_DIR=/run/mysqld
MARIADBD=/usr/sbin/mariadbd
HBA_MARKER='# precache functional tests: loopback without password'
HBA_LINE='host    all    all    127.0.0.1/32    trust'

say() {
    echo "databases.sh: $*"
}

die() {
    echo "databases.sh: $*" >&2
    exit 1
}

mysql_client() {
    command -v mariadb || command -v mysql || true
}

mysql_answers() {
    local client
    client=$(mysql_client)
    [ -n "$client" ] || return 1
    # --no-defaults: no password or socket from a my.cnf; what the URL has.
    "$client" --no-defaults --protocol=TCP -h 127.0.0.1 -P 3306 -u root \
        --connect-timeout=3 -e 'SELECT 1' >/dev/null 2>&1
}

pg_answers() {
    command -v psql >/dev/null || return 1
    psql -X -At -c 'SELECT 1' \
        'host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3' \
        >/dev/null 2>&1
}

port_open() {
    timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# wait_for COMMAND...: run COMMAND until it succeeds, WAIT_SECONDS at most.
wait_for() {
    local i
    for ((i = 0; i < WAIT_SECONDS; i++)); do
        "$@" && return 0
        sleep 1
    done
    return 1
}

APT_UPDATED=""
apt_install() {
    say "installing $*"
    # Keep the packages' own services from starting: this script starts
    # the servers itself, without systemd.
    local policy=/usr/sbin/policy-rc.d made_policy="" rc=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod +x "$policy"
        made_policy=1
    fi
    if [ -z "$APT_UPDATED" ]; then
        apt-get update -qq || rc=$?
        APT_UPDATED=1
    fi
    if [ $rc -eq 0 ]; then
        # A UTF-8 locale for the PostgreSQL cluster that the package
        # creates (in the C locale its template1 would be SQL_ASCII).
        LANG=C.UTF-8 LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "$@" || rc=$?
    fi
    if [ -n "$made_policy" ]; then
        rm -f "$policy"
    fi
    return $rc
}

# ---------------------------------------------------------------------------
# MariaDB
# ---------------------------------------------------------------------------

mariadb_socket_answers() {
    "$(mysql_client)" --protocol=socket -u root -e 'SELECT 1' >/dev/null 2>&1
}

mariadb_start() {
    if mariadb_socket_answers; then
        say "MariaDB: already running"
        return 0
    fi
    if [ ! -d /var/lib/mysql/mysql ]; then
        say "MariaDB: initialising /var/lib/mysql"
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql \
            --skip-test-db >/dev/null
    fi
    install -d -o mysql -g mysql -m 0755 "$MYSQL_SOCKET_DIR"
    install -d -o mysql -g adm -m 2750 /var/log/mysql
    say "MariaDB: starting $MARIADBD"
    start-stop-daemon --start --oknodo --background --exec "$MARIADBD" -- \
        --user=mysql --log-error=/var/log/mysql/error.log
    if ! wait_for mariadb_socket_answers; then
        tail -n 20 /var/log/mysql/error.log >&2 || true
        die "MariaDB: no answer on $MYSQL_SOCKET_DIR after ${WAIT_SECONDS}s (log above)"
    fi
}

mariadb_allow_root_over_tcp() {
    local client
    client=$(mysql_client)
    # Debian's root@localhost logs in through the unix socket only.
    # Connections from 127.0.0.1 match root@127.0.0.1 (skip-name-resolve)
    # or root@localhost: allow both without a password.
    say "MariaDB: root@127.0.0.1 without password"
    "$client" --protocol=socket -u root -e "
        CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
        GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
    mysql_answers && return 0
    say "MariaDB: root@localhost by unix socket or without password"
    "$client" --protocol=socket -u root -e "
        ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket
            OR mysql_native_password USING PASSWORD('');"
}

mariadb_setup() {
    if [ -n "${PRECACHE_TEST_MYSQL_URL:-}" ]; then
        say "MariaDB: PRECACHE_TEST_MYSQL_URL is set, nothing to do"
        return 0
    fi
    if mysql_answers; then
        say "MariaDB: already answers at mysql+pymysql://root@127.0.0.1/"
        return 0
    fi
    if [ ! -x "$MARIADBD" ]; then
        if port_open 3306; then
            # A server this machine did not install (a container, ...).
            [ -n "$(mysql_client)" ] || apt_install mariadb-client
            mysql_answers && return 0
            die "MariaDB: something listens on 127.0.0.1:3306 but root" \
                "cannot log in without password; set PRECACHE_TEST_MYSQL_URL"
        fi
        apt_install mariadb-server
    fi
    mariadb_start
    mariadb_allow_root_over_tcp
    wait_for mysql_answers ||
        die "MariaDB: root@127.0.0.1:3306 cannot log in without password"
    say "MariaDB: answers at mysql+pymysql://root@127.0.0.1/"
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

# The cluster to use, "VERSION PORT STATUS": the one on port 5432, else the
# newest "main".
pg_cluster() {
    pg_lsclusters --no-header | awk '
        $3 == 5432 { print $1, $3, $4; found = 1; exit }
        $2 == "main" { last = $1 " " $3 " " $4 }
        END { if (!found && last) print last }'
}

# pg_allow_loopback HBA_FILE: trust 127.0.0.1; HBA_CHANGED=1 if it did not.
HBA_CHANGED=""
pg_allow_loopback() {
    local hba=$1
    if grep -qxF "$HBA_MARKER" "$hba"; then
        return 0
    fi
    say "PostgreSQL: trust for 127.0.0.1 in $hba"
    # First match wins: the line goes above Debian's scram-sha-256 ones.
    # Written in place, so the file keeps its owner and mode.
    local old
    old=$(cat "$hba")
    printf '%s\n%s\n\n%s\n' "$HBA_MARKER" "$HBA_LINE" "$old" >"$hba"
    HBA_CHANGED=1
}

pg_setup() {
    if [ -n "${PRECACHE_TEST_POSTGRESQL_URL:-}" ]; then
        say "PostgreSQL: PRECACHE_TEST_POSTGRESQL_URL is set, nothing to do"
        return 0
    fi
    if pg_answers; then
        say "PostgreSQL: already answers at" \
            "postgresql+psycopg2://postgres@127.0.0.1/postgres"
        return 0
    fi
    if ! command -v pg_lsclusters >/dev/null; then
        if port_open 5432; then
            command -v psql >/dev/null || apt_install postgresql-client
            pg_answers && return 0
            die "PostgreSQL: something listens on 127.0.0.1:5432 but" \
                "postgres cannot log in; set PRECACHE_TEST_POSTGRESQL_URL"
        fi
        apt_install postgresql
    fi
    local cluster version port status
    cluster=$(pg_cluster)
    if [ -z "$cluster" ]; then
        version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 \
            -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)
        [ -n "$version" ] || die "PostgreSQL: no server in /usr/lib/postgresql"
        say "PostgreSQL: creating cluster $version/main"
        LANG=C.UTF-8 LC_ALL=C.UTF-8 pg_createcluster --port 5432 \
            "$version" main >/dev/null
        cluster=$(pg_cluster)
    fi
    read -r version port status <<<"$cluster"
    [ "$port" = 5432 ] ||
        die "PostgreSQL: cluster $version/main listens on port $port; set" \
            "PRECACHE_TEST_POSTGRESQL_URL=postgresql+psycopg2://postgres@127.0.0.1:$port/postgres"
    pg_allow_loopback "/etc/postgresql/$version/main/pg_hba.conf"
    if [ "$status" = online ]; then
        if [ -n "$HBA_CHANGED" ]; then
            say "PostgreSQL: reloading $version/main"
            pg_ctlcluster --skip-systemctl-redirect "$version" main reload
        fi
    else
        say "PostgreSQL: starting $version/main"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
    fi
    wait_for pg_answers ||
        die "PostgreSQL: postgres@127.0.0.1:5432 does not answer after" \
            "${WAIT_SECONDS}s (see /var/log/postgresql/postgresql-$version-main.log)"
    say "PostgreSQL: answers at postgresql+psycopg2://postgres@127.0.0.1/postgres"
}

# ---------------------------------------------------------------------------

if { [ -n "${PRECACHE_TEST_MYSQL_URL:-}" ] || mysql_answers; } &&
        { [ -n "${PRECACHE_TEST_POSTGRESQL_URL:-}" ] || pg_answers; }; then
    mariadb_setup
    pg_setup
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    say "root needed to install or start a server: running through sudo"
    exec sudo --preserve-env=PRECACHE_TEST_MYSQL_URL,PRECACHE_TEST_POSTGRESQL_URL,WAIT_SECONDS \
        -- "$0" "$@"
fi
mariadb_setup
pg_setup
