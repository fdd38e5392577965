/* Prometheus text exposition 0.0.4.  One prefix, base units, _total for
 * counters, a fixed label set, and every per-target series present from
 * startup (histograms and counters at zero, unknown gauges NaN). */
#include "render.h"
#include "notify_hub.h"
#include "render_job.h"
#include "strbuf.h"
#include "textutil.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define P "hdms_healthd_"

static void family(struct strbuf *b, const char *name, const char *type, const char *help)
{
        strbuf_printf(b, "# HELP " P "%s %s\n# TYPE " P "%s %s\n", name, help, name, type);
}

/* Text that is not valid UTF-8, cleaned into a new buffer (NULL when it is
 * valid): the exposition format, like JSON, is UTF-8 only. */
static char *clean_copy(const char *s)
{
        size_t len = strlen(s);
        if (utf8_valid(s, len))
                return NULL;
        char *clean = malloc(3 * len + 1); /* a bad byte becomes U+FFFD, 3 bytes */
        if (clean == NULL)
                abort();
        utf8_clean(clean, 3 * len + 1, s, len);
        return clean;
}

/* A label value, escaped as the format requires; plain runs are copied whole. */
static void label_value(struct strbuf *b, const char *s)
{
        char *clean = clean_copy(s);
        if (clean != NULL)
                s = clean;
        strbuf_putc(b, '"');
        for (;;) {
                size_t run = strcspn(s, "\\\"\n");
                strbuf_put(b, s, run);
                s += run;
                if (*s == '\0')
                        break;
                strbuf_put(b, *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : "\\n", 2);
                s++;
        }
        strbuf_putc(b, '"');
        free(clean);
}

/* labels: NULL-terminated name/value pairs */
static void labels(struct strbuf *b, const char *const *kv)
{
        if (kv == NULL || kv[0] == NULL)
                return;
        strbuf_putc(b, '{');
        for (int i = 0; kv[i] != NULL; i += 2) {
                if (i)
                        strbuf_putc(b, ',');
                strbuf_puts(b, kv[i]);
                strbuf_putc(b, '=');
                label_value(b, kv[i + 1]);
        }
        strbuf_putc(b, '}');
}

/* Whole numbers (counters, bucket counts, 0/1 gauges: most samples) are
 * written digit by digit; printf's floating-point path is 10x slower. Up to
 * 2^53 every integer is exact in a double, and "%.9g" prints the same digits
 * below 1e9 (above, it rounds to 9 digits; this prints them all). */
static void value(struct strbuf *b, double v)
{
        if (isnan(v)) {
                strbuf_puts(b, " NaN\n");
        } else if (isinf(v)) {
                strbuf_puts(b, v > 0 ? " +Inf\n" : " -Inf\n");
        } else if (v >= 0 && v <= 9007199254740992.0 && v == (double)(uint64_t)v) {
                char buf[24];
                size_t i = sizeof(buf);
                uint64_t u = (uint64_t)v;
                buf[--i] = '\n';
                do {
                        buf[--i] = (char)('0' + u % 10);
                        u /= 10;
                } while (u != 0);
                buf[--i] = ' ';
                strbuf_put(b, buf + i, sizeof(buf) - i);
        } else {
                strbuf_printf(b, " %.9g\n", v);
        }
}

static void sample(struct strbuf *b, const char *name, const char *const *kv, double v)
{
        strbuf_puts(b, P);
        strbuf_puts(b, name);
        labels(b, kv);
        value(b, v);
}

/* The "le" label of each bound, formatted once per bounds array. */
static const char *bound_label(const double *bounds, int nbounds, int i)
{
        static struct {
                const double *bounds;
                char le[HIST_MAX_BOUNDS][24];
        } cache[4];
        for (size_t k = 0; k < sizeof(cache) / sizeof(cache[0]); k++) {
                if (cache[k].bounds == NULL) {
                        cache[k].bounds = bounds;
                        for (int j = 0; j < nbounds && j < HIST_MAX_BOUNDS; j++)
                                snprintf(cache[k].le[j], sizeof(cache[k].le[j]), "%g", bounds[j]);
                }
                if (cache[k].bounds == bounds)
                        return cache[k].le[i];
        }
        static char le[24]; /* more bounds arrays than slots: format each time */
        snprintf(le, sizeof(le), "%g", bounds[i]);
        return le;
}

