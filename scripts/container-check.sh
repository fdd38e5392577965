#!/usr/bin/env bash
# The container check of `make test`: the Compose stack checked by a real
# Docker engine on this machine, without Docker Hub.
#
#   1. shellcheck and yamllint over the scripts and Compose files; every
#      variable the Compose files use is in .env.example and
#      docs/environment-variables.md;
#   2. `docker compose --env-file .env.example config -q` for
#      docker-compose.yml alone and with each override, in a clean copy of
#      the tree (no .env, no build/, nothing ignored by git);
#   3. a private dockerd (data and sockets under a temp dir, no bridge, no
#      iptables), a debian:bookworm base image made with debootstrap, the
#      images built from docker/Dockerfile (unchanged) and docker/pgbouncer,
#      and stand-ins for postgres:16 and redis:7 from Debian's packages
#      (docker/ci/docker-compose.ci.yml: host network, 127.0.0.1,
#      the non-default ports of docker/ci/ci.env);
#   4. scripts/start-infrastructure.sh (up -d --build --wait), /readyz from
#      the host, every container healthy, the verify-*.sh scripts; Redis's
#      container stopped -> /readyz 503, started -> 200; PostgreSQL stopped
#      and started -> back through PgBouncer within 5 s;
#      scripts/stop-infrastructure.sh --volumes;
#   5. the same with docker-compose.dev.yml (Redis without a password) and
#      docker-compose.prod.yml (passwords from secrets files, none in any
#      container's environment);
#   6. always, on every exit path: containers removed, the engine stopped,
#      its mounts unmounted, its data (about 1.5 GB) deleted.
#
# Exit status: 0 passed, or could not run at all (no root, no dockerd, the
# engine does not start, Compose v2 cannot be fetched): then a banner says
# "CONTAINER CHECK NOT RUN" and the rest of the suite goes on.  1 a real
# failure.  HDMS_CONTAINER_CHECK=skip skips it (with the banner).
#
# Compose v2 is not in Debian 12: trixie's docker-compose package (it needs
# only libc6 >= 2.34; Compose builds with the engine's BuildKit, no buildx
# plugin needed) is fetched with apt-get download and unpacked into
# build/container-cache/, kept between runs like the debootstrap tarball
# (`make clean` removes both).  Logs of the last run: build/container-check/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
CACHE=$ROOT/build/container-cache
LOGDIR=$ROOT/build/container-check
PROJECT=hdmsci
T0=$SECONDS
ENGINE=
ENGINE_PID=
ENGINE_UP=0
CLONE=
cgroups_before=()

log() { printf '[container-check %3ds] %s\n' $((SECONDS - T0)) "$*"; }

fail() {
  log "FAIL: $*"
  exit 1
}

# not_run REASON [DETAIL...]: exit 0 after cleanup, which prints the banner
# last, where it is seen.
NOT_RUN=()
not_run() {
  NOT_RUN=("$@")
  exit 0
}
banner() {
  local line='======================================================================' more
  printf '\n%s\nCONTAINER CHECK NOT RUN: %s\n' "$line" "$1"
  shift
  for more in "$@"; do [[ -z "$more" ]] || printf '  %s\n' "$more"; done
  printf '(the Docker files were NOT checked by an engine; the rest of the suite goes on)\n%s\n\n' "$line"
}

# The environment must not steer the stack: a shell with a local test
# stack's POSTGRES_PORT or a COMPOSE_FILE exported would otherwise win
# over docker/ci/ci.env.
for v in $(compgen -e); do
  case $v in
    POSTGRES_* | PGBOUNCER_* | REDIS_* | HEALTHD_* | CELERY_* | SECRETS_DIR | \
      COMPOSE_* | DOCKER_* | PG* | BUILDKIT_*) unset "$v" ;;
  esac
done
export COMPOSE_ANSI=never BUILDKIT_PROGRESS=plain

