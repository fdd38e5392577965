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

/* A render in pieces (issue 13): the /status and /metrics of a thousand
 * targets take tens of milliseconds, too long to hold the loop, so the HTTP
 * front adds a few targets per loop turn and joins the parts at the end.
 * Each target's part is made from its view as it is added, so a target's
 * own figures agree with each other, and the aggregate status is that of
 * the rows shown.  The bytes are the one-shot renderers' (they are this,
 * in one go). */
enum render_kind { RENDER_STATUS_JSON, RENDER_STATUS_HTML, RENDER_METRICS };
struct render_job;
/* `c` is copied; what it points to (nonce, record, journal, loop_lag) must
 * live until the job is finished or freed.  `n`: the targets to come (a
 * hint for the allocation). */
struct render_job *render_job_new(enum render_kind kind, const struct render_ctx *c, size_t n);
/* The next target's part, from its view (valid for this call only). */
void render_job_add(struct render_job *j, const struct target_view *v);
/* Targets added so far. */
size_t render_job_count(const struct render_job *j);
/* The whole answer (malloc'd, NULL when the render failed) and its
 * aggregate status; frees the job. */
char *render_job_finish(struct render_job *j, enum status *st);
/* Frees an unfinished job. */
void render_job_free(struct render_job *j);

/* The answer as pieces, for a large one: read in slices, never copied
 * whole (render_job.h).  NULL when the render failed; frees the job. */
struct render_answer;
struct render_answer *render_job_answer(struct render_job *j, enum status *st);
size_t render_answer_size(const struct render_answer *a);
/* Up to `max` bytes of the answer from offset `pos`; how many. */
size_t render_answer_read(struct render_answer *a, size_t pos, char *buf, size_t max);
/* Piece i of the answer (false past the last): consecutive pieces are the
 * answer in order. */
bool render_answer_piece(const struct render_answer *a, size_t i, const char **s, size_t *len);
/* The answer in one malloc'd string. */
char *render_answer_join(struct render_answer *a);
void render_answer_free(struct render_answer *a);
/* Frees one of its buffers (a megabyte at most), or the rest of it when
 * none is left: true when it is gone.  Unmapping 9 MB at once takes 2-5 ms;
 * this lets the loop do it a piece per turn. */
bool render_answer_free_some(struct render_answer *a);

/* Seconds after which a target's last result is stale for /livez (SPEC 5):
 * max(3 x interval, interval + timeout + retry_interval). */
double render_stale_after(const struct target_view *v);

#endif