static void histogram(struct strbuf *b, const char *name, const char *const *kv,
                      const struct hist *h, const double *bounds, int nbounds)
{
        const char *ext[16];
        int n = 0;
        for (; kv != NULL && kv[n] != NULL && n < 12; n++)
                ext[n] = kv[n];
        for (int i = 0; i <= nbounds; i++) {
                ext[n] = "le";
                ext[n + 1] = i < nbounds ? bound_label(bounds, nbounds, i) : "+Inf";
                ext[n + 2] = NULL;
                strbuf_puts(b, P);
                strbuf_puts(b, name);
                strbuf_puts(b, "_bucket");
                labels(b, ext);
                value(b, h == NULL ? 0 : i < nbounds ? (double)h->buckets[i] : (double)h->count);
        }
        strbuf_puts(b, P);
        strbuf_puts(b, name);
        strbuf_puts(b, "_sum");
        labels(b, kv);
        value(b, h != NULL ? h->sum : 0);
        strbuf_puts(b, P);
        strbuf_puts(b, name);
        strbuf_puts(b, "_count");
        labels(b, kv);
        value(b, h != NULL ? (double)h->count : 0);
}

/* ---- the families ---- */

/* What a family's callbacks see of one target. */
struct row {
        const struct target_view *v;
        const struct slo_report *r; /* its service levels, reported once per scrape */
        const struct render_ctx *c;
};

enum labelset {
        L_TARGET_KIND, /* target, kind */
        L_TARGET,      /* target */
};

/* One metric family: its HELP and TYPE lines, then its samples.  A family is
 * either global (`global`: one emitter for the whole scrape) or per target,
 * for every target or those `applies` accepts, in target order, with exactly
 * one of: `value` (one sample with the family's labels), `hist` (a
 * histogram with the family's labels and bounds) or `emit` (samples with
 * labels of their own). */
struct family {
        const char *name, *type, *help;
        enum labelset labels;
        bool (*applies)(const struct row *x);
        double (*value)(const struct row *x);
        const struct hist *(*hist)(const struct row *x);
        const double *bounds;
        const int *nbounds;
        void (*emit)(struct strbuf *b, const struct family *f, const struct row *x);
        void (*global)(struct strbuf *b, const struct family *f, const struct render_ctx *c);
};

static const char *const redis_ops_plain[] = {"ping", "set", "get", "del", NULL};
static const char *const redis_ops_broker[] = {"ping", NULL};

static const struct hist *op_hist(const struct slo_report *r, const char *op)
{
        for (int i = 0; i < r->nops; i++)
                if (strcmp(r->op_names[i], op) == 0)
                        return r->ops[i];
        return NULL;
}

static bool is_kind(const struct row *x, const char *kind)
{
        return strcmp(x->v->kind, kind) == 0;
}

static bool is_redis(const struct row *x)
{
        return is_kind(x, "redis");
}

static bool is_broker(const struct row *x)
{
        return is_redis(x) && x->v->conf->nqueues > 0;
}

static bool is_postgres(const struct row *x)
{
        return is_kind(x, "postgres");
}

static bool is_pgbouncer(const struct row *x)
{
        return is_kind(x, "pgbouncer");
}

/* The kinds that speak PostgreSQL's protocol, and so may use TLS. */
static bool is_pg_protocol(const struct row *x)
{
        return is_postgres(x) || is_pgbouncer(x);
}

/* A figure of the last result: the probes leave -1 where they measured
 * nothing, and no result at all is NaN too. */
static double figure(const struct probe_result *r, long long n)
{
        return r != NULL && n >= 0 ? (double)n : NAN;
}

static void build_info(struct strbuf *b, const struct family *f, const struct render_ctx *c)
{
        sample(b, f->name, (const char *const[]){"version", c->version, NULL}, 1);
}

static void loop_lag(struct strbuf *b, const struct family *f, const struct render_ctx *c)
{
        histogram(b, f->name, NULL, c->loop_lag, slo_lag_bounds, slo_lag_nbounds);
}

static double target_up(const struct row *x)
{
        return x->v->status == ST_PASS || x->v->status == ST_WARN ? 1 : 0;
}

static void target_status(struct strbuf *b, const struct family *f, const struct row *x)
{
        static const enum status all[] = {ST_PASS, ST_WARN, ST_FAIL, ST_UNKNOWN};
        for (int k = 0; k < 4; k++)
                sample(b, f->name,
                       (const char *const[]){"target", x->v->name, "kind", x->v->kind, "status",
                                             status_name(all[k]), NULL},
                       x->v->status == all[k] ? 1 : 0);
}

static double check_success(const struct row *x)
{
        return x->v->last != NULL && x->v->last->status != ST_FAIL ? 1 : 0;
}

