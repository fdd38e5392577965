#!/usr/bin/env bash
# The Django cache, Redis db 0: hdms-healthd's redis-cache target (AUTH,
# SELECT 0, PING, SET/GET/DEL of a private key timed against 50 ms).
# verify-all-connections.sh does the work; see --help.
set -euo pipefail
HDMS_VERIFY_PROG=$(basename "$0") \
  HDMS_VERIFY_TARGETS="redis-cache" \
  HDMS_VERIFY_WHAT="the Django cache, Redis db 0 (target redis-cache)" \
  exec "$(dirname "${BASH_SOURCE[0]}")/verify-all-connections.sh" "$@"
