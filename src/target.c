/* The target engine.  A check is: resolve (unless connected) -> probe ->
 * probe_done(), all under one deadline timer; every path ends in finish(),
 * which feeds rise/fall, logs a transition and schedules the next check. */
#include "target.h"
#include "notify.h"
#include "clock.h"
#include "log.h"
#include "slo.h"
#include "strbuf.h"
#include "textutil.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct target {
        struct engine *eng;
        struct probe_env env;
        const struct probe_ops *ops;
        void *probe;
        struct health health;

        struct event *timer;    /* next check */
        double due;             /* when `timer` should fire (monotonic) */
        bool lag_sample;        /* its lateness is a loop-lag sample (see on_timer) */
        int slot, nslots;       /* phase on the schedule grid: slot/nslots of an interval */
        struct event *deadline; /* the in-flight check's timeout */
        bool in_flight;
        bool resolving;
        struct resolve_req *dns;
        double started; /* monotonic */
        double created; /* monotonic: when this target, or its current configuration, began */
        bool once_reported;

        bool has_last;
        struct probe_result last;  /* raw result of the last check */
        struct probe_result shown; /* the result behind the reported status */
        enum status status;
        double last_duration;
        double last_check_wall, last_check_mono, last_change_wall;
        bool ever_passed;
        bool ever_up; /* up after rise/fall at least once */
        double startup_seconds;
        char up_server_id[64]; /* server identity while last up */
        const char *last_outage;
        unsigned long checks, failures, transitions;
        struct slo *slo;
        double first_ok_down; /* first passing check while down (monotonic), 0 = none */
        bool fresh;           /* no result and no restored history yet */
        bool restored;
        char prev_status[16], prev_reason[REASON_MAX];
};

struct engine {
        struct event_base *base;
        struct resolver *res;
        const struct config *cfg;
        struct target **targets;
        size_t ntargets;
        uint64_t generation;
        double started;
        void (*once_done)(void *);
        void *once_arg;
        bool once;
        /* the loop's own lag: a timer that should fire every LAG_PERIOD */
        struct event *lag_timer;
        double lag_expected;
        double lag_last_due; /* the grid point last sampled */
        struct hist lag;
        struct journal *journal;    /* where transitions go (SPEC 11); may be NULL */
        engine_status_fn status_fn; /* the notifiers (SPEC 12); may be NULL */
        void *status_arg;
};

/* Check timers are the lag samples (no wakeup of their own; see on_timer);
 * this timer adds one a second, for a loop whose targets are all in flight or
 * on long intervals. Each check-timer sample postpones it to LAG_PERIOD +
 * LAG_SLACK after that sample, so a schedule that samples at least that
 * often (five targets at 1 s) never wakes the loop for it: a wakeup is most
 * of what an idle check round costs. */
#define LAG_PERIOD 1.0
#define LAG_SLACK 0.25

/* Targets per phase slot of the schedule grid (see next_slot). */
#define PHASE_GROUP 32

static struct timeval ms_tv(int64_t ms)
{
        struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
                             .tv_usec = (suseconds_t)(ms % 1000) * 1000};
        return tv;
}

/* ---- results ---- */

void probe_result_init(struct probe_result *r)
{
        memset(r, 0, sizeof(*r));
        r->status = ST_PASS;
        r->consumers = r->used_memory = r->maxmemory = r->connected_clients = r->maxclients = -1;
        r->connections = r->max_connections = r->bypass = -1;
        r->usable_connections = -1;
        r->clients = r->max_client_conn = -1;
}

static void vset_output(struct probe_result *r, bool append, const char *fmt, va_list ap)
{
        char raw[OUTPUT_MAX];
        utf8_vsnprintf(raw, sizeof(raw), fmt, ap); /* a cut leaves no half character */
        if (!append || r->output[0] == '\0') {
                utf8_clean(r->output, sizeof(r->output), raw, strlen(raw));
                return;
        }
        size_t n = strlen(r->output);
        if (n + 3 >= sizeof(r->output))
                return;
        memcpy(r->output + n, "; ", 2);
        utf8_clean(r->output + n + 2, sizeof(r->output) - n - 2, raw, strlen(raw));
}

