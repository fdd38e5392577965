/* JSON renderers (jansson).  Every string that came from the network has
 * been cleaned to UTF-8 by the probes, but json_string() refuses invalid
 * UTF-8 and a refused value would vanish from the body: set_str() cleans
 * such a value where it is inserted, so no field is ever dropped. */
#include "render.h"
#include "notify_hub.h"
#include "clock.h"
#include "render_job.h"
#include "textutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBE_BODY_MAX 3500 /* Docker keeps the first 4096 bytes */

static void set_str(json_t *o, const char *k, const char *v)
{
        if (v == NULL)
                return;
        json_t *s = json_string(v);
        if (s == NULL) {
                /* Invalid UTF-8: each bad byte becomes U+FFFD (3 bytes) at most. */
                size_t len = strlen(v);
                char *clean = malloc(3 * len + 1);
                if (clean == NULL)
                        abort();
                utf8_clean(clean, 3 * len + 1, v, len);
                s = json_string(clean);
                free(clean);
        }
        if (s == NULL || json_object_set_new(o, k, s) != 0)
                abort(); /* only out of memory is left, and the daemon cannot answer without it */
}

static void set_time(json_t *o, const char *k, double t)
{
        char buf[CLOCK_TEXT_MAX];
        if (t <= 0)
                return;
        clock_format(t, CLOCK_RFC3339, buf, sizeof(buf));
        json_object_set_new(o, k, json_string(buf));
}

static char *dump(json_t *o)
{
        char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
        json_decref(o);
        return s;
}

enum status render_aggregate(const struct target_view *v, size_t n)
{
        enum status agg = ST_PASS;
        for (size_t i = 0; i < n; i++) {
                enum status s = v[i].status;
                if (!v[i].critical) {
                        if (s == ST_WARN && agg == ST_PASS)
                                agg = ST_WARN;
                        continue;
                }
                if (s == ST_FAIL || s == ST_UNKNOWN)
                        return ST_FAIL;
                if (s == ST_WARN)
                        agg = ST_WARN;
        }
        return agg;
}

bool render_started(const struct target_view *v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (v[i].critical && !v[i].ever_passed)
                        return false;
        return true;
}

static const char *reason_of(const struct target_view *v)
{
        if (v->status == ST_UNKNOWN)
                return "no_result_yet";
        return v->shown != NULL && v->shown->reason[0] != '\0' ? v->shown->reason : NULL;
}

/* status, reason and (with detail) output of one target */
static json_t *brief(const struct target_view *v, const struct render_ctx *c)
{
        json_t *o = json_object();
        set_str(o, "status", status_name(v->status));
        if (v->status != ST_PASS) {
                set_str(o, "reason", reason_of(v));
                if (c->detail && v->shown != NULL && v->shown->output[0] != '\0')
                        set_str(o, "output", v->shown->output);
        }
        return o;
}

char *render_ready_json(const struct target_view *v, size_t n, const struct render_ctx *c,
                        bool startup, enum status *st)
{
        enum status agg =
            startup ? (render_started(v, n) ? ST_PASS : ST_FAIL) : render_aggregate(v, n);
        *st = agg;
        json_t *o = json_object();
        set_str(o, "status", status_name(agg));
        json_t *checks = json_object();
        size_t used = 64, more = 0;
        for (size_t i = 0; i < n; i++) {
                bool show = startup ? (v[i].critical && !v[i].ever_passed) : v[i].status != ST_PASS;
                if (!show)
                        continue;
                json_t *b = startup ? json_pack("{s:s,s:s}", "status", "fail", "reason",
                                                "not_connected_yet")
                                    : brief(&v[i], c);
                char *s = json_dumps(b, JSON_COMPACT);
                size_t len = (s != NULL ? strlen(s) : 0) + strlen(v[i].name) + 4;
                free(s);
                if (used + len > PROBE_BODY_MAX) {
                        json_decref(b);
                        more++;
                        continue;
                }
                used += len;
                json_object_set_new(checks, v[i].name, b);
        }
        json_object_set_new(o, "checks", checks);
        if (more > 0)
                json_object_set_new(o, "notShown", json_integer((json_int_t)more));
        return dump(o);
}

