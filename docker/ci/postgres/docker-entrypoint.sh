#!/bin/bash
# The official postgres image's entrypoint contract, reduced to what
# docker-compose.yml relies on.
set -Eeo pipefail

file_env() {
        local var=$1 file=${1}_FILE
        if [ -n "${!file:-}" ]; then
                export "$var"="$(<"${!file}")"
        fi
        unset "$file"
}

if [ "${1:0:1}" = - ]; then
        set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
        exec "$@"
fi

if [ "$(id -u)" = 0 ]; then
        mkdir -p "$PGDATA"
        chown postgres:postgres "$PGDATA"
        chmod 0700 "$PGDATA"
        exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
        file_env POSTGRES_PASSWORD
        : "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
        if [ -z "${POSTGRES_PASSWORD:-}" ]; then
                echo "error: the database is uninitialized and POSTGRES_PASSWORD is not set" >&2
                exit 1
        fi
        export POSTGRES_USER POSTGRES_DB
        initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
                --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust \
                --auth-host=scram-sha-256 >/dev/null
        printf '\nhost all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
        printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
        pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start
        if [ "$POSTGRES_DB" != postgres ]; then
                psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname postgres \
                        --set db="$POSTGRES_DB" -c 'CREATE DATABASE :"db"'
        fi
        for f in /docker-entrypoint-initdb.d/*; do
                case $f in
                *.sh)
                        echo "$0: running $f"
                        # shellcheck source=/dev/null
                        if [ -x "$f" ]; then "$f"; else . "$f"; fi
                        ;;
                *.sql)
                        echo "$0: running $f"
                        psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" \
                                --dbname "$POSTGRES_DB" -f "$f"
                        ;;
                *) if [ -e "$f" ]; then echo "$0: ignoring $f"; fi ;;
                esac
        done
        pg_ctl -D "$PGDATA" -m fast -w stop
        unset POSTGRES_PASSWORD
        echo "PostgreSQL init process complete; ready for start up."
fi
exec "$@"
