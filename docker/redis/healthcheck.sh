#!/bin/sh
# Redis answers PING (after AUTH when a password is set).  redis-cli takes
# the password from REDISCLI_AUTH, not from its command line.
set -eu
if [ -n "${REDIS_PASSWORD_FILE:-}" ]; then
        REDISCLI_AUTH=$(cat "$REDIS_PASSWORD_FILE")
        export REDISCLI_AUTH
elif [ -n "${REDIS_PASSWORD:-}" ]; then
        REDISCLI_AUTH=$REDIS_PASSWORD
        export REDISCLI_AUTH
fi
reply=$(redis-cli -h 127.0.0.1 -p "${REDIS_PORT:-6379}" ping 2>&1)
[ "$reply" = PONG ] || {
        echo "redis: $reply"
        exit 1
}
