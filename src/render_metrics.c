/* Prometheus text exposition 0.0.4.  One prefix, base units, _total for
 * counters, a fixed label set, and every per-target series present from
 * startup (histograms and counters at zero, unknown gauges NaN). */
#include "render.h"
#include "strbuf.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define P "hdms_healthd_"

static void family(struct strbuf *b, const char *name, const char *type, const char *help)
{
        strbuf_printf(b, "# HELP " P "%s %s\n# TYPE " P "%s %s\n", name, help, name, type);
}

/* A label value, escaped as the format requires; plain runs are copied whole. */
static void label_value(struct strbuf *b, const char *s)
{
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

static const char *const redis_ops_plain[] = {"ping", "set", "get", "del", NULL};
static const char *const redis_ops_broker[] = {"ping", NULL};

static const struct hist *op_hist(const struct slo_report *r, const char *op)
{
        for (int i = 0; i < r->nops; i++)
                if (strcmp(r->op_names[i], op) == 0)
                        return r->ops[i];
        return NULL;
}

/* The pools of the last SHOW POOLS, and always the target's own pool (its
 * dbname and user): NaN before the first result, 0 while PgBouncer has not
 * created it yet (pools appear lazily). */
static void pool_samples(struct strbuf *b, const struct target_view *v, const char *name,
                         bool maxwait)
{
        if (strcmp(v->kind, "pgbouncer") != 0)
                return;
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

char *render_metrics(const struct target_view *v, size_t n, const struct render_ctx *c)
{
        struct strbuf b;
        strbuf_init(&b, 4096 + n * 6144);
        struct slo_report *rep = calloc(n + 1, sizeof(*rep));
        if (rep == NULL)
                abort();
        for (size_t i = 0; i < n; i++)
                slo_report(v[i].slo, c->mono, &rep[i]);

        family(&b, "build_info", "gauge", "Version of hdms-healthd (always 1).");
        sample(&b, "build_info", (const char *const[]){"version", c->version, NULL}, 1);

#define TK(i) (const char *const[]){"target", v[i].name, "kind", v[i].kind, NULL}
#define T1(i)                                                                                      \
        (const char *const[])                                                                      \
        {                                                                                          \
                "target", v[i].name, NULL                                                          \
        }

        family(&b, "target_up", "gauge", "1 when the target is up after rise/fall, else 0.");
        for (size_t i = 0; i < n; i++)
                sample(&b, "target_up", TK(i),
                       v[i].status == ST_PASS || v[i].status == ST_WARN ? 1 : 0);

        family(&b, "target_status", "gauge",
               "1 for the target's current status, 0 for the others.");
        static const enum status all[] = {ST_PASS, ST_WARN, ST_FAIL, ST_UNKNOWN};
        for (size_t i = 0; i < n; i++)
                for (int k = 0; k < 4; k++)
                        sample(&b, "target_status",
                               (const char *const[]){"target", v[i].name, "kind", v[i].kind,
                                                     "status", status_name(all[k]), NULL},
                               v[i].status == all[k] ? 1 : 0);

        family(&b, "check_success", "gauge",
               "1 when the last check passed (pass or warn), else 0.");
        for (size_t i = 0; i < n; i++)
                sample(&b, "check_success", TK(i),
                       v[i].last != NULL && v[i].last->status != ST_FAIL ? 1 : 0);

        family(&b, "check_duration_seconds", "histogram", "Duration of each check.");
        for (size_t i = 0; i < n; i++)
                histogram(&b, "check_duration_seconds", TK(i), rep[i].latency, slo_latency_bounds,
                          slo_latency_nbounds);

        family(&b, "checks_total", "counter", "Checks run.");
        for (size_t i = 0; i < n; i++)
                sample(&b, "checks_total", TK(i), (double)v[i].checks);

        family(&b, "check_failures_total", "counter", "Checks that failed.");
        for (size_t i = 0; i < n; i++)
                sample(&b, "check_failures_total", TK(i), (double)v[i].failures);

        family(&b, "transitions_total", "counter", "Status changes after rise/fall.");
        for (size_t i = 0; i < n; i++)
                sample(&b, "transitions_total", TK(i), (double)v[i].transitions);

        family(&b, "reconnect_duration_seconds", "histogram",
               "Each outage: loss detected to the first passing check after it.");
        for (size_t i = 0; i < n; i++)
                histogram(&b, "reconnect_duration_seconds", TK(i), rep[i].reconnect,
                          slo_reconnect_bounds, slo_reconnect_nbounds);

        family(&b, "reconnect_target_seconds", "gauge", "The reconnection target.");
        for (size_t i = 0; i < n; i++)
                sample(&b, "reconnect_target_seconds", TK(i),
                       (double)c->reconnect_target_ms / 1000.0);

        family(&b, "reconnects_over_target_total", "counter",
               "Outages whose reconnection took longer than the target.");
        for (size_t i = 0; i < n; i++)
                sample(&b, "reconnects_over_target_total", TK(i), (double)rep[i].reconnects_missed);

        family(&b, "restarts_total", "counter",
               "Outages after which the server had restarted (new run_id or start time).");
        for (size_t i = 0; i < n; i++)
                sample(&b, "restarts_total", TK(i), (double)rep[i].restarts);

        family(&b, "startup_duration_seconds", "gauge",
               "Daemon start to the target's first passing check (NaN until then).");
        for (size_t i = 0; i < n; i++)
                sample(&b, "startup_duration_seconds", TK(i),
                       rep[i].started ? rep[i].startup_seconds : NAN);

        family(&b, "startup_target_seconds", "gauge", "The startup target.");
        for (size_t i = 0; i < n; i++)
                sample(&b, "startup_target_seconds", TK(i), (double)c->startup_target_ms / 1000.0);

        family(&b, "availability_ratio", "gauge",
               "Share of the watched time the target was up, rolling 24 h.");
        for (size_t i = 0; i < n; i++)
                sample(&b, "availability_ratio", TK(i), rep[i].availability);

        family(&b, "outages", "gauge", "Outages that started in the rolling 24 h.");
        for (size_t i = 0; i < n; i++)
                sample(&b, "outages", TK(i), (double)rep[i].outages);

        family(&b, "longest_outage_seconds", "gauge", "Longest outage in the rolling 24 h.");
        for (size_t i = 0; i < n; i++)
                sample(&b, "longest_outage_seconds", TK(i), rep[i].longest_outage);

        family(&b, "result_age_seconds", "gauge",
               "Age of the target's last result (NaN before one).");
        for (size_t i = 0; i < n; i++)
                sample(&b, "result_age_seconds", TK(i),
                       v[i].result_age >= 0 ? v[i].result_age : NAN);

        family(&b, "redis_op_duration_seconds", "histogram", "Latency of each Redis op.");
        for (size_t i = 0; i < n; i++) {
                if (strcmp(v[i].kind, "redis") != 0)
                        continue;
                const char *const *ops =
                    v[i].conf->nqueues > 0 ? redis_ops_broker : redis_ops_plain;
                for (int k = 0; ops[k] != NULL; k++)
                        histogram(&b, "redis_op_duration_seconds",
                                  (const char *const[]){"target", v[i].name, "op", ops[k], NULL},
                                  op_hist(&rep[i], ops[k]), slo_latency_bounds,
                                  slo_latency_nbounds);
        }

        family(&b, "redis_queue_length", "gauge",
               "Messages in each broker queue (NaN before a result).");
        for (size_t i = 0; i < n; i++) {
                if (strcmp(v[i].kind, "redis") != 0)
                        continue;
                for (int q = 0; q < v[i].conf->nqueues; q++) {
                        double len = NAN;
                        const struct probe_result *r = v[i].last;
                        for (int k = 0; r != NULL && k < r->nqueues; k++)
                                if (strcmp(r->queues[k].name, v[i].conf->queues[q]) == 0)
                                        len = (double)r->queues[k].length;
                        sample(&b, "redis_queue_length",
                               (const char *const[]){"target", v[i].name, "queue",
                                                     v[i].conf->queues[q], NULL},
                               len);
                }
        }

        family(&b, "redis_queue_consumers", "gauge", "Clients blocked on the target's db.");
        for (size_t i = 0; i < n; i++)
                if (strcmp(v[i].kind, "redis") == 0 && v[i].conf->nqueues > 0)
                        sample(&b, "redis_queue_consumers", T1(i),
                               v[i].last != NULL && v[i].last->consumers >= 0
                                   ? (double)v[i].last->consumers
                                   : NAN);

        family(&b, "pgbouncer_clients_waiting", "gauge", "Clients waiting in each pool.");
        for (size_t i = 0; i < n; i++)
                pool_samples(&b, &v[i], "pgbouncer_clients_waiting", false);
        family(&b, "pgbouncer_maxwait_seconds", "gauge", "Longest wait of a client in each pool.");
        for (size_t i = 0; i < n; i++)
                pool_samples(&b, &v[i], "pgbouncer_maxwait_seconds", true);

        family(&b, "postgres_connections", "gauge", "Client backends in use.");
        for (size_t i = 0; i < n; i++)
                if (strcmp(v[i].kind, "postgres") == 0)
                        sample(&b, "postgres_connections", T1(i),
                               v[i].last != NULL && v[i].last->connections >= 0
                                   ? (double)v[i].last->connections
                                   : NAN);
        family(&b, "postgres_max_connections", "gauge", "The server's max_connections.");
        for (size_t i = 0; i < n; i++)
                if (strcmp(v[i].kind, "postgres") == 0)
                        sample(&b, "postgres_max_connections", T1(i),
                               v[i].last != NULL && v[i].last->max_connections >= 0
                                   ? (double)v[i].last->max_connections
                                   : NAN);
        family(&b, "postgres_bypass_backends", "gauge",
               "Backends of the application role that bypass PgBouncer.");
        for (size_t i = 0; i < n; i++)
                if (strcmp(v[i].kind, "postgres") == 0)
                        sample(&b, "postgres_bypass_backends", T1(i),
                               v[i].last != NULL && v[i].last->bypass >= 0
                                   ? (double)v[i].last->bypass
                                   : NAN);

        record_families(&b, c);

        family(&b, "loop_lag_seconds", "histogram",
               "Lateness of the event loop's timers: the check schedule's, and one a second.");
        histogram(&b, "loop_lag_seconds", NULL, c->loop_lag, slo_lag_bounds, slo_lag_nbounds);
#undef TK
#undef T1
        free(rep);
        return strbuf_take(&b);
}