void probe_result_set(struct probe_result *r, enum status st, const char *reason, const char *fmt,
                      ...)
{
        va_list ap;
        r->status = st;
        snprintf(r->reason, sizeof(r->reason), "%s", reason != NULL ? reason : "");
        va_start(ap, fmt);
        vset_output(r, false, fmt, ap);
        va_end(ap);
}

void probe_result_worsen(struct probe_result *r, enum status st, const char *reason,
                         const char *fmt, ...)
{
        va_list ap;
        if (st > r->status) {
                r->status = st;
                snprintf(r->reason, sizeof(r->reason), "%s", reason);
                /* the worse problem's message goes first */
                char old[OUTPUT_MAX];
                snprintf(old, sizeof(old), "%s", r->output);
                va_start(ap, fmt);
                vset_output(r, false, fmt, ap);
                va_end(ap);
                size_t n = strlen(r->output);
                if (old[0] != '\0' && n + 3 < sizeof(r->output)) {
                        memcpy(r->output + n, "; ", 2);
                        /* never cuts a character in two */
                        utf8_clean(r->output + n + 2, sizeof(r->output) - n - 2, old, strlen(old));
                }
                return;
        }
        va_start(ap, fmt);
        vset_output(r, true, fmt, ap);
        va_end(ap);
}

static void slo_targets_of(const struct engine *e, const struct target_conf *c,
                           struct slo_targets *st)
{
        st->startup = (double)e->cfg->startup_target_ms / 1000.0;
        st->reconnect = (double)e->cfg->reconnect_target_ms / 1000.0;
        st->latency = (double)c->latency_target_ms / 1000.0;
}

/* ---- scheduling ---- */

static void run_check(struct target *t);

static void observe_lag(struct engine *e, double due)
{
        double lag = mono_now() - due;
        hist_observe(&e->lag, lag > 0 ? lag : 0);
}

/* The lag timer's next firing, at a monotonic time. */
static void lag_arm(struct engine *e, double at)
{
        event_base_update_cache_time(e->base);
        double d = at - mono_now();
        if (d < 0)
                d = 0;
        struct timeval tv = {.tv_sec = (time_t)d,
                             .tv_usec = (suseconds_t)((d - (double)(time_t)d) * 1e6)};
        e->lag_expected = at;
        evtimer_add(e->lag_timer, &tv);
}

/* A timer's lateness is the loop's lag, once per point in time: the targets
 * of one grid slot share their due time to the bit, and only the first of
 * them is a sample (the others would count the checks started before them in
 * the same turn). Immediate checks (start-up, reconnect, re-check) are not
 * samples: they wait for the loop turn that scheduled them by design. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
        struct target *t = arg;
        struct engine *e = t->eng;
        (void)fd;
        (void)what;
        if (t->lag_sample && t->due != e->lag_last_due) {
                observe_lag(e, t->due);
                e->lag_last_due = t->due;
                if (evtimer_pending(e->lag_timer, NULL))
                        lag_arm(e, t->due + LAG_PERIOD + LAG_SLACK);
        }
        run_check(t);
}

static void schedule(struct target *t, int64_t ms)
{
        struct timeval tv = ms_tv(ms);
        event_base_update_cache_time(t->eng->base); /* count from now, see run_check */
        t->due = mono_now() + (double)ms / 1000.0;
        t->lag_sample = ms > 0;
        evtimer_add(t->timer, &tv);
}

/* At a monotonic time, to the microsecond. */
static void schedule_at(struct target *t, double due)
{
        event_base_update_cache_time(t->eng->base);
        double now = mono_now();
        double d = due > now ? due - now : 0;
        struct timeval tv = {.tv_sec = (time_t)d,
                             .tv_usec = (suseconds_t)((d - (double)(time_t)d) * 1e6)};
        t->due = due;
        t->lag_sample = true;
        evtimer_add(t->timer, &tv);
}

