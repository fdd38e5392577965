#!/bin/sh
# PgBouncer accepts connections on its console database.  pg_isready only
# sends a startup packet and hangs up at the password request: no password
# and no login.
exec pg_isready --quiet --timeout=5 --host=127.0.0.1 \
        --port="${PGBOUNCER_PORT:-6432}" --dbname=pgbouncer \
        --username="${PGBOUNCER_STATS_USER:-pgbouncer_stats}"
