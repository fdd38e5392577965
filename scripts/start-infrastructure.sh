#!/usr/bin/env bash
# Starts the HDMS stack (PostgreSQL, PgBouncer, Redis, hdms-healthd) with
# docker compose and waits until every healthcheck passes.
set -euo pipefail

prog=$(basename "$0")

usage() {
  cat <<USAGE
Usage: $prog [--dev | --prod] [--no-build] [--timeout SECONDS] [-- UP_ARGS...]

Runs, from the repository root:
  docker compose up -d --build --wait --wait-timeout SECONDS [UP_ARGS...]
and prints each service's state.  Exit status: 0 every service healthy,
1 not (docker compose's message says which), 2 usage error.

  --dev            add docker-compose.dev.yml (ports on 127.0.0.1, Redis
                   without a password)
  --prod           add docker-compose.prod.yml (passwords from files under
                   \$SECRETS_DIR, default ./secrets; each must exist)
  --no-build       use the images already built
  --timeout SECONDS  how long to wait for healthy services (default 180)
  -h, --help       this text

Settings come from .env (cp .env.example .env, then change the passwords);
COMPOSE_FILE, COMPOSE_PROJECT_NAME and COMPOSE_ENV_FILES apply as usual
(--dev and --prod set COMPOSE_FILE).  DOCKER names the docker command.
USAGE
}

overlay=
build=(--build)
timeout=180
up_args=()
while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --dev) overlay='docker-compose.dev.yml' ;;
    --prod) overlay='docker-compose.prod.yml' ;;
    --no-build) build=() ;;
    --timeout)
      [[ "${2:-}" =~ ^[0-9]+$ ]] || { echo "$prog: --timeout needs a number of seconds" >&2; exit 2; }
      timeout=$2
      shift
      ;;
    --) shift; up_args=("$@"); break ;;
    *) echo "$prog: unknown argument $1; try --help" >&2; exit 2 ;;
  esac
  shift
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
docker=${DOCKER:-docker}
if ! "$docker" compose version >/dev/null 2>&1; then
  echo "$prog: 'docker compose' (Compose v2) is needed; see README.md" >&2
  exit 2
fi
if [[ -n "$overlay" ]]; then
  export COMPOSE_FILE=docker-compose.yml:$overlay
fi
if [[ ! -e .env && -z "${COMPOSE_ENV_FILES:-}" ]]; then
  echo "$prog: no .env: cp .env.example .env, then change every password in it" >&2
  exit 2
fi
if [[ "$overlay" == docker-compose.prod.yml ]]; then
  secrets_dir=$(sed -n 's/^SECRETS_DIR=//p' .env 2>/dev/null | tail -n 1)
  secrets_dir=${SECRETS_DIR:-${secrets_dir:-./secrets}}
  missing=()
  for s in postgres_superuser_password postgres_password healthd_pg_password \
    pgbouncer_admin_password pgbouncer_stats_password redis_password; do
    [[ -s "$secrets_dir/$s" ]] || missing+=("$secrets_dir/$s")
  done
  if ((${#missing[@]})); then
    echo "$prog: --prod needs these password files (see docker-compose.prod.yml):" >&2
    printf '  %s\n' "${missing[@]}" >&2
    exit 2
  fi
fi

echo "$prog: docker compose up -d ${build[*]} --wait (${COMPOSE_FILE:-docker-compose.yml})"
status=0
"$docker" compose up -d ${build[@]+"${build[@]}"} --wait --wait-timeout "$timeout" \
  ${up_args[@]+"${up_args[@]}"} || status=$?
"$docker" compose ps --all
if ((status != 0)); then
  echo "$prog: the stack did not become healthy; 'docker compose logs SERVICE' says why" >&2
  exit 1
fi
echo "$prog: healthy; hdms-healthd answers on ${HEALTHD_PUBLISH_ADDR:-127.0.0.1}:${HEALTHD_PUBLISH_PORT:-8080} (see .env)"