/* Regular checks start on a grid: engine start + phase + k x interval, start
 * to start. Targets of one interval and slot share the grid points, so their
 * checks start in the same loop turn and their wakeups coincide (idle CPU),
 * and a large set is spread over the interval in slots of PHASE_GROUP
 * targets (loop lag). The next check is at the first grid point after now:
 * a check started on the grid keeps its period (timeout < interval), and
 * after a retry phase the gap is at most one interval. */
static double next_slot(const struct target *t, double now)
{
        double iv = (double)t->env.conf->interval_ms / 1000.0;
        double base = t->eng->started + (t->nslots > 1 ? iv * t->slot / t->nslots : 0);
        double k = floor((now - base) / iv) + 1;
        return base + k * iv;
}

static void set_phases(struct engine *e)
{
        int nslots = (int)((e->ntargets + PHASE_GROUP - 1) / PHASE_GROUP);
        for (size_t i = 0; i < e->ntargets; i++) {
                e->targets[i]->slot = (int)(i / PHASE_GROUP);
                e->targets[i]->nslots = nslots;
        }
}

static void maybe_once_done(struct engine *e)
{
        if (!e->once || e->once_done == NULL)
                return;
        for (size_t i = 0; i < e->ntargets; i++)
                if (!e->targets[i]->once_reported)
                        return;
        void (*cb)(void *) = e->once_done;
        e->once_done = NULL;
        cb(e->once_arg);
}

static void recheck_pgbouncers(struct engine *e)
{
        for (size_t i = 0; i < e->ntargets; i++) {
                struct target *p = e->targets[i];
                if (p->env.conf->kind == KIND_PGBOUNCER && !p->in_flight)
                        schedule(p, 0);
        }
}

/* Root cause: a pooler check that fails while a postgres target fails too
 * is about the database behind the pooler, not the pooler. */
static bool reason_in(const char *reason, const char *const *set)
{
        for (; *set != NULL; set++)
                if (strcmp(reason, *set) == 0)
                        return true;
        return false;
}

static void blame_database(struct engine *e, struct probe_result *r)
{
        /* the pooler's own problems: not explained by its database */
        static const char *const own[] = {
            "auth_failed", "connect_refused",  "connect_failed", "dns_failed",
            "dns_timeout", "database_missing", "protocol_error", NULL};
        /* postgres failures that mean the database is unavailable */
        static const char *const down[] = {"connect_refused", "connect_failed", "connection_lost",
                                           "timeout",         "starting_up",    "shutting_down",
                                           "dns_failed",      "dns_timeout",    NULL};
        if (reason_in(r->reason, own))
                return;
        for (size_t i = 0; i < e->ntargets; i++) {
                const struct target *pg = e->targets[i];
                if (pg->env.conf->kind != KIND_POSTGRES || !pg->has_last ||
                    pg->last.status != ST_FAIL || !reason_in(pg->last.reason, down))
                        continue;
                char out[OUTPUT_MAX];
                snprintf(out, sizeof(out), "%s", r->output);
                snprintf(r->reason, sizeof(r->reason), "database_down");
                /* The pooler's own message (server text) is cut to fit: at
                 * a character boundary, or /status would lose it whole. */
                utf8_snprintf(r->output, sizeof(r->output),
                              "the database behind the pooler is down (target %s: %s); %s",
                              pg->env.conf->name, pg->last.reason, out);
                return;
        }
}

/* The one path from the engine to the record: a status change and the end
 * of an outage become journal events.  A target's first result after a
 * start is a transition from unknown; when that is a pass it is the normal
 * start, not an event worth a line in the timeline. */
