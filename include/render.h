/* Renderers: turn a snapshot of target views into bytes.  Pure: no I/O, the
 * time comes in `now` (wall clock, epoch seconds).  Every returned string is
 * malloc'd and owned by the caller. */
#ifndef HEALTHD_RENDER_H
#define HEALTHD_RENDER_H

#include "journal.h"
#include "record.h"
#include "target.h"

#include <stdbool.h>
#include <stddef.h>

struct notifier_view;

struct render_ctx {
        const char *version;
        double now;    /* wall clock */
        double uptime; /* seconds since the daemon started */
        bool detail;   /* false when a token is set: probes show no output text */
        double mono;   /* monotonic now, for service-level reports */
        const struct hist *loop_lag;
        int64_t startup_target_ms;
        int64_t reconnect_target_ms;
        /* the record (SPEC 11), NULL when there is none (--once) */
        const struct journal *journal;
        const struct record_stats *record;
        const char *nonce; /* the dashboard's script nonce (CSP), or NULL */
        /* the notifiers (SPEC 12); none with --once */
        const struct notifier_view *notifiers;
        size_t nnotifiers;
};

/* Aggregate of critical targets (SPEC 3): fail if any fails or is unknown,
 * else warn if any target warns, else pass. */
enum status render_aggregate(const struct target_view *v, size_t n);

/* True when every critical target has passed once. */
bool render_started(const struct target_view *v, size_t n);

/* Body of /readyz and /startupz (startup: which critical targets have not
 * connected yet).  Under 4 KiB whatever the number of targets. */
char *render_ready_json(const struct target_view *v, size_t n, const struct render_ctx *c,
                        bool startup, enum status *st);
/* Body of /health/{target}. */
char *render_target_json(const struct target_view *v, const struct render_ctx *c);
/* The full /status report, application/health+json. */
char *render_status_json(const struct target_view *v, size_t n, const struct render_ctx *c,
                         enum status *st);

/* Prometheus text exposition 0.0.4 (/metrics). */
char *render_metrics(const struct target_view *v, size_t n, const struct render_ctx *c);

/* The HTML dashboard: one self-contained page, every string escaped. */
char *render_html(const struct target_view *v, size_t n, const struct render_ctx *c);

/* Seconds after which a target's last result is stale for /livez (SPEC 5):
 * max(3 x interval, interval + timeout + retry_interval). */
double render_stale_after(const struct target_view *v);

#endif