static const struct hist *check_duration(const struct row *x)
{
        return x->r->latency;
}

static double checks(const struct row *x)
{
        return (double)x->v->checks;
}

static double failures(const struct row *x)
{
        return (double)x->v->failures;
}

static double transitions(const struct row *x)
{
        return (double)x->v->transitions;
}

static const struct hist *reconnect_duration(const struct row *x)
{
        return x->r->reconnect;
}

static double reconnect_target(const struct row *x)
{
        return (double)x->c->reconnect_target_ms / 1000.0;
}

static double reconnects_missed(const struct row *x)
{
        return (double)x->r->reconnects_missed;
}

static double restarts(const struct row *x)
{
        return (double)x->r->restarts;
}

static double startup_duration(const struct row *x)
{
        return x->r->started ? x->r->startup_seconds : NAN;
}

static double startup_target(const struct row *x)
{
        return (double)x->c->startup_target_ms / 1000.0;
}

static double availability(const struct row *x)
{
        return x->r->availability;
}

static double outages(const struct row *x)
{
        return (double)x->r->outages;
}

static double longest_outage(const struct row *x)
{
        return x->r->longest_outage;
}

static double result_age(const struct row *x)
{
        return x->v->result_age >= 0 ? x->v->result_age : NAN;
}

/* Every op the probe runs, from startup (a broker target only pings). */
static void redis_ops(struct strbuf *b, const struct family *f, const struct row *x)
{
        const char *const *ops = x->v->conf->nqueues > 0 ? redis_ops_broker : redis_ops_plain;
        for (int k = 0; ops[k] != NULL; k++)
                histogram(b, f->name,
                          (const char *const[]){"target", x->v->name, "op", ops[k], NULL},
                          op_hist(x->r, ops[k]), slo_latency_bounds, slo_latency_nbounds);
}

/* Every configured queue, NaN until a result measured it. */
static void redis_queues(struct strbuf *b, const struct family *f, const struct row *x)
{
        const struct target_view *v = x->v;
        for (int q = 0; q < v->conf->nqueues; q++) {
                double len = NAN;
                const struct probe_result *r = v->last;
                for (int k = 0; r != NULL && k < r->nqueues; k++)
                        if (strcmp(r->queues[k].name, v->conf->queues[q]) == 0)
                                len = (double)r->queues[k].length;
                sample(b, f->name,
                       (const char *const[]){"target", v->name, "queue", v->conf->queues[q], NULL},
                       len);
        }
}

static double consumers(const struct row *x)
{
        const struct probe_result *r = x->v->last;
        return figure(r, r != NULL ? r->consumers : -1);
}

/* The pools of the last SHOW POOLS, and always the target's own pool (its
 * dbname and user): NaN before the first result, 0 while PgBouncer has not
 * created it yet (pools appear lazily). */
static void pool_samples(struct strbuf *b, const char *name, const struct target_view *v,
                         bool maxwait)
{
        const struct probe_result *r = v->last;
        bool own = false;
        for (int k = 0; r != NULL && k < r->npools; k++) {
                const struct pool_wait *p = &r->pools[k];
                if (strcmp(p->database, v->conf->dbname) == 0 &&
                    strcmp(p->user, v->conf->user) == 0)
                        own = true;
                sample(b, name,
                       (const char *const[]){"target", v->name, "database", p->database, "user",
                                             p->user, NULL},
                       maxwait ? p->maxwait_s : (double)p->waiting);
        }
        if (!own)
                sample(b, name,
                       (const char *const[]){"target", v->name, "database", v->conf->dbname, "user",
                                             v->conf->user, NULL},
                       r == NULL || r->status == ST_FAIL ? NAN : 0);
}

static void pools_waiting(struct strbuf *b, const struct family *f, const struct row *x)
{
        pool_samples(b, f->name, x->v, false);
}

static void pools_maxwait(struct strbuf *b, const struct family *f, const struct row *x)
{
        pool_samples(b, f->name, x->v, true);
}

static double pg_connections(const struct row *x)
{
        const struct probe_result *r = x->v->last;
        return figure(r, r != NULL ? r->connections : -1);
}

static double pg_max_connections(const struct row *x)
{
        const struct probe_result *r = x->v->last;
        return figure(r, r != NULL ? r->max_connections : -1);
}

static double pg_bypass(const struct row *x)
{
        const struct probe_result *r = x->v->last;
        return figure(r, r != NULL ? r->bypass : -1);
}

#define LATENCY_BOUNDS .bounds = slo_latency_bounds, .nbounds = &slo_latency_nbounds
#define RECONNECT_BOUNDS .bounds = slo_reconnect_bounds, .nbounds = &slo_reconnect_nbounds