static void record_events(struct target *t, enum status before, const char *outage,
                          uint64_t closed_before)
{
        struct journal *j = t->eng->journal;
        const struct target_conf *c = t->env.conf;
        if (t->status != before && t->eng->status_fn != NULL) {
                const struct probe_result *why = t->status == ST_PASS ? NULL : &t->shown;
                struct notify_event ev = {.target = c->name,
                                          .kind = target_kind_name(c->kind),
                                          .critical = c->critical,
                                          .from = before,
                                          .to = t->status,
                                          .reason = why != NULL ? why->reason : NULL,
                                          .output = why != NULL ? why->output : NULL,
                                          .time = t->last_check_wall};
                t->eng->status_fn(t->eng->status_arg, &ev);
        }
        if (j == NULL)
                return;
        if (t->status != before && !(before == ST_UNKNOWN && t->status == ST_PASS)) {
                const struct probe_result *why = t->status == ST_PASS ? NULL : &t->shown;
                journal_transition(j, t->last_check_wall, c->name, target_kind_name(c->kind),
                                   status_name(before), status_name(t->status),
                                   why != NULL ? why->reason : NULL,
                                   why != NULL ? why->output : NULL);
        }
        struct slo_outage o;
        slo_last_outage(t->slo, &o);
        if (o.closed == closed_before || !(o.unobserved || o.reconnection))
                return;
        journal_outage_end(j, t->last_check_wall, c->name, target_kind_name(c->kind), o.seconds,
                           o.unobserved     ? "unobserved"
                           : outage != NULL ? outage
                                            : "blip",
                           o.unobserved ? -1 : o.met, o.unobserved ? -1 : o.reconnect_seconds);
}

/* Every check ends here, exactly once. */
static void finish(struct target *t, struct probe_result *r, bool reconnect_now)
{
        struct engine *e = t->eng;
        const struct target_conf *c = t->env.conf;
        double now = mono_now();

        t->in_flight = false;
        t->resolving = false;
        t->dns = NULL;
        evtimer_del(t->deadline);
        t->last_duration = now - t->started;
        t->last_check_mono = now;
        t->last_check_wall = wall_now();
        t->checks++;
        t->fresh = false;
        e->generation++;

        bool ok = r->status != ST_FAIL;
        if (!ok) {
                t->failures++;
                if (c->kind == KIND_PGBOUNCER)
                        blame_database(e, r);
        }
        t->last = *r;
        t->has_last = true;

        enum status before = t->status;
        bool was_up = t->health.up;
        health_feed(&t->health, ok);
        slo_check(t->slo, now, ok, t->last_duration);
        for (int i = 0; i < r->nops; i++)
                slo_op(t->slo, r->ops[i].op, r->ops[i].seconds);
        if (ok && !t->health.up && t->first_ok_down == 0)
                t->first_ok_down = now;
        if (!ok)
                t->first_ok_down = 0;
        if (!t->health.known)
                t->status = ST_UNKNOWN;
        else if (t->health.up) {
                if (ok)
                        t->shown = *r;
                t->status = t->shown.status;
        } else {
                if (!ok)
                        t->shown = *r;
                t->status = ST_FAIL;
        }
        if (ok && !t->ever_passed) {
                t->ever_passed = true;
                t->startup_seconds = now - e->started;
        }

        /* Outages: a target down from its first check is down time too, but
         * its first time up is a (slow) start, not a reconnection. */
        bool came_up = t->health.up && !was_up;
        bool went_down = !t->health.up && (was_up || before == ST_UNKNOWN);
        const char *outage = NULL;
        if (came_up && t->ever_up) {
                /* back from an outage: a changed server identity is a restart */
                outage = t->up_server_id[0] != '\0' && r->server_id[0] != '\0' &&
                                 strcmp(t->up_server_id, r->server_id) != 0
                             ? "restart"
                             : "blip";
                t->last_outage = outage;
        }
        struct slo_outage closed;
        slo_last_outage(t->slo, &closed);
        if (went_down)
                slo_down(t->slo, now);
        if (came_up) {
                slo_up(t->slo, now, t->first_ok_down > 0 ? t->first_ok_down : now,
                       outage != NULL && strcmp(outage, "restart") == 0);
                t->first_ok_down = 0;
                t->ever_up = true;
        }
        if (t->health.up && r->server_id[0] != '\0')
                snprintf(t->up_server_id, sizeof(t->up_server_id), "%s", r->server_id);

        if (t->status != before) {
                t->transitions++;
                t->last_change_wall = t->last_check_wall;
                const struct probe_result *why = t->status == ST_PASS ? NULL : &t->shown;
                log_transition(c->name, target_kind_name(c->kind), status_name(before),
                               status_name(t->status), why != NULL ? why->reason : NULL,
                               why != NULL ? why->output : NULL, t->last_duration, outage);
        }
        record_events(t, before, outage, closed.closed);

        if (c->kind == KIND_POSTGRES && !ok && !e->once)
                recheck_pgbouncers(e);

        if (e->once) {
                t->once_reported = true;
                maybe_once_done(e);
                return;
        }
        if (reconnect_now)
                schedule(t, 0);
        else if (health_retrying(&t->health))
                schedule(t, c->retry_interval_ms);
        else
                schedule_at(t, next_slot(t, now));
}

