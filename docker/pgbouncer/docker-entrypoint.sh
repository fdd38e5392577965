#!/bin/sh
# Writes pgbouncer.ini and the auth file from the environment into
# $PGBOUNCER_RUN_DIR (a tmpfs in docker-compose.yml), then runs PgBouncer in
# the foreground as PID 1.  Every password may also come from the file
# named by the variable with _FILE appended (Docker secrets).
#
# Auth file users (auth_type scram-sha-256; PgBouncer logs in to PostgreSQL
# with the same password):
#   $POSTGRES_USER           the services' role
#   $HEALTHD_PG_USER         hdms-healthd's role, at most 3 server connections
#   $PGBOUNCER_ADMIN_USER    admin_users: the whole console (PAUSE, RELOAD ...)
#   $PGBOUNCER_STATS_USER    stats_users: read-only SHOW commands (the daemon)
set -eu

die() {
        echo "pgbouncer entrypoint: $*" >&2
        exit 1
}

# secret NAME: the value of NAME, or the contents of the file $NAME_FILE.
secret() {
        eval "file=\${$1_FILE:-}"
        if [ -n "$file" ]; then
                [ -r "$file" ] || die "$1_FILE: cannot read $file"
                cat "$file"
        else
                eval "printf '%s' \"\${$1:-}\""
        fi
}

# name VAR VALUE: refuse what cannot be written unquoted into the ini file.
name() {
        case $2 in
        '' | *[!A-Za-z0-9_.-]*) die "$1='$2': use letters, digits, '_', '.' or '-'" ;;
        esac
}

# number VAR VALUE
number() {
        case $2 in
        '' | *[!0-9]*) die "$1='$2' is not a number" ;;
        esac
}

if [ "${1:-pgbouncer}" != pgbouncer ]; then
        exec "$@"
fi

run=${PGBOUNCER_RUN_DIR:-/run/pgbouncer}
db=${POSTGRES_DB:-hdms}
pg_host=${POSTGRES_HOST:-postgres}
pg_port=${POSTGRES_PORT:-5432}
listen_addr=${PGBOUNCER_LISTEN_ADDR:-*}
listen_port=${PGBOUNCER_PORT:-6432}
app_user=${POSTGRES_USER:-hdms}
healthd_user=${HEALTHD_PG_USER:-healthd}
admin_user=${PGBOUNCER_ADMIN_USER:-pgbouncer}
stats_user=${PGBOUNCER_STATS_USER:-pgbouncer_stats}
pool_size=${PGBOUNCER_DEFAULT_POOL_SIZE:-25}
max_db=${PGBOUNCER_MAX_DB_CONNECTIONS:-50}
max_client=${PGBOUNCER_MAX_CLIENT_CONN:-500}
login_retry=${PGBOUNCER_SERVER_LOGIN_RETRY:-1}

name POSTGRES_DB "$db"
name POSTGRES_HOST "$pg_host"
name POSTGRES_USER "$app_user"
name HEALTHD_PG_USER "$healthd_user"
name PGBOUNCER_ADMIN_USER "$admin_user"
name PGBOUNCER_STATS_USER "$stats_user"
case $listen_addr in
'*' | [0-9A-Fa-f:.]*) ;;
*) die "PGBOUNCER_LISTEN_ADDR='$listen_addr': '*' or numeric addresses" ;;
esac
for v in POSTGRES_PORT:$pg_port PGBOUNCER_PORT:$listen_port \
        PGBOUNCER_DEFAULT_POOL_SIZE:$pool_size PGBOUNCER_MAX_DB_CONNECTIONS:$max_db \
        PGBOUNCER_MAX_CLIENT_CONN:$max_client PGBOUNCER_SERVER_LOGIN_RETRY:$login_retry; do
        number "${v%%:*}" "${v#*:}"
done

umask 077
mkdir -p "$run"
users=$run/userlist.txt
: >"$users.tmp"
for u in POSTGRES:$app_user HEALTHD_PG:$healthd_user PGBOUNCER_ADMIN:$admin_user \
        PGBOUNCER_STATS:$stats_user; do
        var=${u%%:*}_PASSWORD
        pw=$(secret "$var")
        [ -n "$pw" ] || die "$var (or ${var}_FILE) is empty: every user needs a password"
        case $pw in *'
'*) die "$var contains a newline" ;;
        esac
        # auth file syntax: "user" "password", a double quote doubled
        printf '"%s" "%s"\n' "${u#*:}" "$(printf '%s' "$pw" | sed 's/"/""/g')" >>"$users.tmp"
done
mv "$users.tmp" "$users"
unset pw

cat >"$run/pgbouncer.ini" <<INI
; Written by docker-entrypoint.sh at container start; edit the environment,
; not this file.  See config/pgbouncer/pgbouncer.ini.example.
[databases]
$db = host=$pg_host port=$pg_port dbname=$db

[users]
$healthd_user = max_user_connections=3

[pgbouncer]
listen_addr = $listen_addr
listen_port = $listen_port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $users
admin_users = $admin_user
stats_users = $stats_user

pool_mode = transaction
default_pool_size = $pool_size
max_db_connections = $max_db
max_client_conn = $max_client
reserve_pool_size = 0
ignore_startup_parameters = extra_float_digits

; PostgreSQL back within seconds -> pooled queries within seconds
server_login_retry = $login_retry
server_connect_timeout = 5
; a re-created postgres container may come back on a new address
dns_max_ttl = 1
query_wait_timeout = 120

log_connections = 0
log_disconnections = 0
log_pooler_errors = 1
stats_period = 60
INI

exec pgbouncer "$run/pgbouncer.ini"
