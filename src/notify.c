/* One notifier's decisions (see notify.h): per target what the receiver was
 * told, the queue of what is still to be told, retries.  Pure: no I/O, no
 * clock.
 *
 * The queue holds at most one entry per target.  A webhook entry is a
 * snapshot of the event to send; a newer state of the same target replaces
 * it where it stands.  An Alertmanager entry only names the target: the
 * body is built when it is taken, from the target's alerts as they are
 * then, so it can never be stale.  The request in flight is outside the
 * queue; when it must be retried it goes back to the head, unless a newer
 * entry of its target came meanwhile (that one wins, the old one is
 * dropped). */
#include "notify.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REASON_MAX 48
#define OUTPUT_TEXT_MAX 512

/* One Alertmanager alert this notifier posted for a target. */
struct nalert {
        bool on;
        double starts, ends; /* ends 0: firing */
        char reason[REASON_MAX];
        char output[OUTPUT_TEXT_MAX];
};

struct ntarget {
        char name[TARGET_NAME_MAX];
        char kind[16];
        bool critical;
        bool seen;           /* a status came from this process's engine */
        enum status status;  /* the last status seen */
        enum status from;    /* the status before it */
        double status_since; /* when it changed to `status` */
        char reason[REASON_MAX];
        char output[OUTPUT_TEXT_MAX];
        /* What the receiver was told (or is about to be): ST_FAIL or
         * ST_WARN while a bad state is announced, else ST_UNKNOWN. */
        enum status announced;
        double announced_since;
        double pending_at; /* min_duration: when the bad status may be sent; 0 none */
        /* webhook: the last event the receiver acknowledged (state file) */
        enum status delivered;
        double delivered_since;
        /* alertmanager: [0] HdmsHealthdTargetDown, [1] ...Degraded */
        struct nalert alerts[2];
        double next_repost;
};

struct nentry {
        char target[TARGET_NAME_MAX];
        int tries; /* attempts already made */
        /* webhook */
        enum status event, previous;
        char reason[REASON_MAX];
        char output[OUTPUT_TEXT_MAX];
        double time, since, duration;
};

struct notifier {
        const struct notify_conf *c;
        const char *instance, *external_url;
        char *post_url; /* alertmanager: url + /api/v2/alerts */
        struct ntarget *targets;
        size_t ntargets;
        struct nentry *queue; /* a ring of c->queue_max */
        size_t qcap, qhead, qlen;
        bool in_flight;
        struct nentry flight;
        char *body;
        double retry_at; /* nothing is taken before it */
        bool dirty;
        struct notify_stats st;
};

static int alert_index(enum status s)
{
        return s == ST_WARN ? 1 : 0;
}

static bool is_bad(const struct notifier *n, enum status s)
{
        return s == ST_FAIL || (s == ST_WARN && n->c->notify_warn);
}

static void copy(char *dst, size_t len, const char *src)
{
        snprintf(dst, len, "%s", src != NULL ? src : "");
}

/* ---- lifecycle ---- */

static void queue_resize(struct notifier *n, size_t cap)
{
        struct nentry *q = calloc(cap, sizeof(*q));
        if (q == NULL)
                abort();
        /* keep the newest `cap` entries */
        size_t keep = n->qlen < cap ? n->qlen : cap;
        for (size_t i = 0; i < keep; i++)
                q[i] = n->queue[(n->qhead + n->qlen - keep + i) % n->qcap];
        n->st.dropped += n->qlen - keep;
        free(n->queue);
        n->queue = q;
        n->qcap = cap;
        n->qhead = 0;
        n->qlen = keep;
}

/* Alertmanager's API path after the configured base URL (which may carry
 * a path prefix, and, before a query string, a trailing slash). */
static char *post_url_of(const struct notify_conf *c)
{
        if (c->kind != NOTIFY_ALERTMANAGER)
                return NULL;
        const char *url = c->url;
        size_t base = strcspn(url, "?#");
        size_t cut = base;
        while (cut > 0 && url[cut - 1] == '/')
                cut--;
        static const char api[] = "/api/v2/alerts";
        size_t n = strlen(url) + sizeof(api);
        char *s = malloc(n);
        if (s == NULL)
                abort();
        snprintf(s, n, "%.*s%s%s", (int)cut, url, api, url + base);
        return s;
}