char *render_target_json(const struct target_view *v, const struct render_ctx *c)
{
        json_t *o = brief(v, c);
        if (v->status == ST_UNKNOWN) /* probe bodies say pass, warn or fail */
                set_str(o, "status", "fail");
        set_str(o, "target", v->name);
        set_str(o, "kind", v->kind);
        return dump(o);
}

double render_stale_after(const struct target_view *v)
{
        const struct target_conf *t = v->conf;
        double a = 3.0 * (double)t->interval_ms;
        double b = (double)(t->interval_ms + t->timeout_ms + t->retry_interval_ms);
        return (a > b ? a : b) / 1000.0;
}

static json_t *measurement(const struct target_view *v, const char *component, enum status st,
                           double value, const char *unit, bool integer)
{
        json_t *m = json_object();
        set_str(m, "componentId", component != NULL ? component : v->name);
        set_str(m, "componentType", strcmp(v->kind, "redis") == 0 ? "datastore" : "datastore");
        /* draft-inadarei: pass, warn or fail; no result yet is not ready */
        set_str(m, "status", status_name(st == ST_UNKNOWN ? ST_FAIL : st));
        if (integer)
                json_object_set_new(m, "observedValue", json_integer((json_int_t)value));
        else
                json_object_set_new(m, "observedValue", json_real(isfinite(value) ? value : 0));
        set_str(m, "observedUnit", unit);
        set_time(m, "time", v->last_check);
        if (st != ST_PASS) {
                char out[200];
                utf8_snprintf(out, sizeof(out), "%s %s: %g %s",
                              component != NULL ? component : v->name, status_name(st), value,
                              unit);
                set_str(m, "output", out);
        }
        return m;
}

static void add_measure(json_t *checks, const char *target, const char *what, json_t *m)
{
        char key[160];
        utf8_snprintf(key, sizeof(key), "%s:%s", target, what);
        json_t *arr = json_object_get(checks, key);
        if (arr == NULL) {
                arr = json_array();
                json_object_set_new(checks, key, arr);
        }
        json_array_append_new(arr, m);
}

static json_t *num_or_null(double v)
{
        return v >= 0 && isfinite(v) ? json_real(v) : json_null();
}

/* SPEC 4: startup, reconnection, latency and rolling availability. */
static json_t *service_levels(const struct target_view *v, const struct render_ctx *c)
{
        struct slo_report r;
        slo_report(v->slo, c->mono, &r);
        json_t *o = json_object();
        json_object_set_new(o, "startup",
                            json_pack("{s:o,s:f,s:o}", "seconds",
                                      num_or_null(r.started ? r.startup_seconds : -1),
                                      "targetSeconds", (double)c->startup_target_ms / 1000.0, "met",
                                      r.started ? json_boolean(r.startup_met) : json_null()));
        json_object_set_new(
            o, "reconnect",
            json_pack("{s:o,s:o,s:I,s:I,s:I,s:I,s:I,s:f,s:b,s:f}", "lastSeconds",
                      num_or_null(r.reconnect_last), "maxSeconds",
                      num_or_null(r.reconnect != NULL && r.reconnect->count ? r.reconnect_max : -1),
                      "count", (json_int_t)(r.reconnect != NULL ? r.reconnect->count : 0), "met",
                      (json_int_t)r.reconnects_met, "missed", (json_int_t)r.reconnects_missed,
                      "restarts", (json_int_t)r.restarts, "blips", (json_int_t)r.blips,
                      "targetSeconds", (double)c->reconnect_target_ms / 1000.0, "inOutage",
                      r.in_outage, "outageSeconds", r.outage_seconds));
        json_t *lat = json_pack("{s:o,s:f,s:I}", "lastSeconds", num_or_null(r.latency_last),
                                "targetSeconds", (double)v->conf->latency_target_ms / 1000.0,
                                "count", (json_int_t)(r.latency != NULL ? r.latency->count : 0));
        if (r.latency != NULL && r.latency->count > 0) {
                json_object_set_new(lat, "maxSeconds", json_real(r.latency->max));
                json_object_set_new(lat, "meanSeconds",
                                    json_real(r.latency->sum / (double)r.latency->count));
        }
        json_object_set_new(o, "latency", lat);
        json_object_set_new(o, "availability",
                            json_pack("{s:f,s:f,s:f,s:I,s:f}", "ratio24h", r.availability,
                                      "observedSeconds", r.observed_seconds, "downSeconds",
                                      r.down_seconds, "outages", (json_int_t)r.outages,
                                      "longestOutageSeconds", r.longest_outage));
        return o;
}