void probe_done(struct target *t, const struct probe_result *r)
{
        if (!t->in_flight)
                return;
        struct probe_result copy = *r;
        finish(t, &copy, false);
}

void probe_lost(struct target *t, const char *reason, const char *output)
{
        if (t->in_flight)
                return; /* the check in flight sees it too */
        struct probe_result r;
        probe_result_init(&r);
        probe_result_set(&r, ST_FAIL, reason, "%s", output);
        t->in_flight = true;
        t->started = mono_now();
        evtimer_del(t->timer);
        finish(t, &r, true);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
        struct target *t = arg;
        (void)fd;
        (void)what;
        struct probe_result r;
        probe_result_init(&r);
        const struct target_conf *c = t->env.conf;
        if (t->resolving) {
                struct resolve_req *q = t->dns;
                t->dns = NULL;
                t->resolving = false;
                resolve_cancel(q);
                probe_result_set(&r, ST_FAIL, "dns_timeout",
                                 "no answer resolving '%s' within %lldms", c->host,
                                 (long long)c->timeout_ms);
        } else {
                char phase[200];
                utf8_snprintf(phase, sizeof(phase), "%s", t->ops->phase(t->probe));
                const char *reason =
                    t->ops->timeout_reason != NULL ? t->ops->timeout_reason(t->probe) : "timeout";
                t->ops->abort(t->probe);
                probe_result_set(&r, ST_FAIL, reason, "no answer within %lldms while %s",
                                 (long long)c->timeout_ms, phase);
        }
        finish(t, &r, false);
}

static void on_resolved(void *arg, int err, const char *addr, const char *msg)
{
        struct target *t = arg;
        if (!t->resolving)
                return;
        t->resolving = false;
        t->dns = NULL;
        if (err != 0) {
                struct probe_result r;
                probe_result_init(&r);
                probe_result_set(&r, ST_FAIL, "dns_failed", "%s", msg);
                finish(t, &r, false);
                return;
        }
        t->ops->start(t->probe, addr);
}

static void run_check(struct target *t)
{
        if (t->in_flight)
                return; /* never overlap */
        const struct target_conf *c = t->env.conf;
        t->in_flight = true;
        t->started = mono_now();
        evtimer_del(t->timer);
        /* libevent adds a timeout to the time cached when this loop iteration
         * began; after slow callbacks that would cut the deadline short. */
        event_base_update_cache_time(t->eng->base);
        struct timeval tv = ms_tv(c->timeout_ms);
        evtimer_add(t->deadline, &tv);
        if (t->ops->connected(t->probe)) {
                t->ops->start(t->probe, NULL);
                return;
        }
        t->resolving = true;
        struct resolve_req *q = resolve_start(t->eng->res, c->host, on_resolved, t);
        /* resolve_start may have answered (and the check finished) already */
        if (t->resolving)
                t->dns = q;
}

/* ---- lifecycle ---- */

static const struct probe_ops *ops_for(enum target_kind kind)
{
        switch (kind) {
        case KIND_REDIS:
                return &probe_redis_ops;
        case KIND_POSTGRES:
                return &probe_postgres_ops;
        case KIND_PGBOUNCER:
                return &probe_pgbouncer_ops;
        }
        return NULL;
}