struct notifier *notifier_new(const struct notify_conf *c, const char *instance,
                              const char *external_url)
{
        struct notifier *n = calloc(1, sizeof(*n));
        if (n == NULL)
                abort();
        n->c = c;
        n->instance = instance;
        n->external_url = external_url;
        n->post_url = post_url_of(c);
        n->qcap = 1;
        n->queue = calloc(1, sizeof(*n->queue));
        if (n->queue == NULL)
                abort();
        queue_resize(n, (size_t)c->queue_max);
        return n;
}

void notifier_set_conf(struct notifier *n, const struct notify_conf *c, const char *instance,
                       const char *external_url)
{
        n->c = c;
        n->instance = instance;
        n->external_url = external_url;
        free(n->post_url);
        n->post_url = post_url_of(c);
        if ((size_t)c->queue_max != n->qcap)
                queue_resize(n, (size_t)c->queue_max);
}

void notifier_free(struct notifier *n)
{
        if (n == NULL)
                return;
        free(n->targets);
        free(n->queue);
        free(n->body);
        free(n->post_url);
        free(n);
}

const struct notify_conf *notifier_conf(const struct notifier *n)
{
        return n->c;
}

static struct ntarget *find_target(struct notifier *n, const char *name)
{
        for (size_t i = 0; i < n->ntargets; i++)
                if (strcmp(n->targets[i].name, name) == 0)
                        return &n->targets[i];
        return NULL;
}

static struct ntarget *add_target(struct notifier *n, const char *name)
{
        struct ntarget *t = find_target(n, name);
        if (t != NULL)
                return t;
        struct ntarget *v = realloc(n->targets, (n->ntargets + 1) * sizeof(*v));
        if (v == NULL)
                abort();
        n->targets = v;
        t = &v[n->ntargets++];
        memset(t, 0, sizeof(*t));
        copy(t->name, sizeof(t->name), name);
        return t;
}

/* ---- the queue ---- */

static struct nentry *qat(struct notifier *n, size_t i)
{
        return &n->queue[(n->qhead + i) % n->qcap];
}

static struct nentry *queued(struct notifier *n, const char *target)
{
        for (size_t i = 0; i < n->qlen; i++)
                if (strcmp(qat(n, i)->target, target) == 0)
                        return qat(n, i);
        return NULL;
}

static void drop_head(struct notifier *n)
{
        n->qhead = (n->qhead + 1) % n->qcap;
        n->qlen--;
        n->st.dropped++;
}

/* Adds or replaces the target's entry; a full queue loses its oldest. */
static void enqueue(struct notifier *n, const struct nentry *e)
{
        struct nentry *old = queued(n, e->target);
        if (old != NULL) {
                int tries = old->tries;
                *old = *e;
                old->tries = tries;
                n->st.dropped++; /* the replaced one is never sent (docs/notifications.md) */
                return;
        }
        if (n->qlen == n->qcap)
                drop_head(n);
        *qat(n, n->qlen) = *e;
        n->qlen++;
}

/* ---- what to tell ---- */

static void webhook_event(struct notifier *n, struct ntarget *t, enum status event,
                          enum status previous, double time, double since, double duration)
{
        struct nentry e;
        memset(&e, 0, sizeof(e));
        copy(e.target, sizeof(e.target), t->name);
        e.event = event;
        e.previous = previous;
        if (event != ST_PASS) {
                copy(e.reason, sizeof(e.reason), t->reason);
                copy(e.output, sizeof(e.output), t->output);
        }
        e.time = time;
        e.since = since;
        e.duration = duration;
        enqueue(n, &e);
}

static void alert_post(struct notifier *n, struct ntarget *t, double now)
{
        struct nentry e;
        memset(&e, 0, sizeof(e));
        copy(e.target, sizeof(e.target), t->name);
        enqueue(n, &e);
        t->next_repost = now + (double)n->c->repeat_interval_ms / 1000.0;
}

/* The receiver learns that the announced bad state ended (at the time the
 * target's current status began). */