mkdir -p "$CACHE" "$LOGDIR"
rm -f "$LOGDIR"/*.log

# ---------------------------------------------------------------- cleanup

docker_() { "$DOCKER" "$@"; }

# unmount_under DIR: every mount point at or below DIR, deepest first.
unmount_under() {
  local m
  awk -v p="$1" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
    done
}

stop_engine() {
  [[ -n "$ENGINE_PID" ]] || return 0
  if kill -0 "$ENGINE_PID" 2>/dev/null; then
    kill -TERM "$ENGINE_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 150; i++)); do
      kill -0 "$ENGINE_PID" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$ENGINE_PID" 2>/dev/null; then
      log "dockerd (pid $ENGINE_PID) did not stop in 30 s: SIGKILL"
      kill -KILL "$ENGINE_PID" 2>/dev/null || true
    fi
  fi
  wait "$ENGINE_PID" 2>/dev/null || true
  # What our dockerd started (its containerd, shims) names our directory.
  local pid
  for pid in $(pgrep -f -- "$ENGINE/" || true); do
    [[ "$pid" != "$$" ]] || continue
    log "killing leftover engine process $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-100)"
    kill -KILL "$pid" 2>/dev/null || true
  done
  ENGINE_PID=
}

remove_cgroups() {
  [[ -n "$ENGINE" ]] || return 0
  local d
  for d in /sys/fs/cgroup/docker /sys/fs/cgroup/*/docker; do
    [[ -d "$d" && " ${cgroups_before[*]} " != *" $d "* ]] || continue
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || log "cannot remove cgroup $d"
  done
}

