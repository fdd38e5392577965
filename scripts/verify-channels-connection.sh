#!/usr/bin/env bash
# The Django Channels layer, Redis db 1: hdms-healthd's redis-channels
# target (AUTH, SELECT 1, PING, a round trip on a private key).
# verify-all-connections.sh does the work; see --help.
set -euo pipefail
HDMS_VERIFY_PROG=$(basename "$0") \
  HDMS_VERIFY_TARGETS="redis-channels" \
  HDMS_VERIFY_WHAT="the Django Channels layer, Redis db 1 (target redis-channels)" \
  exec "$(dirname "${BASH_SOURCE[0]}")/verify-all-connections.sh" "$@"
