#!/bin/bash
# Makes docs/dashboard.png, the README's screenshot of the /status dashboard.
#
# Starts a throwaway PostgreSQL + PgBouncer + Redis stack on free 127.0.0.1
# ports (test/localstack.py), runs the release daemon build/hdms-healthd
# against it, lets a few rounds of checks and one short Redis stall (a
# CLIENT PAUSE longer than the check timeout: an outage and a reconnection)
# fill the history and the events timeline (a few Celery messages queued
# show in the measured values), takes a headless Chromium screenshot of
# /status?format=html and tears everything down.
#
# Usage: scripts/screenshot.sh [OUTPUT.png]     (default docs/dashboard.png)
# Needs: chromium, postgresql-15, pgbouncer, redis-server, redis-tools, curl
# (all in scripts/debian-packages).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/docs/dashboard.png}
case $out in /*) ;; *) out=$PWD/$out ;; esac
bin=$root/build/hdms-healthd
width=1280
height=1000

die() {
        echo "screenshot.sh: $*" >&2
        exit 1
}

for tool in chromium curl redis-cli python3; do
        command -v "$tool" >/dev/null || die "$tool not found (see scripts/debian-packages)"
done
if [[ ! -x $bin ]]; then
        make -C "$root" --no-print-directory all
fi

# A short path the postgres user can traverse (servers drop root to it).
base=/tmp
if [[ -w /dev/shm ]]; then
        base=/dev/shm
fi
work=$(mktemp -d "$base/hdms-shot.XXXXXX")
chmod 755 "$work"
stack_pid=
daemon_pid=

cleanup() {
        local rc=$?
        trap - EXIT INT TERM
        if [[ -n $daemon_pid ]]; then
                kill -TERM "$daemon_pid" 2>/dev/null || true
                wait "$daemon_pid" 2>/dev/null || true
        fi
        if [[ -n $stack_pid ]]; then
                kill -TERM "$stack_pid" 2>/dev/null || true
                wait "$stack_pid" 2>/dev/null || true
        fi
        /usr/bin/python3 "$root/test/localstack.py" down --dir "$work/stack" >/dev/null 2>&1 || true
        rm -rf "$work"
        exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_until SECONDS COMMAND...: poll COMMAND every 0.1 s.
wait_until() {
        local deadline=$((SECONDS + $1))
        shift
        until "$@"; do
                ((SECONDS < deadline)) || return 1
                sleep 0.1
        done
}

free_port() {
        /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

echo "screenshot.sh: starting the local stack in $work/stack" >&2
/usr/bin/python3 "$root/test/localstack.py" up --dir "$work/stack" >"$work/stack.out" 2>&1 &
stack_pid=$!
if ! wait_until 60 test -s "$work/stack/stack.env"; then
        cat "$work/stack.out" >&2
        die "the local stack did not come up"
fi
# shellcheck source=/dev/null
source "$work/stack/stack.env"
export POSTGRES_HOST POSTGRES_PORT POSTGRES_DB POSTGRES_USER POSTGRES_PASSWORD
export HEALTHD_PG_USER HEALTHD_PG_PASSWORD HEALTHD_APP_USER PGBOUNCER_HOST PGBOUNCER_PORT
export PGBOUNCER_ADMIN_USER PGBOUNCER_ADMIN_PASSWORD REDIS_HOST REDIS_PORT

port=$(free_port)
# Faster rounds than the default, so the sparklines fill in seconds; no
# name lookups leave loopback (a closed local port as the nameserver).
HEALTHD_INTERVAL=500ms HEALTHD_TIMEOUT=300ms HEALTHD_RETRY_INTERVAL=100ms \
        HEALTHD_NAMESERVERS=127.0.0.1:9 \
        "$bin" -l "127.0.0.1:$port" >"$work/healthd.log" 2>&1 &
daemon_pid=$!
url=http://127.0.0.1:$port

ready() { curl -fs -o /dev/null --max-time 1 "$url/readyz"; }
if ! wait_until 20 ready; then
        cat "$work/healthd.log" >&2
        die "the daemon did not become ready"
fi
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" -n 2 RPUSH celery job1 job2 job3 >/dev/null
sleep 4
# One Redis stall longer than the check timeout: the three Redis targets go
# down and come back, which the reconnects and history columns then show.
redis-cli -h 127.0.0.1 -p "$REDIS_PORT" CLIENT PAUSE 1500 ALL >/dev/null
sleep 2
wait_until 20 ready || die "the daemon did not become ready again after the stall"
sleep 8

mkdir -p "$(dirname "$out")"
profile=$work/chromium
mkdir -p "$profile"
HOME=$profile DBUS_SESSION_BUS_ADDRESS=disabled: timeout 60 chromium \
        --headless --no-sandbox --disable-gpu --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --disable-quic --no-proxy-server --hide-scrollbars \
        --host-resolver-rules='MAP * ~NOTFOUND , EXCLUDE 127.0.0.1' \
        --user-data-dir="$profile" --window-size="$width,$height" \
        --screenshot="$out" "$url/status?format=html" >"$work/chromium.log" 2>&1 ||
        {
                tail -20 "$work/chromium.log" >&2
                die "chromium failed"
        }
[[ -s $out ]] || die "no screenshot written"
echo "screenshot.sh: wrote $out" >&2