/* The exposition, in this order (SPEC 5 names the required ones). */
static double cert_expiry(const struct row *x)
{
        const struct probe_result *r = x->v->last;
        return r != NULL && r->cert_not_after > 0 ? (double)r->cert_not_after : NAN;
}

static const struct family families[] = {
    {"build_info", "gauge", "Version of hdms-healthd (always 1).", .global = build_info},
    {"target_up", "gauge", "1 when the target is up after rise/fall, else 0.", .value = target_up},
    {"target_status", "gauge", "1 for the target's current status, 0 for the others.",
     .emit = target_status},
    {"check_success", "gauge", "1 when the last check passed (pass or warn), else 0.",
     .value = check_success},
    {"check_duration_seconds", "histogram", "Duration of each check.", .hist = check_duration,
     LATENCY_BOUNDS},
    {"checks_total", "counter", "Checks run.", .value = checks},
    {"check_failures_total", "counter", "Checks that failed.", .value = failures},
    {"transitions_total", "counter", "Status changes after rise/fall.", .value = transitions},
    {"reconnect_duration_seconds", "histogram",
     "Each outage: loss detected to the first passing check after it.", .hist = reconnect_duration,
     RECONNECT_BOUNDS},
    {"reconnect_target_seconds", "gauge", "The reconnection target.", .value = reconnect_target},
    {"reconnects_over_target_total", "counter",
     "Outages whose reconnection took longer than the target.", .value = reconnects_missed},
    {"restarts_total", "counter",
     "Outages after which the server had restarted (new run_id or start time).", .value = restarts},
    {"startup_duration_seconds", "gauge",
     "Daemon start to the target's first passing check (NaN until then).",
     .value = startup_duration},
    {"startup_target_seconds", "gauge", "The startup target.", .value = startup_target},
    {"availability_ratio", "gauge", "Share of the watched time the target was up, rolling 24 h.",
     .value = availability},
    {"outages", "gauge", "Outages that started in the rolling 24 h.", .value = outages},
    {"longest_outage_seconds", "gauge", "Longest outage in the rolling 24 h.",
     .value = longest_outage},
    {"result_age_seconds", "gauge", "Age of the target's last result (NaN before one).",
     .value = result_age},
    {"redis_op_duration_seconds", "histogram", "Latency of each Redis op.", .applies = is_redis,
     .emit = redis_ops},
    {"redis_queue_length", "gauge", "Messages in each broker queue (NaN before a result).",
     .applies = is_redis, .emit = redis_queues},
    {"redis_queue_consumers", "gauge", "Clients blocked on the target's db.", L_TARGET,
     .applies = is_broker, .value = consumers},
    {"pgbouncer_clients_waiting", "gauge", "Clients waiting in each pool.", .applies = is_pgbouncer,
     .emit = pools_waiting},
    {"pgbouncer_maxwait_seconds", "gauge", "Longest wait of a client in each pool.",
     .applies = is_pgbouncer, .emit = pools_maxwait},
    {"postgres_connections", "gauge", "Client backends in use.", L_TARGET, .applies = is_postgres,
     .value = pg_connections},
    {"postgres_max_connections", "gauge", "The server's max_connections.", L_TARGET,
     .applies = is_postgres, .value = pg_max_connections},
    {"postgres_bypass_backends", "gauge", "Backends of the application role that bypass PgBouncer.",
     L_TARGET, .applies = is_postgres, .value = pg_bypass},
    {"tls_cert_expiry_timestamp_seconds", "gauge",
     "notAfter of the server certificate seen at the last login (NaN: no TLS or no result).",
     L_TARGET, .applies = is_pg_protocol, .value = cert_expiry},
    {"loop_lag_seconds", "histogram",
     "Lateness of the event loop's timers: the check schedule's, and one more when none came for "
     "1.25 s.",
     .global = loop_lag},
};

static void target_samples(struct strbuf *b, const struct family *f, const struct row *x)
{
        const char *const tk[] = {"target", x->v->name, "kind", x->v->kind, NULL};
        const char *const t1[] = {"target", x->v->name, NULL};
        const char *const *kv = f->labels == L_TARGET ? t1 : tk;
        if (f->value != NULL)
                sample(b, f->name, kv, f->value(x));
        else if (f->hist != NULL)
                histogram(b, f->name, kv, f->hist(x), f->bounds, *f->nbounds);
        else
                f->emit(b, f, x);
}

