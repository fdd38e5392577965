#!/bin/sh
# Starts Redis 7 for the HDMS stack from the environment: append-only
# persistence in /data, db 0 cache / 1 Channels / 2 Celery broker (16
# databases, the default), and requirepass when REDIS_PASSWORD (or the file
# named by REDIS_PASSWORD_FILE) is set.  The password goes into a config
# file on a tmpfs, never onto a command line.  Runs as root only long enough
# to write that file; the image's docker-entrypoint.sh then drops to the
# redis user and execs redis-server as PID 1.
#
#   REDIS_PORT (6379), REDIS_BIND ("* -::*"), REDIS_PASSWORD[_FILE],
#   REDIS_REQUIRE_PASSWORD (yes: refuse to start without one),
#   REDIS_CONF_DIR (/run/redis-conf)
set -eu

die() {
        echo "redis start.sh: $*" >&2
        exit 1
}

password=
if [ -n "${REDIS_PASSWORD_FILE:-}" ]; then
        [ -r "$REDIS_PASSWORD_FILE" ] || die "REDIS_PASSWORD_FILE: cannot read $REDIS_PASSWORD_FILE"
        password=$(cat "$REDIS_PASSWORD_FILE")
elif [ -n "${REDIS_PASSWORD:-}" ]; then
        password=$REDIS_PASSWORD
fi
if [ -z "$password" ] && [ "${REDIS_REQUIRE_PASSWORD:-no}" = yes ]; then
        die "REDIS_REQUIRE_PASSWORD=yes but REDIS_PASSWORD and REDIS_PASSWORD_FILE are empty"
fi
port=${REDIS_PORT:-6379}
case $port in '' | *[!0-9]*) die "REDIS_PORT='$port' is not a port number" ;; esac

dir=${REDIS_CONF_DIR:-/run/redis-conf}
umask 077
mkdir -p "$dir"
conf=$dir/redis.conf
{
        echo "# Written by start.sh at container start."
        echo "bind ${REDIS_BIND:-* -::*}"
        echo "port $port"
        # The network (Compose's, or loopback) is the boundary; with a
        # password set, every client must AUTH anyway.
        echo "protected-mode no"
        echo "dir /data"
        echo "appendonly yes"
        echo "appendfsync everysec"
        echo "databases 16"
        if [ -n "$password" ]; then
                # a double-quoted config string: escape \ and "
                printf 'requirepass "%s"\n' "$(printf '%s' "$password" | sed 's/[\\"]/\\&/g')"
        fi
} >"$conf"
unset password
if [ "$(id -u)" = 0 ]; then
        chown -R redis:redis "$dir"
fi
exec docker-entrypoint.sh redis-server "$conf"