static void announce_end(struct notifier *n, struct ntarget *t, double now)
{
        enum status was = t->announced;
        double end = t->status_since;
        t->announced = ST_UNKNOWN;
        n->dirty = true;
        if (n->c->kind == NOTIFY_ALERTMANAGER) {
                struct nalert *a = &t->alerts[alert_index(was)];
                if (!a->on || a->ends > 0)
                        return;
                if (!n->c->send_resolved) {
                        /* left to expire at the endsAt last posted */
                        a->on = false;
                        return;
                }
                a->ends = end > a->starts ? end : now;
                alert_post(n, t, now);
        } else if (n->c->send_resolved) {
                webhook_event(n, t, t->status, was, end, t->announced_since,
                              end - t->announced_since);
        }
}

/* The receiver learns of the bad status the target is in. */
static void announce_bad(struct notifier *n, struct ntarget *t, double now)
{
        if (t->announced != ST_UNKNOWN && t->announced != t->status) {
                /* fail -> warn (both told): the old alert ends here */
                if (n->c->kind == NOTIFY_ALERTMANAGER) {
                        struct nalert *old = &t->alerts[alert_index(t->announced)];
                        if (old->on && old->ends == 0) {
                                old->ends = t->status_since;
                                if (!n->c->send_resolved)
                                        old->on = false;
                        }
                }
        }
        enum status prev = t->announced != ST_UNKNOWN ? t->announced : t->from;
        t->announced = t->status;
        t->announced_since = t->status_since;
        t->pending_at = 0;
        n->dirty = true;
        if (n->c->kind == NOTIFY_ALERTMANAGER) {
                struct nalert *a = &t->alerts[alert_index(t->status)];
                a->on = true;
                a->starts = t->status_since;
                a->ends = 0;
                copy(a->reason, sizeof(a->reason), t->reason);
                copy(a->output, sizeof(a->output), t->output);
                alert_post(n, t, now);
        } else {
                webhook_event(n, t, t->status, prev, t->status_since, t->status_since,
                              now - t->status_since);
        }
}

void notifier_status(struct notifier *n, const struct notify_event *ev, double now)
{
        if (!notify_conf_watches(n->c, ev->target) || ev->to == ST_UNKNOWN)
                return;
        struct ntarget *t = add_target(n, ev->target);
        copy(t->kind, sizeof(t->kind), ev->kind);
        t->critical = ev->critical;
        t->seen = true;
        t->from = ev->from;
        t->status = ev->to;
        t->status_since = ev->time;
        copy(t->reason, sizeof(t->reason), ev->to != ST_PASS ? ev->reason : NULL);
        copy(t->output, sizeof(t->output), ev->to != ST_PASS ? ev->output : NULL);

        if (!is_bad(n, ev->to)) {
                t->pending_at = 0;
                if (t->announced != ST_UNKNOWN)
                        announce_end(n, t, now);
                return;
        }
        if (t->announced == ev->to) {
                /* already told (a restart, or a new reason for the same
                 * state): Alertmanager's alert keeps its start; its text
                 * follows the next re-post */
                if (n->c->kind == NOTIFY_ALERTMANAGER) {
                        struct nalert *a = &t->alerts[alert_index(ev->to)];
                        copy(a->reason, sizeof(a->reason), t->reason);
                        copy(a->output, sizeof(a->output), t->output);
                }
                return;
        }
        double due = ev->time + (double)n->c->min_duration_ms / 1000.0;
        if (n->c->min_duration_ms > 0 && due > now) {
                t->pending_at = due;
                return;
        }
        announce_bad(n, t, now);
}

void notifier_forget(struct notifier *n, const char *target, double now)
{
        struct ntarget *t = find_target(n, target);
        if (t == NULL)
                return;
        t->pending_at = 0;
        if (n->c->kind != NOTIFY_ALERTMANAGER) {
                /* nothing to tell a webhook; nothing more to keep for it */
                n->dirty = n->dirty || t->delivered != ST_UNKNOWN;
                t->announced = t->delivered = ST_UNKNOWN;
                return;
        }
        t->status = ST_UNKNOWN;
        t->status_since = now;
        if (t->announced != ST_UNKNOWN)
                announce_end(n, t, now);
}

