#!/usr/bin/env bash
# Stops the HDMS stack: docker compose down, keeping the data volumes unless
# asked otherwise.
set -euo pipefail

prog=$(basename "$0")

usage() {
  cat <<USAGE
Usage: $prog [--dev | --prod] [--volumes] [--timeout SECONDS]

Runs, from the repository root:
  docker compose down [--volumes] --timeout SECONDS
Containers and the network go; PostgreSQL's and Redis's named volumes
stay unless --volumes is given.  Exit status: docker compose's.

  --dev, --prod      the override the stack was started with (sets
                     COMPOSE_FILE as start-infrastructure.sh does)
  --volumes          also delete the data volumes: every database and
                     every Redis key is lost
  --timeout SECONDS  grace period before containers are killed (default 30;
                     PostgreSQL checkpoints on a clean shutdown)
  -h, --help         this text

COMPOSE_FILE, COMPOSE_PROJECT_NAME and COMPOSE_ENV_FILES apply as usual.
DOCKER names the docker command.
USAGE
}

overlay=
down_args=()
timeout=30
while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --dev) overlay='docker-compose.dev.yml' ;;
    --prod) overlay='docker-compose.prod.yml' ;;
    --volumes | -v) down_args+=(--volumes) ;;
    --timeout)
      [[ "${2:-}" =~ ^[0-9]+$ ]] || { echo "$prog: --timeout needs a number of seconds" >&2; exit 2; }
      timeout=$2
      shift
      ;;
    *) echo "$prog: unknown argument $1; try --help" >&2; exit 2 ;;
  esac
  shift
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
docker=${DOCKER:-docker}
if [[ -n "$overlay" ]]; then
  export COMPOSE_FILE=docker-compose.yml:$overlay
fi
exec "$docker" compose down ${down_args[@]+"${down_args[@]}"} --timeout "$timeout"