static json_t *target_detail(const struct target_view *v, const struct render_ctx *c)
{
        json_t *o = json_object();
        set_str(o, "kind", v->kind);
        set_str(o, "status", status_name(v->status));
        json_object_set_new(o, "critical", json_boolean(v->critical));
        const char *reason = reason_of(v);
        if (v->status != ST_PASS && reason != NULL)
                set_str(o, "reason", reason);
        if (v->status != ST_PASS && v->shown != NULL && v->shown->output[0] != '\0')
                set_str(o, "output", v->shown->output);
        if (v->last != NULL) {
                json_t *raw = json_object();
                set_str(raw, "status", status_name(v->last->status));
                if (v->last->reason[0] != '\0')
                        set_str(raw, "reason", v->last->reason);
                if (v->last->output[0] != '\0')
                        set_str(raw, "output", v->last->output);
                json_object_set_new(raw, "durationMs", json_real(v->last_duration * 1000.0));
                json_object_set_new(o, "lastResult", raw);
                json_object_set_new(o, "latencyMs", json_real(v->last_duration * 1000.0));
        }
        set_time(o, "lastCheck", v->last_check);
        set_time(o, "lastChange", v->last_change);
        if (v->result_age >= 0)
                json_object_set_new(o, "resultAgeSeconds", json_real(v->result_age));
        if (v->startup_seconds >= 0)
                json_object_set_new(o, "startupSeconds", json_real(v->startup_seconds));
        if (v->last_outage != NULL)
                set_str(o, "lastOutage", v->last_outage);
        if (v->last != NULL && v->last->cert_not_after > 0) {
                /* SPEC 13: when the server certificate expires, and the days
                 * left (negative once expired) */
                json_t *tls = json_object();
                set_time(tls, "certNotAfter", (double)v->last->cert_not_after);
                json_object_set_new(
                    tls, "daysLeft",
                    json_real(floor(((double)v->last->cert_not_after - c->now) / 86400.0 * 10.0) /
                              10.0));
                json_object_set_new(o, "tls", tls);
        }
        json_object_set_new(o, "checks", json_integer((json_int_t)v->checks));
        json_object_set_new(o, "failures", json_integer((json_int_t)v->failures));
        json_object_set_new(o, "transitions", json_integer((json_int_t)v->transitions));
        /* SPEC 11: history restored from the state file; until its first
         * result here, the status it had when the state was saved */
        if (v->restored)
                json_object_set_new(o, "restored", json_true());
        if (v->prev_status != NULL && v->prev_status[0] != '\0') {
                json_t *prev = json_object();
                set_str(prev, "status", v->prev_status);
                if (v->prev_reason != NULL && v->prev_reason[0] != '\0')
                        set_str(prev, "reason", v->prev_reason);
                json_object_set_new(o, "beforeRestart", prev);
        }
        if (v->slo != NULL)
                json_object_set_new(o, "serviceLevels", service_levels(v, c));
        return o;
}

/* SPEC 12: each notifier with its queue, counters, last success and last
 * error.  The URL is its origin only (webhook URLs carry tokens). */