void notifier_prune(struct notifier *n, const struct config *cfg, double now)
{
        for (size_t i = 0; i < n->ntargets; i++) {
                const char *name = n->targets[i].name;
                if (config_find_target(cfg, name) == NULL || !notify_conf_watches(n->c, name))
                        notifier_forget(n, name, now);
        }
}

void notifier_tick(struct notifier *n, double now)
{
        for (size_t i = 0; i < n->ntargets; i++) {
                struct ntarget *t = &n->targets[i];
                if (t->pending_at > 0 && t->pending_at <= now) {
                        t->pending_at = 0;
                        if (is_bad(n, t->status) && t->announced != t->status)
                                announce_bad(n, t, now);
                }
                if (n->c->kind != NOTIFY_ALERTMANAGER)
                        continue;
                bool any = false;
                for (int k = 0; k < 2; k++) {
                        struct nalert *a = &t->alerts[k];
                        if (a->on && a->ends > 0 && now >= a->ends + NOTIFY_RESOLVED_KEEP) {
                                a->on = false;
                                n->dirty = true;
                        }
                        any = any || a->on;
                }
                if (any && t->next_repost > 0 && t->next_repost <= now)
                        alert_post(n, t, now);
                if (!any)
                        t->next_repost = 0;
        }
}

void notifier_clock_step(struct notifier *n, double delta)
{
        for (size_t i = 0; i < n->ntargets; i++) {
                struct ntarget *t = &n->targets[i];
                if (t->pending_at > 0)
                        t->pending_at += delta;
                if (t->next_repost > 0)
                        t->next_repost += delta;
        }
        if (n->retry_at > 0)
                n->retry_at += delta;
}

static double earliest(double a, double b)
{
        if (a <= 0)
                return b;
        if (b <= 0)
                return a;
        return a < b ? a : b;
}

double notifier_next_wake(const struct notifier *n)
{
        double w = 0;
        for (size_t i = 0; i < n->ntargets; i++) {
                const struct ntarget *t = &n->targets[i];
                w = earliest(w, t->pending_at);
                w = earliest(w, t->next_repost);
                for (int k = 0; k < 2; k++)
                        if (t->alerts[k].on && t->alerts[k].ends > 0)
                                w = earliest(w, t->alerts[k].ends + NOTIFY_RESOLVED_KEEP);
        }
        if (n->qlen > 0 && !n->in_flight)
                w = earliest(w, n->retry_at > 0 ? n->retry_at : 1);
        return w;
}

/* ---- delivery ---- */

static char *alert_body(struct notifier *n, struct ntarget *t, double now)
{
        struct np_alert a[2];
        size_t na = 0;
        double ends = now + 4.0 * (double)n->c->repeat_interval_ms / 1000.0;
        for (int k = 0; k < 2; k++) {
                const struct nalert *x = &t->alerts[k];
                if (!x->on)
                        continue;
                a[na++] = (struct np_alert){.status = k == 0 ? ST_FAIL : ST_WARN,
                                            .target = t->name,
                                            .kind = t->kind,
                                            .instance = n->instance,
                                            .critical = t->critical,
                                            .reason = x->reason,
                                            .output = x->output,
                                            .starts_at = x->starts,
                                            .ends_at = x->ends > 0 ? x->ends : ends};
        }
        if (na == 0)
                return NULL;
        return np_alertmanager_body(a, na, n->external_url);
}

bool notifier_take(struct notifier *n, double now, struct notify_request *req)
{
        if (n->in_flight || (n->retry_at > 0 && now < n->retry_at))
                return false;
        while (n->qlen > 0) {
                struct nentry e = *qat(n, 0);
                n->qhead = (n->qhead + 1) % n->qcap;
                n->qlen--;
                char *body = NULL;
                struct ntarget *t = find_target(n, e.target);
                if (n->c->kind == NOTIFY_ALERTMANAGER) {
                        if (t != NULL)
                                body = alert_body(n, t, now);
                } else {
                        struct np_webhook w = {.event = e.event,
                                               .previous = e.previous,
                                               .target = e.target,
                                               .kind = t != NULL ? t->kind : "",
                                               .instance = n->instance,
                                               .reason = e.reason,
                                               .output = e.output,
                                               .time = e.time,
                                               .since = e.since,
                                               .duration = e.duration,
                                               .external_url = n->external_url};
                        body = np_webhook_body(&w);
                }
                if (body == NULL)
                        continue; /* nothing left to say (the alerts expired) */
                free(n->body);
                n->body = body;
                n->flight = e;
                n->in_flight = true;
                memset(req, 0, sizeof(*req));
                req->url = n->post_url != NULL ? n->post_url : n->c->url;
                req->bearer_token = n->c->bearer_token;
                req->ca_file = n->c->ca_file;
                req->body = body;
                req->body_len = strlen(body);
                req->timeout_ms = n->c->timeout_ms;
                copy(req->target, sizeof(req->target), e.target);
                req->tries = e.tries + 1;
                return true;
        }
        return false;
}