static struct target *target_new(struct engine *e, const struct target_conf *c)
{
        struct target *t = calloc(1, sizeof(*t));
        if (t == NULL)
                abort();
        t->eng = e;
        t->env.base = e->base;
        t->env.target = t;
        t->env.conf = c;
        t->ops = ops_for(c->kind);
        t->probe = t->ops->create(&t->env);
        health_init(&t->health, c->rise, c->fall);
        struct slo_targets st;
        slo_targets_of(e, c, &st);
        t->slo = slo_new(e->started, &st);
        t->status = ST_UNKNOWN;
        t->startup_seconds = -1;
        t->fresh = true;
        t->created = mono_now();
        t->timer = evtimer_new(e->base, on_timer, t);
        t->deadline = evtimer_new(e->base, on_deadline, t);
        if (t->timer == NULL || t->deadline == NULL)
                abort();
        return t;
}

static void target_free(struct target *t)
{
        if (t == NULL)
                return;
        if (t->resolving && t->dns != NULL)
                resolve_cancel(t->dns);
        t->ops->destroy(t->probe);
        slo_free(t->slo);
        event_free(t->timer);
        event_free(t->deadline);
        free(t);
}

static void on_lag(evutil_socket_t fd, short what, void *arg)
{
        struct engine *e = arg;
        (void)fd;
        if (what != 0) /* not the first call, from engine_new */
                observe_lag(e, e->lag_expected);
        lag_arm(e, mono_now() + LAG_PERIOD);
}

struct engine *engine_new(struct event_base *base, struct resolver *res, const struct config *cfg)
{
        struct engine *e = calloc(1, sizeof(*e));
        if (e == NULL)
                abort();
        e->base = base;
        e->res = res;
        e->cfg = cfg;
        e->started = mono_now();
        e->ntargets = cfg->ntargets;
        e->targets = calloc(cfg->ntargets + 1, sizeof(*e->targets));
        if (e->targets == NULL)
                abort();
        for (size_t i = 0; i < cfg->ntargets; i++) {
                e->targets[i] = target_new(e, &cfg->targets[i]);
                schedule(e->targets[i], 0);
        }
        set_phases(e);
        hist_init(&e->lag, slo_lag_bounds, slo_lag_nbounds);
        e->lag_timer = evtimer_new(base, on_lag, e);
        if (e->lag_timer == NULL)
                abort();
        on_lag(-1, 0, e); /* arms the timer */
        return e;
}

void engine_once(struct engine *e, void (*done)(void *arg), void *arg)
{
        e->once = true;
        evtimer_del(e->lag_timer);
        e->once_done = done;
        e->once_arg = arg;
        maybe_once_done(e);
}

/* Appends `name` to a comma-separated list. */
static void list_add(struct strbuf *b, const char *name)
{
        if (b->len > 0)
                strbuf_putc(b, ',');
        strbuf_puts(b, name);
}

/* The reload event: names only in the new configuration, only in the old,
 * and in both with a different configuration. */
static void record_reload(struct engine *e, struct target **old, size_t nold,
                          const struct config *cfg)
{
        struct strbuf added, removed, changed;
        if (e->journal == NULL)
                return;
        strbuf_init(&added, 64);
        strbuf_init(&removed, 64);
        strbuf_init(&changed, 64);
        for (size_t i = 0; i < cfg->ntargets; i++) {
                const struct target_conf *c = &cfg->targets[i];
                const struct target_conf *was = NULL;
                for (size_t j = 0; j < nold; j++)
                        if (strcmp(old[j]->env.conf->name, c->name) == 0)
                                was = old[j]->env.conf;
                if (was == NULL)
                        list_add(&added, c->name);
                else if (!target_conf_equal(was, c))
                        list_add(&changed, c->name);
        }
        for (size_t j = 0; j < nold; j++)
                if (config_find_target(cfg, old[j]->env.conf->name) == NULL)
                        list_add(&removed, old[j]->env.conf->name);
        journal_reload(e->journal, wall_now(), added.s, removed.s, changed.s);
        free(added.s);
        free(removed.s);
        free(changed.s);
}

