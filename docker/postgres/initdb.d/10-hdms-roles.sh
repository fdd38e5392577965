#!/bin/sh
# Runs once, when the postgres container initialises an empty data volume
# (the image's /docker-entrypoint-initdb.d convention), as the superuser
# named by the container's POSTGRES_USER.  Creates:
#   - the application role and its database (the Django services' login,
#     used through PgBouncer): $HDMS_APP_USER owns $HDMS_DB;
#   - the health-check role $HEALTHD_PG_USER: login, member of pg_monitor
#     (to see every backend for the pooler-bypass check), CONNECT on
#     $HDMS_DB only, read-only transactions, at most 5 connections.
# Each password comes from its variable or from the file named by the
# variable with _FILE appended (Docker secrets).  Works sourced (bash, as
# the image's entrypoint does for non-executable files) or executed.  The
# passwords reach psql through its environment (\getenv), not its argv.
set -e

hdms_secret() {
        eval "hdms_f=\${$1_FILE:-}"
        if [ -n "$hdms_f" ]; then
                if [ ! -r "$hdms_f" ]; then
                        echo "10-hdms-roles.sh: $1_FILE: cannot read $hdms_f" >&2
                        return 1
                fi
                cat "$hdms_f"
        else
                eval "printf '%s' \"\${$1:-}\""
        fi
}

hdms_app_password=$(hdms_secret HDMS_APP_PASSWORD)
hdms_healthd_password=$(hdms_secret HEALTHD_PG_PASSWORD)
if [ -z "$hdms_app_password" ] || [ -z "$hdms_healthd_password" ]; then
        echo "10-hdms-roles.sh: HDMS_APP_PASSWORD and HEALTHD_PG_PASSWORD (or their _FILE forms) must be set" >&2
        exit 1
fi

HDMS_INIT_APP_PASSWORD=$hdms_app_password \
HDMS_INIT_HEALTHD_PASSWORD=$hdms_healthd_password \
psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password \
        --username "${POSTGRES_USER:-postgres}" --dbname postgres \
        --set db="${HDMS_DB:-hdms}" \
        --set app_user="${HDMS_APP_USER:-hdms}" \
        --set healthd_user="${HEALTHD_PG_USER:-healthd}" <<'SQL'
\getenv app_password HDMS_INIT_APP_PASSWORD
\getenv healthd_password HDMS_INIT_HEALTHD_PASSWORD
-- The services' role: owns the application database, nothing else.
CREATE ROLE :"app_user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
    PASSWORD :'app_password';
-- UTC sessions, so Django (USE_TZ) needs no SET TIME ZONE per connection.
ALTER ROLE :"app_user" SET timezone TO 'UTC';
CREATE DATABASE :"db" WITH OWNER :"app_user";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;

-- hdms-healthd's role: least privilege.  pg_monitor lets it read every
-- backend's row in pg_stat_activity; it owns nothing and writes nothing.
CREATE ROLE :"healthd_user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
    CONNECTION LIMIT 5 PASSWORD :'healthd_password' IN ROLE pg_monitor;
ALTER ROLE :"healthd_user" SET default_transaction_read_only TO on;
GRANT CONNECT ON DATABASE :"db" TO :"healthd_user";
SQL
unset hdms_app_password hdms_healthd_password hdms_f
