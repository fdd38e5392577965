#!/usr/bin/env bash
# One round of hdms-healthd's checks (`hdms-healthd --once TARGET...`), run
# inside the Compose stack's hdms-healthd container (default) or with the
# hdms-healthd binary on this machine (--local).  The other verify-*.sh
# scripts are this one with fewer targets.
set -euo pipefail

prog=${HDMS_VERIFY_PROG:-$(basename "$0")}
what=${HDMS_VERIFY_WHAT:-"every target: PostgreSQL, PgBouncer and the three Redis databases"}
read -r -a default_targets <<<"${HDMS_VERIFY_TARGETS:-}"

usage() {
  cat <<USAGE
Usage: $prog [--compose | --local [--env-file FILE]...] [--json] [TARGET...]

Checks $what
with one round of hdms-healthd's checks (hdms-healthd --once) and prints a
line per target.  Exit status: 0 every target passes or warns, 1 one fails,
2 usage or configuration error.

  --compose        (default) run inside the running hdms-healthd container:
                   docker compose exec -T hdms-healthd hdms-healthd --once ...
                   (sees the stack as the daemon does, with its credentials)
  --local          run hdms-healthd on this machine (\$HDMS_HEALTHD_BIN, else
                   build/hdms-healthd, else from PATH), configured by this
                   shell's environment (POSTGRES_HOST, REDIS_PASSWORD ...;
                   docs/environment-variables.md)
  --env-file FILE  with --local: read KEY=VALUE lines from FILE first;
                   variables already set (in the environment or by an
                   earlier --env-file) win
  --json           print the full JSON report instead
  -h, --help       this text

Targets: postgres, pgbouncer, redis-cache, redis-channels, redis-celery.
The Compose project is found as docker compose finds it (run from the
repository; COMPOSE_FILE, COMPOSE_PROJECT_NAME, COMPOSE_ENV_FILES apply).
DOCKER names the docker command (default: docker).
USAGE
}

die_usage() {
  echo "$prog: $*" >&2
  echo "Try '$prog --help'." >&2
  exit 2
}

# load_env FILE: export KEY=VALUE lines (no shell expansion; one layer of
# matching quotes removed) unless KEY is already set.
load_env() {
  local line key value
  [[ -r "$1" ]] || die_usage "cannot read $1"
  while IFS= read -r line || [[ -n "$line" ]]; do
    line=${line%$'\r'}
    [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
    [[ "$line" =~ ^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || continue
    key=${BASH_REMATCH[2]}
    value=${BASH_REMATCH[3]}
    if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
      value=${BASH_REMATCH[1]}
    fi
    [[ -n "${!key+set}" ]] || export "$key=$value"
  done <"$1"
}

mode=compose
env_files=()
once_args=()
targets=()
while (($#)); do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --compose) mode=compose ;;
    --local) mode=local ;;
    --env-file)
      (($# >= 2)) || die_usage "--env-file needs a file"
      env_files+=("$2")
      shift
      ;;
    --json) once_args+=(--json) ;;
    -*) die_usage "unknown option $1" ;;
    *) targets+=("$1") ;;
  esac
  shift
done
((${#env_files[@]} == 0)) || [[ "$mode" == local ]] || die_usage "--env-file goes with --local"
((${#targets[@]})) || targets=(${default_targets[@]+"${default_targets[@]}"})

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ "$mode" == local ]]; then
  for f in ${env_files[@]+"${env_files[@]}"}; do
    load_env "$f"
  done
  if [[ -n "${HDMS_HEALTHD_BIN:-}" ]]; then
    bin=$HDMS_HEALTHD_BIN
  elif [[ -x build/hdms-healthd ]]; then
    bin=build/hdms-healthd
  elif command -v hdms-healthd >/dev/null; then
    bin=hdms-healthd
  else
    echo "$prog: no hdms-healthd here: run 'make' first, or leave out --local" >&2
    exit 2
  fi
  exec "$bin" --once ${once_args[@]+"${once_args[@]}"} ${targets[@]+"${targets[@]}"}
fi

docker=${DOCKER:-docker}
if ! command -v "$docker" >/dev/null; then
  echo "$prog: '$docker' not found; use --local to run hdms-healthd on this machine" >&2
  exit 2
fi
if [[ -z "$("$docker" compose ps --status running --quiet hdms-healthd 2>/dev/null)" ]]; then
  echo "$prog: the hdms-healthd container is not running (scripts/start-infrastructure.sh starts the stack; --local checks without it)" >&2
  exit 1
fi
exec "$docker" compose exec -T hdms-healthd \
  hdms-healthd --once ${once_args[@]+"${once_args[@]}"} ${targets[@]+"${targets[@]}"}