static json_t *notifiers_json(const struct render_ctx *c)
{
        json_t *a = json_array();
        for (size_t i = 0; i < c->nnotifiers; i++) {
                const struct notifier_view *nv = &c->notifiers[i];
                json_t *o = json_object();
                set_str(o, "name", nv->name);
                set_str(o, "kind", nv->kind);
                set_str(o, "url", nv->url);
                json_object_set_new(o, "queueLength",
                                    json_integer((json_int_t)nv->st.queue_length));
                json_object_set_new(o, "sent", json_integer((json_int_t)nv->st.sent));
                json_object_set_new(o, "failed", json_integer((json_int_t)nv->st.failed));
                json_object_set_new(o, "dropped", json_integer((json_int_t)nv->st.dropped));
                if (nv->st.last_success > 0)
                        set_time(o, "lastSuccess", nv->st.last_success);
                else
                        json_object_set_new(o, "lastSuccess", json_null());
                if (nv->st.last_error > 0) {
                        json_t *e = json_object();
                        set_time(e, "time", nv->st.last_error);
                        set_str(e, "error", nv->st.last_error_text);
                        json_object_set_new(o, "lastError", e);
                } else {
                        json_object_set_new(o, "lastError", json_null());
                }
                json_array_append_new(a, o);
        }
        return a;
}

/* The members of an object as dump() writes them, without its braces,
 * appended to a section's text: after a comma when the section holds
 * members already (`more`: in earlier chunks). */
static void put_members(struct strbuf *b, json_t *o, bool more)
{
        char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
        json_decref(o);
        if (s == NULL)
                abort(); /* only out of memory is left (set_str cleaned every string) */
        size_t len = strlen(s);
        if (len > 2) {
                if (more || b->len > 0)
                        strbuf_putc(b, ',');
                strbuf_put(b, s + 1, len - 2);
        }
        free(s);
}

/* A target's measurements: the "NAME:what" members of "checks". */
static void target_checks(json_t *checks, const struct target_view *t, const struct render_ctx *c)
{
        enum status tst = t->status;
        json_t *m = measurement(t, NULL, tst, t->last_duration * 1000.0, "ms", false);
        if (tst != ST_PASS) {
                const char *reason = reason_of(t);
                if (t->shown != NULL && t->shown->output[0] != '\0')
                        set_str(m, "output", t->shown->output);
                else if (reason != NULL)
                        set_str(m, "output", reason);
        }
        add_measure(checks, t->name, "responseTime", m);
        const struct probe_result *r = t->last;
        if (r == NULL || r->status == ST_FAIL)
                return;
        for (int k = 0; k < r->nops; k++)
                add_measure(
                    checks, t->name, "opLatency",
                    measurement(t, r->ops[k].op,
                                r->ops[k].seconds * 1000.0 > (double)t->conf->latency_target_ms
                                    ? ST_WARN
                                    : ST_PASS,
                                r->ops[k].seconds * 1000.0, "ms", false));
        for (int k = 0; k < r->nqueues; k++)
                add_measure(
                    checks, t->name, "queueLength",
                    measurement(t, r->queues[k].name,
                                r->queues[k].length > t->conf->queue_warn ? ST_WARN : ST_PASS,
                                (double)r->queues[k].length, "messages", true));
        if (r->consumers >= 0)
                add_measure(checks, t->name, "consumers",
                            measurement(t, NULL, r->consumers > 0 ? ST_PASS : ST_WARN,
                                        (double)r->consumers, "clients", true));
        if (r->used_memory >= 0)
                add_measure(checks, t->name, "memory",
                            measurement(t, NULL, ST_PASS, (double)r->used_memory, "bytes", true));
        if (r->connected_clients >= 0)
                add_measure(
                    checks, t->name, "clients",
                    measurement(t, NULL, ST_PASS, (double)r->connected_clients, "clients", true));
        if (r->connections >= 0)
                add_measure(
                    checks, t->name, "connections",
                    measurement(t, NULL, ST_PASS, (double)r->connections, "connections", true));
        if (r->cert_not_after > 0) {
                double left = ((double)r->cert_not_after - c->now) / 86400.0;
                bool soon = t->conf->cert_expiry_warn_ms > 0 &&
                            left * 86400000.0 <= (double)t->conf->cert_expiry_warn_ms;
                add_measure(checks, t->name, "certificateExpiry",
                            measurement(t, NULL, soon ? ST_WARN : ST_PASS,
                                        floor(left * 10.0) / 10.0, "days", false));
        }
        if (r->bypass >= 0)
                add_measure(checks, t->name, "bypassBackends",
                            measurement(t, NULL, r->bypass > 0 ? ST_WARN : ST_PASS,
                                        (double)r->bypass, "backends", true));
        for (int k = 0; k < r->npools; k++) {
                char comp[140];
                utf8_snprintf(comp, sizeof(comp), "%s/%s", r->pools[k].database, r->pools[k].user);
                add_measure(checks, t->name, "clientsWaiting",
                            measurement(t, comp, r->pools[k].waiting > 0 ? ST_WARN : ST_PASS,
                                        (double)r->pools[k].waiting, "clients", true));
        }
}