void engine_reload(struct engine *e, const struct config *cfg)
{
        struct target **next = calloc(cfg->ntargets + 1, sizeof(*next));
        if (next == NULL)
                abort();
        record_reload(e, e->targets, e->ntargets, cfg);
        e->cfg = cfg; /* service-level targets of kept and new targets */
        for (size_t i = 0; i < cfg->ntargets; i++) {
                const struct target_conf *c = &cfg->targets[i];
                for (size_t j = 0; j < e->ntargets; j++) {
                        struct target *old = e->targets[j];
                        if (old != NULL && target_conf_equal(old->env.conf, c)) {
                                old->env.conf = c;
                                struct slo_targets st;
                                slo_targets_of(e, c, &st);
                                slo_set_targets(old->slo, &st);
                                next[i] = old;
                                e->targets[j] = NULL;
                                break;
                        }
                }
                if (next[i] == NULL) {
                        next[i] = target_new(e, c);
                        schedule(next[i], 0);
                        log_msg(LOG_INFO, c->name, "added (new or changed configuration)");
                }
        }
        for (size_t j = 0; j < e->ntargets; j++)
                if (e->targets[j] != NULL) {
                        log_msg(LOG_INFO, e->targets[j]->env.conf->name,
                                "removed (gone from or changed in the configuration)");
                        target_free(e->targets[j]);
                }
        free(e->targets);
        e->targets = next;
        e->ntargets = cfg->ntargets;
        e->cfg = cfg;
        set_phases(e);
        e->generation++;
}

void engine_free(struct engine *e)
{
        if (e == NULL)
                return;
        for (size_t i = 0; i < e->ntargets; i++)
                target_free(e->targets[i]);
        free(e->targets);
        event_free(e->lag_timer);
        free(e);
}

size_t engine_count(const struct engine *e)
{
        return e->ntargets;
}

int engine_find(const struct engine *e, const char *name)
{
        for (size_t i = 0; i < e->ntargets; i++)
                if (strcmp(e->targets[i]->env.conf->name, name) == 0)
                        return (int)i;
        return -1;
}

uint64_t engine_generation(const struct engine *e)
{
        return e->generation;
}

double engine_uptime(const struct engine *e)
{
        return mono_now() - e->started;
}

void engine_view(const struct engine *e, size_t i, struct target_view *v)
{
        const struct target *t = e->targets[i];
        const struct target_conf *c = t->env.conf;
        memset(v, 0, sizeof(*v));
        v->name = c->name;
        v->kind = target_kind_name(c->kind);
        v->conf = c;
        v->critical = c->critical;
        v->status = t->status;
        v->shown = t->status != ST_UNKNOWN ? &t->shown : NULL;
        v->last = t->has_last ? &t->last : NULL;
        v->last_duration = t->last_duration;
        v->last_check = t->has_last ? t->last_check_wall : 0;
        v->last_change = t->last_change_wall;
        double now = mono_now();
        v->result_age = t->has_last ? now - t->last_check_mono : -1;
        v->existed = now - t->created;
        v->ever_passed = t->ever_passed;
        v->startup_seconds = t->startup_seconds;
        v->last_outage = t->last_outage;
        v->checks = t->checks;
        v->failures = t->failures;
        v->transitions = t->transitions;
        v->slo = t->slo;
        v->prev_status = t->restored && !t->has_last ? t->prev_status : "";
        v->prev_reason = t->restored && !t->has_last ? t->prev_reason : "";
        v->restored = t->restored;
}

const struct hist *engine_loop_lag(const struct engine *e)
{
        return &e->lag;
}

void engine_set_journal(struct engine *e, struct journal *j)
{
        e->journal = j;
}

void engine_set_status_listener(struct engine *e, engine_status_fn fn, void *arg)
{
        e->status_fn = fn;
        e->status_arg = arg;
}

struct slo *engine_slo(struct engine *e, size_t i)
{
        return e->targets[i]->slo;
}

bool engine_fresh(const struct engine *e, size_t i)
{
        return e->targets[i]->fresh;
}

void engine_restored(struct engine *e, size_t i, const char *status, const char *reason,
                     double last_change)
{
        struct target *t = e->targets[i];
        t->fresh = false;
        t->restored = true;
        snprintf(t->prev_status, sizeof(t->prev_status), "%s", status != NULL ? status : "");
        snprintf(t->prev_reason, sizeof(t->prev_reason), "%s", reason != NULL ? reason : "");
        if (t->last_change_wall == 0)
                t->last_change_wall = last_change;
        e->generation++;
}
