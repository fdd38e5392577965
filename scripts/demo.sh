#!/usr/bin/env bash
# hdms-healthd demo: a local PostgreSQL + PgBouncer + Redis stack on
# 127.0.0.1 (test/localstack.py) watched by build/hdms-healthd.
#
#   scripts/demo.sh                 install missing packages (as root), build,
#                                   start the stack and the daemon; Ctrl-C
#                                   stops everything and deletes the stack.
#   scripts/demo.sh --install-only  only the package step (`make demo` runs
#                                   it before building).
#
# HEALTHD_DEMO_PORT (default 8080) sets the daemon's port.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# One list for the demo and CI: scripts/debian-packages.
mapfile -t PACKAGES < <(grep -v '^#' scripts/debian-packages | grep -v '^$')

install_packages() {
  if ! command -v dpkg-query >/dev/null; then
    echo "demo: no dpkg-query (not Debian?); assuming the packages are there" >&2
    return 0
  fi
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]]; then
      missing+=("$p")
    fi
  done
  ((${#missing[@]} == 0)) && return 0
  if ((EUID != 0)); then
    echo "demo: missing packages; install them with:" >&2
    echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "demo: installing ${missing[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

case "${1:-}" in
  --install-only) install_packages; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--install-only]" >&2; exit 2 ;;
esac

install_packages

# Under `make demo` the binary is fresh already; run directly, rebuild.
if [[ -z "${MAKELEVEL:-}" || ! -x build/hdms-healthd ]]; then
  make --no-print-directory all
fi

port="${HEALTHD_DEMO_PORT:-8080}"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/hdms-demo.XXXXXX")"
chmod 755 "$tmp" # the servers run as `postgres` under root
stack_pid=""
daemon_pid=""

# Wait up to $2 tenths of a second for process $1 to end.
# shellcheck disable=SC2317 # called from the trap handler
wait_gone() {
  local i
  for ((i = 0; i < $2; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

# shellcheck disable=SC2317 # a trap handler
cleanup() {
  trap - EXIT INT TERM
  if [[ -n "$daemon_pid" ]]; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    wait_gone "$daemon_pid" 100 || kill -KILL "$daemon_pid" 2>/dev/null || true
  fi
  if [[ -n "$stack_pid" ]]; then
    kill -TERM "$stack_pid" 2>/dev/null || true
    wait_gone "$stack_pid" 400 || kill -KILL "$stack_pid" 2>/dev/null || true
    /usr/bin/python3 test/localstack.py down --dir "$tmp/stack" >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
  echo "demo: stopped, $tmp removed"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "demo: starting PostgreSQL, PgBouncer and Redis in $tmp/stack"
/usr/bin/python3 test/localstack.py up --dir "$tmp/stack" >"$tmp/localstack.out" 2>&1 &
stack_pid=$!
for ((i = 0; i < 600; i++)); do
  [[ -f "$tmp/stack/stack.env" ]] && break
  if ! kill -0 "$stack_pid" 2>/dev/null; then
    cat "$tmp/localstack.out" >&2
    echo "demo: the local stack did not start" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ ! -f "$tmp/stack/stack.env" ]]; then
  cat "$tmp/localstack.out" >&2
  echo "demo: the local stack did not start within 60 s" >&2
  exit 1
fi
# The stack's addresses only: drop any the caller's shell had set.
unset "${!POSTGRES_@}" "${!PGBOUNCER_@}" "${!REDIS_@}" "${!HEALTHD_PG_@}" HEALTHD_APP_USER
# shellcheck disable=SC1091 # written at run time by localstack.py
source "$tmp/stack/stack.env"
cat "$tmp/localstack.out"

base="http://127.0.0.1:$port"
echo
echo "demo: hdms-healthd on $base (Ctrl-C stops everything)"
printf '  %-44s %s\n' \
  "$base/status" "full report: JSON, or HTML in a browser (?format=html)" \
  "$base/readyz" "readiness (what Compose healthchecks ask)" \
  "$base/livez" "the daemon itself" \
  "$base/startupz" "every critical target has connected once" \
  "$base/metrics" "Prometheus metrics" \
  "$base/health/postgres" "one target; also pgbouncer, redis-cache," \
  "" "redis-channels, redis-celery"
echo "Try a fault from another shell and watch /status, e.g. a hung Redis:"
echo "  kill -STOP \$(cat $tmp/stack/redis/redis.pid); sleep 5; kill -CONT \$(cat $tmp/stack/redis/redis.pid)"
echo

build/hdms-healthd -l "127.0.0.1:$port" &
daemon_pid=$!
status=0
wait "$daemon_pid" || status=$?
daemon_pid=""
exit "$status"
