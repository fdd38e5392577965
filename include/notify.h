/* Notifications (SPEC 12): what to tell whom, and when.  Pure: no I/O, no
 * clock; every call takes the wall time `now` (epoch seconds).
 *
 * A notifier is one [notify NAME].  It follows the status of every target
 * it watches, decides what the receiver must hear (min_duration,
 * notify_warn, send_resolved), keeps a bounded queue of what is still to be
 * sent (one entry per target: a newer state replaces the queued one), and
 * hands out one request at a time (one in flight keeps the order), with
 * backoff after a failure.  notify_http.c carries the requests; notify_hub.c
 * ties both to the loop, the record and the renderers.
 *
 * Alertmanager notifiers keep, per target, the alerts they posted: firing
 * ones are re-posted every repeat_interval with endsAt = now + 4 x
 * repeat_interval, resolved ones for 15 minutes with endsAt = the recovery
 * time.  Webhook notifiers keep what the receiver last got per target. */
#ifndef HEALTHD_NOTIFY_H
#define HEALTHD_NOTIFY_H

#include "config.h"
#include "health.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NOTIFY_MAX_TRIES 10
#define NOTIFY_BACKOFF_MAX 60.0
/* How long a resolved alert is re-posted (Prometheus does the same). */
#define NOTIFY_RESOLVED_KEEP 900.0

struct json_t;

/* ---- payloads (notify_payload.c) ---- */

/* One Alertmanager alert. */
struct np_alert {
        enum status status; /* ST_FAIL: HdmsHealthdTargetDown, ST_WARN: ...Degraded */
        const char *target, *kind, *instance;
        bool critical;
        const char *reason, *output;
        double starts_at, ends_at;
};

/* The POST /api/v2/alerts body: a JSON array (malloc'd). */
char *np_alertmanager_body(const struct np_alert *a, size_t n, const char *external_url);

/* One webhook notification. */
struct np_webhook {
        enum status event, previous;
        const char *target, *kind, *instance;
        const char *reason, *output; /* of the new status; may be NULL */
        double time;                 /* the transition */
        double since;                /* when the reported episode began */
        double duration;             /* seconds it lasted (so far) */
        const char *external_url;    /* may be NULL */
};

/* The webhook's JSON body (malloc'd). */
char *np_webhook_body(const struct np_webhook *w);
/* Its `text`: one human line. */
void np_webhook_text(const struct np_webhook *w, char *buf, size_t len);

/* ---- one notifier ---- */

struct notifier;

/* What a status change says (from the engine, see engine_set_status_listener). */
struct notify_event {
        const char *target, *kind;
        bool critical;
        enum status from, to;
        const char *reason, *output; /* of `to`; NULL or "" for a pass */
        double time;                 /* wall clock of the result that changed it */
};

/* A request to carry: owned by the notifier until notifier_done. */
struct notify_request {
        const char *url; /* the full URL (a secret) */
        const char *bearer_token;
        const char *ca_file;
        const char *body;
        size_t body_len;
        int64_t timeout_ms;
        char target[TARGET_NAME_MAX];
        int tries; /* this request's attempt, from 1 */
};

enum notify_outcome { NOTIFY_SENT, NOTIFY_RETRY, NOTIFY_FAILED };

struct notify_stats {
        uint64_t sent, failed, dropped;
        size_t queue_length; /* waiting, plus the one in flight */
        double last_success; /* wall clock, 0 if none */
        double last_error;   /* wall clock, 0 if none */
        char last_error_text[200];
};

/* `c` and the two strings must stay valid until the next notifier_set_conf
 * or notifier_free. */
struct notifier *notifier_new(const struct notify_conf *c, const char *instance,
                              const char *external_url);
void notifier_set_conf(struct notifier *n, const struct notify_conf *c, const char *instance,
                       const char *external_url);
void notifier_free(struct notifier *n);
const struct notify_conf *notifier_conf(const struct notifier *n);

/* A watched target's status changed (targets the notifier does not watch
 * are ignored). */
void notifier_status(struct notifier *n, const struct notify_event *ev, double now);
/* The target is no longer watched (gone from the configuration): its
 * Alertmanager alerts are resolved now; nothing else is sent. */
void notifier_forget(struct notifier *n, const char *target, double now);
/* Forgets (as notifier_forget) every target that `cfg` no longer has or
 * that the notifier no longer watches. */
void notifier_prune(struct notifier *n, const struct config *cfg, double now);
/* min_duration expiries, re-posts, expiry of resolved alerts. */
void notifier_tick(struct notifier *n, double now);
/* The wall clock stepped by `delta` seconds (an NTP step, a clock set by
 * hand): every deadline of the notifier (min_duration waits, re-posts, the
 * end of a backoff) moves with it, so each keeps its distance from now.
 * What was sent (an alert's startsAt and endsAt) stays as it was. */
void notifier_clock_step(struct notifier *n, double delta);
/* When notifier_tick or notifier_take next has something to do (0: only
 * after the next status change). */
double notifier_next_wake(const struct notifier *n);

/* The next request, if one is due and none is in flight. */
bool notifier_take(struct notifier *n, double now, struct notify_request *req);
/* The in-flight request ended: `http_status` 0 for a transport error
 * (`error` says which), else the response's status.  Returns what
 * happened; on NOTIFY_RETRY the entry waits for its backoff. */
enum notify_outcome notifier_done(struct notifier *n, double now, long http_status,
                                  const char *error);
bool notifier_in_flight(const struct notifier *n);
/* The target of the request last taken (for messages). */
const char *notifier_last_target(const struct notifier *n);

void notifier_get_stats(const struct notifier *n, struct notify_stats *s);
/* True once after anything the state file keeps changed. */
bool notifier_take_dirty(struct notifier *n);

/* The state file's member for this notifier (caller owns it). */
struct json_t *notifier_save(const struct notifier *n);
/* Restores what notifier_save wrote (a fresh notifier); unknown or damaged
 * parts are skipped.  Firing alerts are re-posted soon (the same alerts:
 * Alertmanager merges them). */
void notifier_restore(struct notifier *n, const struct json_t *saved, double now);

#endif
