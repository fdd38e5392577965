/* What the postgres probe learns from the pgbouncer probes: PgBouncer's
 * own server connections (SHOW SERVERS remote_pid), so that a backend of
 * the application role that is none of them can be called a pooler bypass
 * (libraries.md section 8).  Both live in the loop's thread. */
#ifndef HEALTHD_PROBE_PG_H
#define HEALTHD_PROBE_PG_H

#include <stdbool.h>

/* Wall-clock time of the oldest SHOW SERVERS snapshot among the live
 * pgbouncer probes that have one, or 0 when none has: no bypass can be
 * told then. */
double pgbouncer_servers_snapshot(void);
/* True when `pid` serves one of the live PgBouncers. */
bool pgbouncer_pid_pooled(int pid);

#endif
