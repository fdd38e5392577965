#!/usr/bin/env bash
# PostgreSQL, directly and through PgBouncer: hdms-healthd's postgres target
# (authenticated connect as HEALTHD_PG_USER, SELECT 1, connections in use,
# pooler bypass) and pgbouncer target (a query to POSTGRES_DB through the
# pooler; the console: pool mode, pool size, clients waiting).
# verify-all-connections.sh does the work; see --help.
set -euo pipefail
HDMS_VERIFY_PROG=$(basename "$0") \
  HDMS_VERIFY_TARGETS="postgres pgbouncer" \
  HDMS_VERIFY_WHAT="PostgreSQL directly and through PgBouncer (targets postgres, pgbouncer)" \
  exec "$(dirname "${BASH_SOURCE[0]}")/verify-all-connections.sh" "$@"
