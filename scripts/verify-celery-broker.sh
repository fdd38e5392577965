#!/usr/bin/env bash
# The Celery broker, Redis db 2: hdms-healthd's redis-celery target (PING,
# the length of each queue in CELERY_QUEUES, workers blocked on db 2,
# eviction hazard).
# verify-all-connections.sh does the work; see --help.
set -euo pipefail
HDMS_VERIFY_PROG=$(basename "$0") \
  HDMS_VERIFY_TARGETS="redis-celery" \
  HDMS_VERIFY_WHAT="the Celery broker, Redis db 2 (target redis-celery)" \
  exec "$(dirname "${BASH_SOURCE[0]}")/verify-all-connections.sh" "$@"