/* The record (SPEC 11): state writes and journal events.  The event types
 * all exist from startup, at zero. */
static void record_families(struct strbuf *b, const struct render_ctx *c)
{
        if (c->record == NULL || c->journal == NULL)
                return;
        family(b, "state_writes_total", "counter", "State file writes, by result.");
        sample(b, "state_writes_total", (const char *const[]){"result", "ok", NULL},
               (double)c->record->writes_ok);
        sample(b, "state_writes_total", (const char *const[]){"result", "error", NULL},
               (double)c->record->writes_error);
        family(b, "state_last_write_timestamp_seconds", "gauge",
               "Time of the last good state file write (0 before the first).");
        sample(b, "state_last_write_timestamp_seconds", NULL, c->record->last_write);
        family(b, "state_serialise_seconds", "gauge",
               "Time the last state serialisation took on the event loop.");
        sample(b, "state_serialise_seconds", NULL, c->record->serialise_seconds);
        family(b, "state_serialise_turn_seconds", "gauge",
               "Longest loop turn of the last state serialisation (it is done in batches).");
        sample(b, "state_serialise_turn_seconds", NULL, c->record->serialise_turn);
        family(b, "state_bytes", "gauge", "Size of the last state serialised.");
        sample(b, "state_bytes", NULL, (double)c->record->size);
        family(b, "events_total", "counter", "Events recorded in the journal, by type.");
        for (int t = 0; t < EV_NTYPES; t++)
                sample(b, "events_total",
                       (const char *const[]){"type", event_type_name((enum event_type)t), NULL},
                       (double)journal_appended(c->journal, (enum event_type)t));
}

/* The notifiers (SPEC 12): every result of every notifier from startup,
 * at zero. */
static void notify_families(struct strbuf *b, const struct render_ctx *c)
{
        if (c->nnotifiers == 0)
                return;
        family(b, "notifications_total", "counter",
               "Notifications by notifier and result: sent (2xx), failed (given up), dropped "
               "(queue full or superseded).");
        for (size_t i = 0; i < c->nnotifiers; i++) {
                const struct notifier_view *nv = &c->notifiers[i];
                const struct {
                        const char *result;
                        uint64_t n;
                } r[] = {
                    {"sent", nv->st.sent}, {"failed", nv->st.failed}, {"dropped", nv->st.dropped}};
                for (size_t k = 0; k < 3; k++)
                        sample(b, "notifications_total",
                               (const char *const[]){"notifier", nv->name, "result", r[k].result,
                                                     NULL},
                               (double)r[k].n);
        }
        family(b, "notification_queue_length", "gauge",
               "Notifications waiting per notifier (at most queue_max).");
        for (size_t i = 0; i < c->nnotifiers; i++)
                sample(b, "notification_queue_length",
                       (const char *const[]){"notifier", c->notifiers[i].name, NULL},
                       (double)c->notifiers[i].st.queue_length);
}

#define NFAMILIES (sizeof(families) / sizeof(families[0]))

size_t render_metrics_nsec(void)
{
        return NFAMILIES;
}

/* A target's samples of each family, appended to that family's section
 * (a global family's, or one that does not apply, gets nothing). */
void render_metrics_part(const struct render_ctx *c, struct strbuf *sec,
                         const struct target_view *v)
{
        struct slo_report rep;
        memset(&rep, 0, sizeof(rep));
        slo_report(v->slo, c->mono, &rep);
        const struct row x = {v, &rep, c};
        for (size_t k = 0; k < NFAMILIES; k++) {
                const struct family *f = &families[k];
                if (f->global == NULL && (f->applies == NULL || f->applies(&x)))
                        target_samples(&sec[k], f, &x);
        }
}

/* The exposition: each family's HELP and TYPE, then its samples (the
 * section of every target's, in target order). */
void render_metrics_join(const struct render_job *j, struct render_answer *a)
{
        for (size_t k = 0; k < NFAMILIES; k++) {
                const struct family *f = &families[k];
                family(&a->small, f->name, f->type, f->help);
                if (f->global != NULL)
                        f->global(&a->small, f, &j->c);
                else
                        render_answer_section(a, k);
        }
        record_families(&a->small, &j->c); /* after the table: only a running daemon has a record */
        notify_families(&a->small, &j->c);
}

char *render_metrics(const struct target_view *v, size_t n, const struct render_ctx *c)
{
        struct render_job *j = render_job_new(RENDER_METRICS, c, n);
        for (size_t i = 0; i < n; i++)
                render_job_add(j, &v[i]);
        enum status st;
        return render_job_finish(j, &st);
}
