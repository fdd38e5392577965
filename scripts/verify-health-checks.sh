#!/usr/bin/env bash
# Docker's view of the stack: every service's container healthcheck
# (docker compose ps), then hdms-healthd's /readyz asked from inside its
# container (hdms-healthd probe: the image has no curl).
set -euo pipefail

prog=$(basename "$0")
services=(postgres pgbouncer redis hdms-healthd)

usage() {
  cat <<USAGE
Usage: $prog [--wait SECONDS]

Checks that the containers of ${services[*]}
are running and their Docker healthchecks report healthy, and that
hdms-healthd answers /readyz with 200 inside its container.  Exit status:
0 all healthy, 1 not (each service's state is printed), 2 usage error.

  --wait SECONDS  keep checking until healthy or SECONDS have passed
  -h, --help      this text

The Compose project is found as docker compose finds it (run from the
repository; COMPOSE_FILE, COMPOSE_PROJECT_NAME, COMPOSE_ENV_FILES apply).
DOCKER names the docker command (default: docker).
USAGE
}

wait_s=0
while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --wait)
      [[ "${2:-}" =~ ^[0-9]+$ ]] || { echo "$prog: --wait needs a number of seconds" >&2; exit 2; }
      wait_s=$2
      shift
      ;;
    *) echo "$prog: unknown argument $1; try --help" >&2; exit 2 ;;
  esac
  shift
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
docker=${DOCKER:-docker}
command -v "$docker" >/dev/null || { echo "$prog: '$docker' not found" >&2; exit 2; }

# check_once: print one line per service; return 0 when all are healthy.
check_once() {
  local ok=0 svc state health listen
  for svc in "${services[@]}"; do
    state=$("$docker" compose ps --all --format '{{.State}} {{.Health}}' "$svc" 2>/dev/null | head -n 1)
    read -r state health <<<"${state:-missing}"
    printf '%-14s %-10s %s\n' "$svc" "$state" "${health:--}"
    [[ "$state" == running && "$health" == healthy ]] || ok=1
  done
  if [[ "$ok" == 0 ]]; then
    listen=$("$docker" compose exec -T hdms-healthd printenv HEALTHD_LISTEN 2>/dev/null || true)
    if "$docker" compose exec -T hdms-healthd \
      hdms-healthd probe "http://127.0.0.1:${listen##*:}/readyz" >/dev/null 2>&1; then
      printf '%-14s %s\n' /readyz "200 (inside the container)"
    else
      printf '%-14s %s\n' /readyz "not ready"
      ok=1
    fi
  fi
  return "$ok"
}

deadline=$((SECONDS + wait_s))
until out=$(check_once); do
  if ((SECONDS >= deadline)); then
    printf '%s\n' "$out"
    echo "$prog: the stack is not healthy" >&2
    exit 1
  fi
  sleep 2
done
printf '%s\n' "$out"