const char *notifier_last_target(const struct notifier *n)
{
        return n->flight.target;
}

bool notifier_in_flight(const struct notifier *n)
{
        return n->in_flight;
}

static void set_error(struct notifier *n, double now, long http_status, const char *error)
{
        n->st.last_error = now;
        if (http_status > 0)
                snprintf(n->st.last_error_text, sizeof(n->st.last_error_text), "HTTP %ld",
                         http_status);
        else
                copy(n->st.last_error_text, sizeof(n->st.last_error_text),
                     error != NULL ? error : "error");
}

enum notify_outcome notifier_done(struct notifier *n, double now, long http_status,
                                  const char *error)
{
        if (!n->in_flight)
                return NOTIFY_FAILED;
        n->in_flight = false;
        free(n->body);
        n->body = NULL;
        struct nentry *e = &n->flight;
        e->tries++;
        if (http_status >= 200 && http_status < 300) {
                n->st.sent++;
                n->st.last_success = now;
                n->retry_at = 0;
                struct ntarget *t = find_target(n, e->target);
                if (t != NULL && n->c->kind == NOTIFY_WEBHOOK) {
                        t->delivered = e->event;
                        t->delivered_since = e->since;
                        n->dirty = true;
                }
                return NOTIFY_SENT;
        }
        set_error(n, now, http_status, error);
        bool retryable = http_status == 0 || http_status == 429 || http_status >= 500;
        if (!retryable || e->tries >= NOTIFY_MAX_TRIES) {
                n->st.failed++;
                n->retry_at = 0;
                return NOTIFY_FAILED;
        }
        double delay = 1.0;
        for (int i = 1; i < e->tries && delay < NOTIFY_BACKOFF_MAX; i++)
                delay *= 2;
        if (delay > NOTIFY_BACKOFF_MAX)
                delay = NOTIFY_BACKOFF_MAX;
        n->retry_at = now + delay;
        if (queued(n, e->target) != NULL) {
                /* a newer state of the target waits: it replaces this one */
                n->st.dropped++;
                return NOTIFY_RETRY;
        }
        if (n->qlen == n->qcap) {
                n->st.dropped++; /* the oldest is this one */
                return NOTIFY_RETRY;
        }
        n->qhead = (n->qhead + n->qcap - 1) % n->qcap;
        n->qlen++;
        *qat(n, 0) = *e;
        return NOTIFY_RETRY;
}

void notifier_get_stats(const struct notifier *n, struct notify_stats *s)
{
        *s = n->st;
        /* what waits: the request in flight is outside the queue (see the top
         * of this file), so the figure stays within queue_max */
        s->queue_length = n->qlen;
}

bool notifier_take_dirty(struct notifier *n)
{
        bool d = n->dirty;
        n->dirty = false;
        return d;
}

/* ---- the state file ---- */

static json_t *time_or_null(double t)
{
        return t > 0 ? json_real(t) : json_null();
}