diagnostics() {
  log "diagnostics (logs under build/container-check/):"
  docker_ compose ps --all 2>&1 | sed 's/^/    /' || true
  local svc
  for svc in postgres pgbouncer redis hdms-healthd; do
    docker_ compose logs --no-color --no-log-prefix --tail 60 "$svc" 2>&1 |
      sed 's/\x1b\[[0-9;]*[A-Za-z]//g' >"$LOGDIR/$svc.log" || true
    echo "    --- $svc (last 15 lines)"
    tail -n 15 "$LOGDIR/$svc.log" | sed 's/^/    /'
  done
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if ((ENGINE_UP)); then
    ((rc == 0)) || diagnostics
    log "cleanup: docker compose down --volumes"
    docker_ compose down --volumes --timeout 5 >>"$LOGDIR/compose.log" 2>&1
    local left
    mapfile -t left < <(docker_ ps -aq 2>/dev/null)
    ((${#left[@]} == 0)) || docker_ rm -f -v "${left[@]}" >/dev/null 2>&1
  fi
  [[ -z "$ENGINE_PID" ]] || log "cleanup: stopping dockerd (pid $ENGINE_PID)"
  stop_engine
  remove_cgroups
  if [[ -n "$ENGINE" && -d "$ENGINE" ]]; then
    log "cleanup: unmounting and deleting $ENGINE"
    [[ ! -f "$ENGINE/dockerd.log" ]] || cp "$ENGINE/dockerd.log" "$LOGDIR/dockerd.log"
    unmount_under "$ENGINE"
    if awk -v p="$ENGINE" 'index($5, p) == 1 { f = 1 } END { exit !f }' /proc/self/mountinfo; then
      log "WARNING: mounts left under $ENGINE; not deleting it"
    else
      rm -rf "$ENGINE"
    fi
  fi
  [[ -z "$CLONE" ]] || rm -rf "$CLONE"
  if ((${#NOT_RUN[@]})); then
    banner "${NOT_RUN[@]}"
  elif ((rc == 0)); then
    log "done in $((SECONDS - T0)) s"
  else
    log "FAILED (exit $rc) after $((SECONDS - T0)) s; engine stopped and removed"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ "${HDMS_CONTAINER_CHECK:-}" == skip ]]; then
  not_run "skipped by request (HDMS_CONTAINER_CHECK=skip)"
fi

# ---------------------------------------------------------------- 1. lint

log "lint: shellcheck, yamllint, variables documented"
shell_files=(scripts/container-check.sh scripts/verify-*.sh scripts/start-infrastructure.sh
  scripts/stop-infrastructure.sh docker/*/*.sh docker/*/*/*.sh)
compose_files=(docker-compose.yml docker-compose.dev.yml docker-compose.prod.yml
  docker/ci/docker-compose.ci.yml)
if command -v shellcheck >/dev/null; then
  shellcheck "${shell_files[@]}" || fail "shellcheck"
else
  log "WARNING: shellcheck not installed (scripts/debian-packages): SKIPPED"
fi
if command -v yamllint >/dev/null; then
  yamllint -s -c docker/ci/yamllint.yml "${compose_files[@]}" || fail "yamllint"
else
  log "WARNING: yamllint not installed (scripts/debian-packages): SKIPPED"
fi
undocumented=()
while read -r v; do
  grep -q "^$v=" .env.example || undocumented+=("$v (.env.example)")
  grep -q "\`$v\`" docs/environment-variables.md || undocumented+=("$v (docs/environment-variables.md)")
done < <(grep -oh '[$]{[A-Z_][A-Z0-9_]*' "${compose_files[@]:0:3}" | cut -c3- | sort -u)
((${#undocumented[@]} == 0)) || fail "variables used by the Compose files but not documented: ${undocumented[*]}"

# ------------------------------------------------------- prerequisites

((EUID == 0)) || not_run "dockerd needs root (run make test as root, as CI does)"
DOCKERD=$(command -v dockerd || echo /usr/sbin/dockerd)
[[ -x "$DOCKERD" ]] || not_run "no dockerd (apt-get install docker.io; it is in scripts/debian-packages)"
# Debian's docker.io CLI first: it matches the engine (API 1.41).
if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=$(command -v docker || true); fi
[[ -n "$DOCKER" ]] || not_run "no docker CLI (apt-get install docker.io)"
export DOCKER

# ------------------------------------------- Compose v2 from Debian trixie

export DOCKER_CONFIG=$CACHE/docker-config
plugins=$DOCKER_CONFIG/cli-plugins
fetch_compose() {
  local apt=$CACHE/apt mirror
  mirror=$(debian_mirror)
  rm -rf "$apt" && mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs" "$plugins"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" >"$apt/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o Debug::NoLocking=1
    -o APT::Sandbox::User=root)
  apt-get "${opts[@]}" update >"$LOGDIR/compose-fetch.log" 2>&1 &&
    (cd "$apt/debs" && apt-get "${opts[@]}" download docker-compose) \
      >>"$LOGDIR/compose-fetch.log" 2>&1 || return 1
  local deb
  for deb in "$apt"/debs/*.deb; do dpkg-deb -x "$deb" "$apt/root" || return 1; done
  cp "$apt"/root/usr/libexec/docker/cli-plugins/docker-* "$plugins/" && rm -rf "$apt"
}
debian_mirror() {
  local m
  m=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n 1)
  [[ -n "$m" ]] || m=$(grep -hs '^deb ' /etc/apt/sources.list | grep -v security | awk '{print $2}' | head -n 1)
  echo "${m:-http://deb.debian.org/debian}"
}
if ! "$DOCKER" compose version >/dev/null 2>&1; then
  log "fetching Compose v2 (docker-compose from Debian trixie) into build/container-cache/"
  fetch_compose || not_run "cannot fetch trixie's docker-compose (see build/container-check/compose-fetch.log)" \
    "$(tail -n 3 "$LOGDIR/compose-fetch.log" 2>/dev/null)"
fi
log "$("$DOCKER" compose version), $("$DOCKER" --version)"

# ------------------------------------------------ 2. config -q, clean copy

log "docker compose config -q on a clean copy (base file and each override)"
CLONE=$(mktemp -d "${TMPDIR:-/tmp}/hdms-cc-clone.XXXXXX")
if git rev-parse --git-dir >/dev/null 2>&1; then
  # What a clone would hold once committed: tracked and unignored files,
  # never .env or secrets.
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do
      [[ -f "$f" && "$f" != .env && "$f" != secrets/* ]] && printf '%s\0' "$f"
    done | tar --null -T - -cf - | tar -C "$CLONE" -xf -
else
  tar --exclude=./build --exclude=./.env --exclude=./secrets -cf - . | tar -C "$CLONE" -xf -
fi
for override in "" docker-compose.dev.yml docker-compose.prod.yml docker/ci/docker-compose.ci.yml; do
  (cd "$CLONE" && "$DOCKER" compose -p hdmscfg --env-file .env.example -f docker-compose.yml \
    ${override:+-f "$override"} config -q) || fail "config -q: docker-compose.yml ${override:++ $override}"
  log "  ok: docker-compose.yml${override:+ + $override}"
done
rm -rf "$CLONE"
CLONE=

# ------------------------------------------------------- 3. the engine

# The engine's data (about 1.5 GB of layers) on /dev/shm when it is a tmpfs
# with room to spare: builds are faster and deleting it at the end takes
# no time (on disk, tens of seconds).  HDMS_CC_TMPDIR overrides.
engine_parent=${HDMS_CC_TMPDIR:-}
if [[ -z "$engine_parent" ]]; then
  engine_parent=/var/tmp
  if [[ "$(stat -f -c %T /dev/shm 2>/dev/null)" == tmpfs ]] &&
    (($(df -Pk /dev/shm | awk 'NR == 2 { print $4 }') > 6 * 1024 * 1024)); then
    engine_parent=/dev/shm
  fi
fi
ENGINE=$(mktemp -d "$engine_parent/hdms-cc.XXXXXX")
# dockerd makes a "docker" cgroup (v1: in every hierarchy); remove the ones
# it made, once it is gone.
shopt -s nullglob
cgroups_before=(/sys/fs/cgroup/docker /sys/fs/cgroup/*/docker)
shopt -u nullglob
echo '{}' >"$ENGINE/daemon.json"
export DOCKER_HOST=unix://$ENGINE/docker.sock
log "starting dockerd (data under $ENGINE)"
setsid "$DOCKERD" --data-root "$ENGINE/data" --exec-root "$ENGINE/exec" \
  -H "$DOCKER_HOST" --pidfile "$ENGINE/dockerd.pid" --config-file "$ENGINE/daemon.json" \
  --storage-driver=overlay2 --iptables=false --ip6tables=false --ip-forward=false \
  --ip-masq=false --bridge=none >"$ENGINE/dockerd.log" 2>&1 </dev/null &
ENGINE_PID=$!
for ((i = 0; i < 150; i++)); do
  if ! kill -0 "$ENGINE_PID" 2>/dev/null; then
    not_run "dockerd exited at start (build/container-check/dockerd.log):" \
      "$(grep -E 'level=(error|fatal)|failed' "$ENGINE/dockerd.log" | tail -n 3)"
  fi
  "$DOCKER" version >/dev/null 2>&1 && break
  sleep 0.2
done
"$DOCKER" version >/dev/null 2>&1 || not_run "dockerd did not answer within 30 s" "$(tail -n 3 "$ENGINE/dockerd.log")"
ENGINE_UP=1
log "engine up: $("$DOCKER" version --format 'Docker Engine {{.Server.Version}}, API {{.Server.APIVersion}}')"

# ---------------------------------------------------- base image

rootfs_tar=$CACHE/bookworm-minbase.tar.gz
if [[ -n "$(find "$rootfs_tar" -mtime +30 2>/dev/null)" ]]; then
  rm -f "$rootfs_tar" # a month old: its package lists are too
fi
if [[ ! -s "$rootfs_tar" ]]; then
  command -v debootstrap >/dev/null || fail "debootstrap not installed (scripts/debian-packages)"
  log "debootstrap --variant=minbase bookworm (cached in build/container-cache/ afterwards)"
  timeout 600 debootstrap --variant=minbase bookworm "$ENGINE/rootfs" "$(debian_mirror)" \
    >"$LOGDIR/debootstrap.log" 2>&1 || fail "debootstrap (build/container-check/debootstrap.log)"
  unmount_under "$ENGINE/rootfs"
  # Slim like the official -slim images: no documentation or locales, now
  # or from packages installed later.
  (cd "$ENGINE/rootfs" && rm -rf var/cache/apt/archives/*.deb var/lib/apt/lists/* \
    usr/share/doc/* usr/share/man/* usr/share/info/* usr/share/locale/*)
  printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
    'path-exclude /usr/share/locale/*' >"$ENGINE/rootfs/etc/dpkg/dpkg.cfg.d/docker-slim"
  tar -C "$ENGINE/rootfs" --numeric-owner -cf - . | gzip -1 >"$rootfs_tar.tmp"
  mv "$rootfs_tar.tmp" "$rootfs_tar"
  rm -rf "$ENGINE/rootfs"
fi
"$DOCKER" import --change 'CMD ["bash"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  "$rootfs_tar" local/debian:bookworm-minbase >/dev/null || fail "docker import"
"$DOCKER" tag local/debian:bookworm-minbase debian:bookworm
"$DOCKER" tag local/debian:bookworm-minbase debian:bookworm-slim
log "base image debian:bookworm(-slim) from debootstrap: $("$DOCKER" image inspect --format '{{.Size}}' debian:bookworm-slim | awk '{printf "%.0f MB", $1 / 1e6}')"

# ----------------------------------------------------- build and up

export COMPOSE_PROJECT_NAME=$PROJECT
export COMPOSE_FILE=docker-compose.yml:docker/ci/docker-compose.ci.yml
export COMPOSE_ENV_FILES=.env.example,docker/ci/ci.env
# The ports of ci.env must be free (only loopback; non-default ports).
for v in POSTGRES_PORT PGBOUNCER_PORT REDIS_PORT HEALTHD_PORT; do
  port=$(sed -n "s/^$v=//p" docker/ci/ci.env)
  if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
    fail "127.0.0.1:$port ($v in docker/ci/ci.env) is in use"
  fi
  declare "$v=$port"
done
URL=http://127.0.0.1:$HEALTHD_PORT

log "building the images (docker/Dockerfile, docker/pgbouncer, the stand-ins)"
t=$SECONDS
"$DOCKER" compose build >"$LOGDIR/build.log" 2>&1 ||
  { tail -n 30 "$LOGDIR/build.log"; fail "docker compose build (build/container-check/build.log)"; }
log "built in $((SECONDS - t)) s"
size=$("$DOCKER" image inspect --format '{{.Size}}' hdms-healthd:local)
base=$("$DOCKER" image inspect --format '{{.Size}}' debian:bookworm-slim)
log "hdms-healthd:local: $((size / 1000000)) MB, $(((size - base) / 1000)) kB over its base image"
[[ "$("$DOCKER" image inspect --format '{{.Config.User}}' hdms-healthd:local)" == 10001:10001 ]] ||
  fail "hdms-healthd image does not run as 10001:10001"
"$DOCKER" image inspect --format '{{json .Config.Healthcheck.Test}}' hdms-healthd:local |
  grep -q '"hdms-healthd","probe","http://127.0.0.1:8080/livez"' || fail "image HEALTHCHECK is not the probe of /livez"

t=$SECONDS
if ! scripts/start-infrastructure.sh --timeout 180 >"$LOGDIR/up.log" 2>&1; then
  tail -n 20 "$LOGDIR/up.log"
  fail "the stack did not become healthy (scripts/start-infrastructure.sh)"
fi
log "scripts/start-infrastructure.sh: stack up and healthy in $((SECONDS - t)) s"
"$DOCKER" compose ps --all --format 'table {{.Service}}\t{{.Image}}\t{{.Status}}' | sed 's/^/    /'

# ------------------------------------------------------- 4. assertions

# http_code PATH [BODYFILE]: the status code of GET $URL$PATH.
http_code() {
  curl -s -o "${2:-/dev/null}" -w '%{http_code}' --max-time 3 "$URL$1" || true
}
# wait_code PATH CODE SECONDS: poll every 100 ms; prints the seconds taken.
wait_code() {
  local t0=$EPOCHREALTIME end=$((SECONDS + $3))
  until [[ "$(http_code "$1")" == "$2" ]]; do
    ((SECONDS < end)) || return 1
    sleep 0.1
  done
  echo "$EPOCHREALTIME $t0" | awk '{printf "%.1f", $1 - $2}'
}

body=$LOGDIR/readyz.json
code=$(http_code /readyz "$body")
log "GET $URL/readyz from the host: $code $(cat "$body")"
[[ "$code" == 200 ]] || fail "/readyz answered $code"
http_code /status "$LOGDIR/status.json" >/dev/null
statuses=$(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(" ".join(f"{k}={v['"'status'"']}" for k, v in d["targets"].items()))' "$LOGDIR/status.json") ||
  fail "/status is not the expected JSON ($LOGDIR/status.json)"
log "targets: $statuses"
[[ "$statuses" != *=fail* && "$statuses" != *=unknown* ]] || fail "a target is not up"
for c in postgres pgbouncer redis hdms-healthd; do
  h=$("$DOCKER" inspect --format '{{.State.Health.Status}}' "$PROJECT-$c-1")
  log "  container $PROJECT-$c-1: $h"
  [[ "$h" == healthy ]] || fail "$c is $h"
done
[[ "$("$DOCKER" inspect --format '{{.HostConfig.ReadonlyRootfs}} {{.Config.User}}' "$PROJECT-hdms-healthd-1")" == "true 10001:10001" ]] ||
  fail "hdms-healthd does not run read-only as 10001"
"$DOCKER" exec "$PROJECT-hdms-healthd-1" hdms-healthd probe "http://127.0.0.1:$HEALTHD_PORT/livez" >/dev/null ||
  fail "hdms-healthd probe inside the container"
log "scripts/verify-health-checks.sh:"
scripts/verify-health-checks.sh | sed 's/^/    /'
((PIPESTATUS[0] == 0)) || fail "verify-health-checks.sh"
for s in verify-db-connection verify-cache-connection verify-channels-connection verify-celery-broker; do
  scripts/$s.sh >"$LOGDIR/$s.log" 2>&1 || { cat "$LOGDIR/$s.log"; fail "$s.sh"; }
done
log "verify-{db,cache,channels}-connection.sh, verify-celery-broker.sh: pass (in the container)"
log "scripts/verify-all-connections.sh (hdms-healthd --once in the container):"
scripts/verify-all-connections.sh 2>>"$LOGDIR/verify.log" | sed 's/^/    /'
((PIPESTATUS[0] == 0)) || fail "verify-all-connections.sh"
# The host's view: the daemon built here, ci.env's addresses, .env.example's
# passwords (the first file that sets a variable wins).
for bin in build/hdms-healthd build/asan/hdms-healthd; do
  [[ -x "$bin" ]] || continue
  HDMS_HEALTHD_BIN=$bin scripts/verify-all-connections.sh --local \
    --env-file docker/ci/ci.env --env-file .env.example >"$LOGDIR/verify-local.log" 2>&1 ||
    { cat "$LOGDIR/verify-local.log"; fail "verify-all-connections.sh --local ($bin)"; }
  log "verify-all-connections.sh --local ($bin on the host): pass"
  break
done

log "outage: docker compose stop redis"
"$DOCKER" compose stop redis >>"$LOGDIR/compose.log" 2>&1 || fail "compose stop redis"
took=$(wait_code /readyz 503 10) || fail "/readyz still $(http_code /readyz) 10 s after Redis stopped"
http_code /readyz "$body" >/dev/null
log "  /readyz 503 after ${took} s: $(cut -c1-160 "$body")..."
"$DOCKER" compose start redis >>"$LOGDIR/compose.log" 2>&1 || fail "compose start redis"
took=$(wait_code /readyz 200 30) || fail "/readyz still $(http_code /readyz) 30 s after Redis started"
log "  docker compose start redis: /readyz 200 after ${took} s"

log "outage: docker compose stop postgres (PgBouncer stays up)"
"$DOCKER" compose stop postgres >>"$LOGDIR/compose.log" 2>&1 || fail "compose stop postgres"
took=$(wait_code /health/pgbouncer 503 15) || fail "/health/pgbouncer still up 15 s after PostgreSQL stopped"
log "  /health/pgbouncer 503 after ${took} s"
"$DOCKER" compose start postgres >>"$LOGDIR/compose.log" 2>&1 || fail "compose start postgres"
for ((i = 0; i < 300; i++)); do
  (exec 3<>"/dev/tcp/127.0.0.1/$POSTGRES_PORT") 2>/dev/null && break
  sleep 0.1
done
took=$(wait_code /health/pgbouncer 200 20) || fail "pgbouncer target still down 20 s after PostgreSQL accepted connections"
log "  PostgreSQL accepting again; through PgBouncer after ${took} s (target: 5 s)"
awk -v t="$took" 'BEGIN { exit !(t <= 5) }' || fail "reconnection through PgBouncer took ${took} s (> 5 s)"
took=$(wait_code /readyz 200 10) || fail "/readyz not 200 after PostgreSQL returned"

# SPEC 11: the state file on the healthd_state volume outlives the container.
log "state: docker compose restart hdms-healthd keeps the events and the history"
[[ "$(http_code '/events?limit=1000' "$LOGDIR/events-before.json")" == 200 ]] || fail "GET /events"
"$DOCKER" compose restart hdms-healthd >>"$LOGDIR/compose.log" 2>&1 || fail "compose restart hdms-healthd"
took=$(wait_code /readyz 200 30) || fail "/readyz not 200 30 s after hdms-healthd restarted"
[[ "$(http_code '/events?limit=1000' "$LOGDIR/events-after.json")" == 200 ]] || fail "GET /events after the restart"
kept=$(python3 -c 'import json, sys
before = json.load(open(sys.argv[1]))["events"]
after = json.load(open(sys.argv[2]))["events"]
assert before and {e["id"] for e in before} <= {e["id"] for e in after}, "events lost"
assert any(e["type"] == "stop" for e in after), "no stop event"
assert any(e["type"] == "start" and e.get("restored") for e in after), "no history restored"
print(len(before))' "$LOGDIR/events-before.json" "$LOGDIR/events-after.json") ||
  fail "the restart lost the record (see $LOGDIR/events-*.json)"
log "  /readyz 200 after ${took} s; the ${kept} events before the restart kept, history restored"

log "scripts/stop-infrastructure.sh --volumes"
scripts/stop-infrastructure.sh --volumes --timeout 10 >>"$LOGDIR/compose.log" 2>&1 || fail "stop-infrastructure.sh"
[[ -z "$("$DOCKER" ps -aq)" ]] || fail "containers left after down"
[[ -z "$("$DOCKER" volume ls -q)" ]] || fail "volumes left after down -v"

# --------------------------------------------- 5. the dev and prod overrides

# up_with OVERRIDE: the stack with docker-compose.yml + OVERRIDE + the CI
# override, healthy and ready; the caller checks what OVERRIDE changes.
up_with() {
  export COMPOSE_FILE=docker-compose.yml:$1:docker/ci/docker-compose.ci.yml
  local t=$SECONDS
  if ! scripts/start-infrastructure.sh --no-build --timeout 120 >"$LOGDIR/up-${1%.yml}.log" 2>&1; then
    tail -n 20 "$LOGDIR/up-${1%.yml}.log"
    fail "$1: the stack did not become healthy"
  fi
  [[ "$(http_code /readyz)" == 200 ]] || fail "$1: /readyz answered $(http_code /readyz)"
  log "$1: healthy in $((SECONDS - t)) s, /readyz 200"
}
down_all() {
  scripts/stop-infrastructure.sh --volumes --timeout 10 >>"$LOGDIR/compose.log" 2>&1 || fail "stop-infrastructure.sh ($1)"
}
redis_ping() { # the reply to an unauthenticated PING
  "$DOCKER" compose exec -T redis redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>&1 | head -n 1
}

up_with docker-compose.dev.yml
reply=$(redis_ping)
[[ "$reply" == PONG ]] || fail "docker-compose.dev.yml: Redis wants a password ($reply)"
log "  Redis without a password: PING -> $reply"
down_all dev

# Every password from a secrets file; none may reach a container's
# environment or a command line.
SECRETS_DIR=$ENGINE/secrets
export SECRETS_DIR
mkdir -p "$SECRETS_DIR"
secrets=(postgres_superuser_password postgres_password healthd_pg_password
  pgbouncer_admin_password pgbouncer_stats_password redis_password)
for s in "${secrets[@]}"; do
  (umask 0222 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$SECRETS_DIR/$s")
done
up_with docker-compose.prod.yml
reply=$(redis_ping)
[[ "$reply" == NOAUTH* ]] || fail "docker-compose.prod.yml: Redis answers without a password ($reply)"
log "  Redis requires its password: PING -> ${reply%% *}"
for c in postgres pgbouncer redis hdms-healthd; do
  seen=$("$DOCKER" inspect --format '{{range .Config.Env}}{{println .}}{{end}}{{range .Config.Cmd}}{{println .}}{{end}}' "$PROJECT-$c-1")
  for s in "${secrets[@]}"; do
    [[ "$seen" != *"$(cat "$SECRETS_DIR/$s")"* ]] || fail "docker-compose.prod.yml: $s visible in $c's environment"
  done
done
log "  no password in any container's environment or command"
down_all prod
unset SECRETS_DIR
export COMPOSE_FILE=docker-compose.yml:docker/ci/docker-compose.ci.yml
[[ -z "$("$DOCKER" ps -aq)" && -z "$("$DOCKER" volume ls -q)" ]] || fail "containers or volumes left"
log "PASS: images built; stack healthy; Redis and PostgreSQL outages seen and recovered; dev and prod overrides healthy; all removed"