/* A target's members of "checks" and of "targets" (its detail). */
void render_json_part(const struct render_ctx *c, struct strbuf *sec, const bool *more,
                      const struct target_view *t)
{
        json_t *checks = json_object();
        target_checks(checks, t, c);
        json_t *targets = json_object();
        json_object_set_new(targets, t->name, target_detail(t, c));
        put_members(&sec[0], checks, more[0]);
        put_members(&sec[1], targets, more[1]);
}

/* Where "checks" and "targets" go: a value dump() writes as "\u0001",
 * which no text of its own can hold unescaped after such a key. */
#define SLOT "\"\\u0001\""

/* The report: the document, with the sections of "checks" and "targets"
 * members where it holds their slots; `agg` the targets' aggregate. */
bool render_json_join(const struct render_job *j, enum status agg, struct render_answer *a)
{
        const struct render_ctx *c = &j->c;
        json_t *o = json_object();
        set_str(o, "status", status_name(agg));
        set_str(o, "version", c->version);
        set_str(o, "serviceId", "hdms-healthd");
        set_str(o, "description", "health of the HDMS PostgreSQL, PgBouncer and Redis stack");
        set_time(o, "time", c->now);
        json_object_set_new(o, "uptimeSeconds", json_real(c->uptime));
        if (c->loop_lag != NULL)
                json_object_set_new(o, "loopLag",
                                    json_pack("{s:f,s:I}", "maxSeconds", c->loop_lag->max,
                                              "samples", (json_int_t)c->loop_lag->count));
        json_object_set_new(o, "checks", json_string("\x01"));
        json_object_set_new(o, "targets", json_string("\x01"));
        json_object_set_new(o, "notifiers", notifiers_json(c));
        json_object_set_new(o, "links",
                            json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "self", "/status", "html",
                                      "/status?format=html", "ready", "/readyz", "live", "/livez",
                                      "metrics", "/metrics", "events", "/events"));
        char *doc = dump(o);
        if (doc == NULL)
                return false;
        const char *checks = strstr(doc, "\"checks\":" SLOT);
        const char *targets = checks != NULL ? strstr(checks, "\"targets\":" SLOT) : NULL;
        if (targets == NULL) {
                free(doc);
                return false;
        }
        size_t slot = strlen(SLOT);
        checks += strlen("\"checks\":");
        targets += strlen("\"targets\":");
        struct strbuf *b = &a->small;
        strbuf_put(b, doc, (size_t)(checks - doc));
        strbuf_putc(b, '{');
        render_answer_section(a, 0);
        strbuf_putc(b, '}');
        strbuf_put(b, checks + slot, (size_t)(targets - (checks + slot)));
        strbuf_putc(b, '{');
        render_answer_section(a, 1);
        strbuf_putc(b, '}');
        strbuf_puts(b, targets + slot);
        free(doc);
        return true;
}

char *render_status_json(const struct target_view *v, size_t n, const struct render_ctx *c,
                         enum status *st)
{
        struct render_job *j = render_job_new(RENDER_STATUS_JSON, c, n);
        for (size_t i = 0; i < n; i++)
                render_job_add(j, &v[i]);
        return render_job_finish(j, st);
}