json_t *notifier_save(const struct notifier *n)
{
        json_t *o = json_object();
        json_object_set_new(o, "kind", json_string(notify_kind_name(n->c->kind)));
        json_t *targets = json_object();
        for (size_t i = 0; i < n->ntargets; i++) {
                const struct ntarget *t = &n->targets[i];
                json_t *r = json_object();
                /* a webhook receiver knows what it got; Alertmanager what
                 * was posted (re-posted after a restart anyway) */
                enum status told =
                    n->c->kind == NOTIFY_WEBHOOK
                        ? (t->delivered == ST_FAIL || t->delivered == ST_WARN ? t->delivered
                                                                              : ST_UNKNOWN)
                        : t->announced;
                double since =
                    n->c->kind == NOTIFY_WEBHOOK ? t->delivered_since : t->announced_since;
                bool any = told != ST_UNKNOWN;
                json_object_set_new(r, "announced",
                                    told != ST_UNKNOWN ? json_string(status_name(told))
                                                       : json_null());
                json_object_set_new(r, "since", time_or_null(since));
                json_object_set_new(r, "kind", json_string(t->kind));
                json_object_set_new(r, "critical", json_boolean(t->critical));
                json_t *alerts = json_array();
                for (int k = 0; k < 2; k++) {
                        const struct nalert *a = &t->alerts[k];
                        if (!a->on)
                                continue;
                        any = true;
                        json_t *x = json_object();
                        json_object_set_new(x, "status", json_string(k == 0 ? "fail" : "warn"));
                        json_object_set_new(x, "startsAt", json_real(a->starts));
                        json_object_set_new(x, "endsAt", time_or_null(a->ends));
                        json_object_set_new(x, "reason", json_string(a->reason));
                        json_t *out = json_string(a->output);
                        json_object_set_new(x, "output", out != NULL ? out : json_string(""));
                        json_array_append_new(alerts, x);
                }
                json_object_set_new(r, "alerts", alerts);
                if (any)
                        json_object_set_new(targets, t->name, r);
                else
                        json_decref(r);
        }
        json_object_set_new(o, "targets", targets);
        return o;
}

static enum status status_of(const json_t *j)
{
        const char *s = json_string_value(j);
        if (s == NULL)
                return ST_UNKNOWN;
        if (strcmp(s, "fail") == 0)
                return ST_FAIL;
        if (strcmp(s, "warn") == 0)
                return ST_WARN;
        return ST_UNKNOWN;
}

void notifier_restore(struct notifier *n, const json_t *saved, double now)
{
        const json_t *targets = json_object_get(saved, "targets");
        const char *kind = json_string_value(json_object_get(saved, "kind"));
        if (!json_is_object(targets) || kind == NULL ||
            strcmp(kind, notify_kind_name(n->c->kind)) != 0)
                return;
        const char *name;
        const json_t *r;
        json_object_foreach((json_t *)(uintptr_t)targets, name, r)
        {
                /* an Alertmanager's alerts of a target no longer watched are
                 * restored too, so that notifier_prune resolves them */
                if (!json_is_object(r) || strlen(name) >= TARGET_NAME_MAX ||
                    (n->c->kind != NOTIFY_ALERTMANAGER && !notify_conf_watches(n->c, name)))
                        continue;
                struct ntarget *t = add_target(n, name);
                copy(t->kind, sizeof(t->kind), json_string_value(json_object_get(r, "kind")));
                t->critical = json_is_true(json_object_get(r, "critical"));
                t->announced = status_of(json_object_get(r, "announced"));
                t->announced_since = json_number_value(json_object_get(r, "since"));
                t->status = t->announced != ST_UNKNOWN ? t->announced : ST_UNKNOWN;
                t->status_since = t->announced_since;
                if (n->c->kind == NOTIFY_WEBHOOK) {
                        t->delivered = t->announced;
                        t->delivered_since = t->announced_since;
                        continue;
                }
                const json_t *alerts = json_object_get(r, "alerts");
                size_t i;
                const json_t *x;
                json_array_foreach(alerts, i, x)
                {
                        enum status st = status_of(json_object_get(x, "status"));
                        if (st == ST_UNKNOWN)
                                continue;
                        struct nalert *a = &t->alerts[alert_index(st)];
                        a->on = true;
                        a->starts = json_number_value(json_object_get(x, "startsAt"));
                        a->ends = json_number_value(json_object_get(x, "endsAt"));
                        copy(a->reason, sizeof(a->reason),
                             json_string_value(json_object_get(x, "reason")));
                        copy(a->output, sizeof(a->output),
                             json_string_value(json_object_get(x, "output")));
                        if (a->ends > 0 && now >= a->ends + NOTIFY_RESOLVED_KEEP)
                                a->on = false;
                }
                if (t->alerts[0].on || t->alerts[1].on)
                        t->next_repost = now; /* Alertmanager may have restarted too */
        }
}
