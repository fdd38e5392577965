/* The /status dashboard (SPEC 5 and 11): one self-contained HTML page.
 *
 * Per target a row (status, reason, latency, service levels, a 24 h
 * availability strip and the check-latency history with its scale) and a
 * row of what its checks measured; below, the timeline of recent events.
 * Inline CSS and SVG, one inline script; nothing from anywhere else.
 *
 * The script updates the page in place: every REFRESH_S it fetches this
 * same page and swaps the parts that change (ids overall, meta, rows,
 * events), so the browser keeps its scroll position and nothing flickers,
 * and one renderer draws both the first page and every update.  With
 * scripts off, a <meta refresh> inside <noscript> reloads the page instead.
 * The script and the style carry the response's CSP nonce (c->nonce).
 *
 * Every string that came from the network, the configuration or the
 * journal goes through esc(). */
#include "render.h"
#include "notify_hub.h"
#include "clock.h"
#include "render_job.h"
#include "strbuf.h"
#include "textutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REFRESH_S 5
#define REFRESH_MS 5000 /* the script's copy of REFRESH_S */
#define STR2(x) #x
#define STR(x) STR2(x)
#define STRIP_CELLS 48 /* of 30 minutes: 24 h */
#define STRIP_MINUTES 30
#define TIMELINE_EVENTS 20

/* HTML-escaped, and valid UTF-8 (the page says charset=utf-8): text that
 * is not is cleaned first, one U+FFFD per bad sequence. */
static void esc(struct strbuf *b, const char *s)
{
        if (s == NULL)
                return;
        char *clean = NULL;
        size_t len = strlen(s);
        if (!utf8_valid(s, len)) {
                clean = malloc(3 * len + 1); /* a bad byte becomes U+FFFD, 3 bytes */
                if (clean == NULL)
                        abort();
                utf8_clean(clean, 3 * len + 1, s, len);
                s = clean;
        }
        for (; *s != '\0'; s++) {
                switch (*s) {
                case '<':
                        strbuf_puts(b, "&lt;");
                        break;
                case '>':
                        strbuf_puts(b, "&gt;");
                        break;
                case '&':
                        strbuf_puts(b, "&amp;");
                        break;
                case '"':
                        strbuf_puts(b, "&quot;");
                        break;
                case '\'':
                        strbuf_puts(b, "&#39;");
                        break;
                default:
                        strbuf_putc(b, *s);
                }
        }
        free(clean);
}

static void duration(struct strbuf *b, double s)
{
        if (s < 0 || isnan(s))
                strbuf_puts(b, "&ndash;");
        else if (s < 1)
                strbuf_printf(b, "%.1f ms", s * 1000.0);
        else if (s < 120)
                strbuf_printf(b, "%.2f s", s);
        else if (s < 7200)
                strbuf_printf(b, "%.0f min", s / 60.0);
        else
                strbuf_printf(b, "%.1f h", s / 3600.0);
}

static void bytes(struct strbuf *b, long long n)
{
        if (n >= 1LL << 30)
                strbuf_printf(b, "%.1f GiB", (double)n / (double)(1LL << 30));
        else if (n >= 1LL << 20)
                strbuf_printf(b, "%.1f MiB", (double)n / (double)(1LL << 20));
        else if (n >= 1024)
                strbuf_printf(b, "%.1f KiB", (double)n / 1024.0);
        else
                strbuf_printf(b, "%lld B", n);
}

static void hhmm(struct strbuf *b, double t)
{
        char buf[16];
        time_t s = (time_t)t;
        struct tm tm;
        gmtime_r(&s, &tm);
        strftime(buf, sizeof(buf), "%H:%M", &tm);
        strbuf_puts(b, buf);
}

/* The check-latency history with its scale: a line over up/down bars,
 * "0" at the bottom, the maximum at the top, and the latency target as a
 * dashed line when it falls inside the scale. */
static void sparkline(struct strbuf *b, const struct target_view *t)
{
        double lat[SLO_HISTORY];
        bool ok[SLO_HISTORY];
        size_t n = slo_history(t->slo, lat, ok, SLO_HISTORY);
        const int w = 220, h = 40, bar = 6, left = 44;
        strbuf_printf(b,
                      "<svg class=\"spark\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                      "role=\"img\" aria-label=\"check latency and up/down history\">",
                      w, h + bar + 4, w, h + bar + 4);
        if (n == 0) {
                strbuf_puts(b, "<text x=\"0\" y=\"20\" class=\"axis\">no checks yet</text></svg>");
                return;
        }
        double max = 0;
        for (size_t i = 0; i < n; i++)
                if (lat[i] > max)
                        max = lat[i];
        if (max <= 0)
                max = 1e-3;
        double target = (double)t->conf->latency_target_ms / 1000.0;
        double step = (double)(w - left - 2) / (double)(SLO_HISTORY - 1);
        double x0 = (double)(w - 2) - step * (double)(n - 1);
        strbuf_puts(b, "<text x=\"0\" y=\"9\" class=\"axis\" data-scale=\"max\">");
        duration(b, max);
        strbuf_printf(b,
                      "</text><text x=\"0\" y=\"%d\" class=\"axis\">0</text>"
                      "<line x1=\"%d\" y1=\"1\" x2=\"%d\" y2=\"1\" class=\"grid\"/>"
                      "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"grid\"/>",
                      h, left - 2, w, left - 2, h - 1, w, h - 1);
        if (target > 0 && target < max) {
                double y = 1 + (double)(h - 2) * (1.0 - target / max);
                strbuf_printf(b,
                              "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" class=\"tgt\">"
                              "<title>latency target %lld ms</title></line>",
                              left - 2, y, w, y, (long long)t->conf->latency_target_ms);
        }
        strbuf_puts(b, "<polyline class=\"lat\" points=\"");
        for (size_t i = 0; i < n; i++)
                strbuf_printf(b, "%.1f,%.1f ", x0 + step * (double)i,
                              1 + (double)(h - 2) * (1.0 - lat[i] / max));
        strbuf_puts(b, "\"/>");
        double bw = step - 0.5; /* a gap between the bars */
        for (size_t i = 0; i < n; i++)
                strbuf_printf(b,
                              "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" "
                              "class=\"%s\"/>",
                              x0 + step * (double)i - bw / 2, h + 3, bw, bar,
                              ok[i] ? "up" : "down");
        strbuf_printf(b, "<title>check latency of the last %zu checks, 0 to ", n);
        duration(b, max);
        strbuf_puts(b, "</title></svg>");
}

/* The 24 h availability strip: one cell per STRIP_MINUTES, each with a
 * tooltip (time range, availability of the time watched, outages). */
static void strip(struct strbuf *b, const struct target_view *t, const struct render_ctx *c)
{
        struct slo_cell cells[STRIP_CELLS];
        const int cw = 4, gap = 1, h = 14;
        slo_cells(t->slo, c->mono, STRIP_MINUTES, cells, STRIP_CELLS);
        /* the wall-clock end of the current minute's cell */
        double end = c->now;
        strbuf_printf(b,
                      "<svg class=\"strip\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                      "role=\"img\" aria-label=\"availability over 24 hours\">",
                      STRIP_CELLS * (cw + gap), h, STRIP_CELLS * (cw + gap), h);
        for (int i = 0; i < STRIP_CELLS; i++) {
                const struct slo_cell *cell = &cells[i];
                double to = end - (double)(STRIP_CELLS - 1 - i) * STRIP_MINUTES * 60.0;
                double from = to - STRIP_MINUTES * 60.0;
                const char *cls = "none";
                double avail = 1;
                if (cell->observed > 0) {
                        avail = 1.0 - cell->down / cell->observed;
                        cls = avail >= 0.9999 ? "a100"
                              : avail >= 0.99 ? "a99"
                              : avail >= 0.9  ? "a90"
                                              : "a0";
                }
                strbuf_printf(b, "<rect x=\"%d\" y=\"0\" width=\"%d\" height=\"%d\" class=\"%s\">",
                              i * (cw + gap), cw, h, cls);
                strbuf_puts(b, "<title>");
                hhmm(b, from);
                strbuf_puts(b, "&ndash;");
                hhmm(b, to);
                strbuf_puts(b, " UTC: ");
                if (cell->observed <= 0) {
                        strbuf_puts(b, "not watched");
                } else {
                        strbuf_printf(b, "%.3f%% up of ", avail * 100.0);
                        duration(b, cell->observed);
                        strbuf_printf(b, " watched, %u outage%s", cell->outages,
                                      cell->outages == 1 ? "" : "s");
                        if (cell->longest > 0) {
                                strbuf_puts(b, ", longest ");
                                duration(b, cell->longest);
                        }
                }
                strbuf_puts(b, "</title></rect>");
        }
        strbuf_puts(b, "</svg>");
}

/* One measured figure: <span class="m" data-m=NAME>VALUE</span>. */
static void m_open(struct strbuf *b, const char *label, const char *name)
{
        strbuf_puts(b, "<li>");
        esc(b, label);
        strbuf_puts(b, " <span class=\"m\" data-m=\"");
        esc(b, name);
        strbuf_puts(b, "\">");
}

static void m_close(struct strbuf *b)
{
        strbuf_puts(b, "</span></li>");
}

static void pct(struct strbuf *b, long long part, long long whole)
{
        if (whole > 0)
                strbuf_printf(b, " <span class=\"muted\">(%.0f%%)</span>",
                              100.0 * (double)part / (double)whole);
}

/* What the last check measured (SPEC 11's list, per kind). */
static void measured(struct strbuf *b, const struct target_view *t, double now)
{
        const struct probe_result *r = t->last;
        strbuf_puts(b, "<ul class=\"obs\">");
        if (r == NULL) {
                strbuf_puts(b, "<li class=\"muted\">no check yet</li></ul>");
                return;
        }
        if (r->status == ST_FAIL) {
                strbuf_puts(b, "<li class=\"muted\">the last check failed: nothing measured</li>"
                               "</ul>");
                return;
        }
        for (int k = 0; k < r->nops; k++) {
                char name[32];
                snprintf(name, sizeof(name), "op-%s", r->ops[k].op);
                m_open(b, r->ops[k].op, name);
                duration(b, r->ops[k].seconds);
                m_close(b);
        }
        for (int k = 0; k < r->nqueues; k++) {
                strbuf_puts(b, "<li>queue ");
                esc(b, r->queues[k].name);
                strbuf_puts(b, " <span class=\"m\" data-m=\"queue-length\" data-queue=\"");
                esc(b, r->queues[k].name);
                strbuf_printf(b, "\">%lld</span> message%s</li>", r->queues[k].length,
                              r->queues[k].length == 1 ? "" : "s");
        }
        if (r->consumers >= 0) {
                m_open(b, "consumers", "consumers");
                strbuf_printf(b, "%lld", r->consumers);
                m_close(b);
        }
        if (r->used_memory >= 0) {
                m_open(b, "memory", "memory");
                bytes(b, r->used_memory);
                strbuf_puts(b, "</span>");
                if (r->maxmemory > 0) {
                        strbuf_puts(b, " of ");
                        bytes(b, r->maxmemory);
                        pct(b, r->used_memory, r->maxmemory);
                } else {
                        strbuf_puts(b, " <span class=\"muted\">(no maxmemory)</span>");
                }
                strbuf_puts(b, "</li>");
        }
        if (r->connected_clients >= 0) {
                m_open(b, "clients", "clients");
                strbuf_printf(b, "%lld</span>", r->connected_clients);
                if (r->maxclients > 0) {
                        strbuf_printf(b, " of %lld", r->maxclients);
                        pct(b, r->connected_clients, r->maxclients);
                }
                strbuf_puts(b, "</li>");
        }
        if (r->connections >= 0) {
                m_open(b, "connections", "connections");
                strbuf_printf(b, "%lld</span>", r->connections);
                if (r->usable_connections > 0) {
                        strbuf_printf(b, " of %lld usable", r->usable_connections);
                        pct(b, r->connections, r->usable_connections);
                }
                if (r->max_connections > 0)
                        strbuf_printf(b, " <span class=\"muted\">(max_connections %lld)</span>",
                                      r->max_connections);
                strbuf_puts(b, "</li>");
        }
        if (r->bypass >= 0) {
                m_open(b, "pooler bypass", "bypass");
                strbuf_printf(b, "%lld</span> backend%s</li>", r->bypass,
                              r->bypass == 1 ? "" : "s");
        }
        if (strcmp(t->kind, "postgres") == 0 && r->server_version[0] != '\0') {
                m_open(b, "role", "role");
                strbuf_puts(b, r->in_recovery ? "standby" : "primary");
                m_close(b);
                strbuf_puts(b, "<li>version ");
                esc(b, r->server_version);
                strbuf_puts(b, "</li>");
        }
        for (int k = 0; k < r->npools; k++) {
                strbuf_puts(b, "<li>pool ");
                esc(b, r->pools[k].database);
                strbuf_puts(b, "/");
                esc(b, r->pools[k].user);
                strbuf_puts(b, ": <span class=\"m\" data-m=\"waiting\" data-pool=\"");
                esc(b, r->pools[k].database);
                strbuf_puts(b, "/");
                esc(b, r->pools[k].user);
                strbuf_printf(b, "\">%ld</span> waiting, max wait ", r->pools[k].waiting);
                duration(b, r->pools[k].maxwait_s);
                strbuf_puts(b, "</li>");
        }
        if (r->clients >= 0) {
                m_open(b, "clients", "pool-clients");
                strbuf_printf(b, "%lld</span>", r->clients);
                if (r->max_client_conn > 0) {
                        strbuf_printf(b, " of max_client_conn %lld", r->max_client_conn);
                        pct(b, r->clients, r->max_client_conn);
                }
                strbuf_puts(b, "</li>");
        }
        if (r->cert_not_after > 0) {
                /* SPEC 13: the server certificate's days left */
                double days = ((double)r->cert_not_after - now) / 86400.0;
                m_open(b, "TLS certificate", "cert-days");
                if (days >= 0)
                        strbuf_printf(b, "%.0f</span> day%s left</li>", floor(days),
                                      floor(days) == 1 ? "" : "s");
                else
                        strbuf_puts(b, "expired</span></li>");
        }
        strbuf_puts(b, "</ul>");
}

static void row(struct strbuf *b, const struct target_view *t, const struct render_ctx *c)
{
        struct slo_report r;
        slo_report(t->slo, c->mono, &r);
        strbuf_puts(b, "<tr class=\"target\" data-target=\"");
        esc(b, t->name);
        strbuf_puts(b, "\"><td><b>");
        esc(b, t->name);
        strbuf_puts(b, "</b><br><span class=\"muted\">");
        esc(b, t->kind);
        if (t->conf != NULL && t->conf->host != NULL) {
                strbuf_puts(b, " &middot; ");
                esc(b, t->conf->host);
                strbuf_printf(b, ":%d", t->conf->port);
                if (strcmp(t->kind, "redis") == 0)
                        strbuf_printf(b, " db %d", t->conf->db);
        }
        if (!t->critical)
                strbuf_puts(b, " &middot; not critical");
        strbuf_printf(b, "</span></td><td><span class=\"badge %s status\">%s</span></td>",
                      status_name(t->status), status_name(t->status));
        strbuf_puts(b, "<td class=\"out\">");
        const struct probe_result *s = t->shown;
        if (t->status == ST_UNKNOWN) {
                strbuf_puts(b, "<span class=\"code\">no_result_yet</span>");
                if (t->prev_status != NULL && t->prev_status[0] != '\0') {
                        strbuf_puts(b, "<br><span class=\"muted\">before the restart: ");
                        esc(b, t->prev_status);
                        if (t->prev_reason != NULL && t->prev_reason[0] != '\0') {
                                strbuf_puts(b, ", ");
                                esc(b, t->prev_reason);
                        }
                        strbuf_puts(b, "</span>");
                }
        } else if (s != NULL && t->status != ST_PASS) {
                strbuf_puts(b, "<span class=\"code\">");
                esc(b, s->reason);
                strbuf_puts(b, "</span><br>");
                esc(b, s->output);
        } else if (t->last != NULL && t->last->status == ST_FAIL) {
                strbuf_puts(b, "<span class=\"muted\">last check: ");
                esc(b, t->last->reason);
                strbuf_puts(b, "</span>");
        }
        strbuf_puts(b, "</td><td data-m=\"latency\">");
        duration(b, t->last != NULL ? t->last_duration : -1);
        strbuf_puts(b, "</td><td>");
        duration(b, r.started ? r.startup_seconds : -1);
        if (r.started)
                strbuf_puts(b,
                            r.startup_met ? " <span class=\"muted\">met</span>" : " <b>missed</b>");
        strbuf_puts(b, "</td><td>");
        if (r.reconnect != NULL && r.reconnect->count > 0) {
                strbuf_puts(b, "last ");
                duration(b, r.reconnect_last);
                strbuf_puts(b, ", max ");
                duration(b, r.reconnect_max);
                strbuf_printf(b,
                              "<br><span class=\"muted\">%llu met, %llu missed; "
                              "%llu restart%s</span>",
                              (unsigned long long)r.reconnects_met,
                              (unsigned long long)r.reconnects_missed,
                              (unsigned long long)r.restarts, r.restarts == 1 ? "" : "s");
        } else {
                strbuf_puts(b, "<span class=\"muted\">none</span>");
        }
        if (r.in_outage) {
                strbuf_puts(b, "<br><b>down for ");
                duration(b, r.outage_seconds);
                strbuf_puts(b, "</b>");
        }
        strbuf_printf(b,
                      "</td><td><span data-m=\"availability\">%.3f%%</span> "
                      "<span class=\"muted\">of ",
                      r.availability * 100.0);
        duration(b, r.observed_seconds);
        strbuf_printf(b, " watched<br>%llu outage%s", (unsigned long long)r.outages,
                      r.outages == 1 ? "" : "s");
        if (r.outages > 0) {
                strbuf_puts(b, ", longest ");
                duration(b, r.longest_outage);
        }
        strbuf_puts(b, "</span><br>");
        strip(b, t, c);
        strbuf_puts(b, "</td><td>");
        sparkline(b, t);
        strbuf_puts(b, "</td></tr><tr class=\"measured\" data-target=\"");
        esc(b, t->name);
        strbuf_puts(b, "\"><td></td><td colspan=\"7\">");
        measured(b, t, c->now);
        strbuf_puts(b, "</td></tr>");
}

static const char *str_of(json_t *o, const char *k)
{
        const char *s = json_string_value(json_object_get(o, k));
        return s != NULL ? s : "";
}

/* The notifiers (SPEC 12), when there are any: as at the page's load (the
 * script updates the targets and the timeline, not this table). */
static void notifiers(struct strbuf *b, const struct render_ctx *c)
{
        if (c->nnotifiers == 0)
                return;
        strbuf_puts(b, "<h2>Notifiers</h2><table id=\"notifiers\"><thead><tr><th>notifier</th>"
                       "<th>kind</th><th>receiver</th><th>queued</th><th>sent</th><th>failed</th>"
                       "<th>dropped</th><th>last success</th><th>last error</th></tr></thead>"
                       "<tbody>");
        for (size_t i = 0; i < c->nnotifiers; i++) {
                const struct notifier_view *nv = &c->notifiers[i];
                char when[CLOCK_TEXT_MAX];
                strbuf_puts(b, "<tr class=\"target\"><td>");
                esc(b, nv->name);
                strbuf_puts(b, "</td><td>");
                esc(b, nv->kind);
                strbuf_puts(b, "</td><td>");
                esc(b, nv->url);
                strbuf_printf(b, "</td><td>%zu</td><td>%llu</td><td>%llu</td><td>%llu</td><td>",
                              nv->st.queue_length, (unsigned long long)nv->st.sent,
                              (unsigned long long)nv->st.failed,
                              (unsigned long long)nv->st.dropped);
                if (nv->st.last_success > 0) {
                        clock_format(nv->st.last_success, CLOCK_HUMAN, when, sizeof(when));
                        esc(b, when);
                } else {
                        strbuf_puts(b, "<span class=\"muted\">never</span>");
                }
                strbuf_puts(b, "</td><td>");
                if (nv->st.last_error > 0) {
                        clock_format(nv->st.last_error, CLOCK_HUMAN, when, sizeof(when));
                        esc(b, when);
                        strbuf_puts(b, ": ");
                        esc(b, nv->st.last_error_text);
                } else {
                        strbuf_puts(b, "<span class=\"muted\">none</span>");
                }
                strbuf_puts(b, "</td></tr>");
        }
        strbuf_puts(b, "</tbody></table>");
}

/* The timeline: the journal's newest events, as the journal wrote them. */
static void timeline(struct strbuf *b, const struct render_ctx *c)
{
        strbuf_puts(b, "<h2>Recent events</h2><ol id=\"events\" class=\"events\">");
        json_t *doc = NULL;
        if (c->journal != NULL) {
                struct journal_query q = {
                    .target = NULL, .type = -1, .since = 0, .limit = TIMELINE_EVENTS};
                char *s = journal_query_json(c->journal, &q);
                doc = json_loads(s, 0, NULL);
                free(s);
        }
        json_t *evs = json_object_get(doc, "events");
        if (json_array_size(evs) == 0)
                strbuf_puts(b, "<li class=\"muted\">no events yet</li>");
        for (size_t i = 0; i < json_array_size(evs); i++) {
                json_t *e = json_array_get(evs, i);
                const char *type = str_of(e, "type");
                strbuf_printf(b, "<li class=\"ev ev-");
                esc(b, type);
                strbuf_printf(b, "\" data-id=\"%lld\" data-type=\"",
                              (long long)json_integer_value(json_object_get(e, "id")));
                esc(b, type);
                strbuf_puts(b, "\"><time>");
                esc(b, str_of(e, "time"));
                strbuf_puts(b, "</time> ");
                if (json_object_get(e, "target") != NULL) {
                        strbuf_puts(b, "<b class=\"tg\">");
                        esc(b, str_of(e, "target"));
                        strbuf_puts(b, "</b> ");
                }
                if (strcmp(type, "transition") == 0) {
                        strbuf_puts(b, "<span class=\"badge ");
                        esc(b, str_of(e, "from"));
                        strbuf_puts(b, "\">");
                        esc(b, str_of(e, "from"));
                        strbuf_puts(b, "</span> &rarr; <span class=\"badge ");
                        esc(b, str_of(e, "to"));
                        strbuf_puts(b, "\">");
                        esc(b, str_of(e, "to"));
                        strbuf_puts(b, "</span>");
                        if (json_object_get(e, "reason") != NULL) {
                                strbuf_puts(b, " <span class=\"code\">");
                                esc(b, str_of(e, "reason"));
                                strbuf_puts(b, "</span>");
                        }
                        if (json_object_get(e, "output") != NULL) {
                                strbuf_puts(b, " <span class=\"out\">");
                                esc(b, str_of(e, "output"));
                                strbuf_puts(b, "</span>");
                        }
                } else if (strcmp(type, "outage_end") == 0) {
                        strbuf_puts(b, "outage over after ");
                        duration(b, json_number_value(json_object_get(e, "durationSeconds")));
                        strbuf_puts(b, " (");
                        esc(b, str_of(e, "end"));
                        if (json_is_string(json_object_get(e, "reconnect"))) {
                                strbuf_puts(b, ", reconnection ");
                                esc(b, str_of(e, "reconnect"));
                        }
                        strbuf_puts(b, ")");
                } else if (strcmp(type, "reload") == 0) {
                        static const char *const lists[] = {"added", "removed", "changed"};
                        strbuf_puts(b, "configuration reloaded");
                        for (int k = 0; k < 3; k++) {
                                json_t *a = json_object_get(e, lists[k]);
                                for (size_t x = 0; x < json_array_size(a); x++) {
                                        strbuf_puts(b, x == 0 ? "; " : ", ");
                                        if (x == 0)
                                                strbuf_printf(b, "%s ", lists[k]);
                                        esc(b, json_string_value(json_array_get(a, x)));
                                }
                        }
                } else if (strcmp(type, "start") == 0) {
                        strbuf_puts(b, "daemon started");
                        if (json_is_true(json_object_get(e, "restored")))
                                strbuf_puts(b, ", history restored");
                } else if (strcmp(type, "stop") == 0) {
                        strbuf_puts(b, "daemon stopped (");
                        esc(b, str_of(e, "signal"));
                        strbuf_puts(b, ")");
                } else {
                        esc(b, type);
                        strbuf_puts(b, " ");
                        esc(b, str_of(e, "notifier"));
                        strbuf_puts(b, ": ");
                        esc(b, str_of(e, "error"));
                }
                strbuf_puts(b, "</li>");
        }
        json_decref(doc);
        strbuf_puts(b, "</ol>");
}

static const char *css =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}"
    "h1{font-size:1.3em;margin:0 0 .3em}h2{font-size:1.1em;margin:1.2em 0 .4em}"
    "table{border-collapse:collapse;width:100%;background:#fff}"
    "th,td{padding:.45em .6em;text-align:left;vertical-align:top}"
    "tr.target td{border-top:1px solid #e3e3e3}th{background:#f0f0f0;font-weight:600}"
    "tr.measured td{padding-top:0;font-size:.92em}"
    ".obs{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:.2em 1.4em;"
    "color:#555}.m{color:#111;font-weight:600}"
    ".badge{display:inline-block;min-width:3.5em;text-align:center;border-radius:3px;"
    "padding:.1em .4em;color:#fff;font-weight:600}"
    ".pass{background:#2e9d4f}.warn{background:#d79b00}.fail{background:#d33c3c}"
    ".unknown{background:#888}.out{color:#555;font-size:.92em;max-width:32em;"
    "overflow-wrap:anywhere}.code{font-family:monospace}.muted{color:#777}"
    ".spark .lat{fill:none;stroke:#3b6ea8;stroke-width:1.5}.spark .up{fill:#2e9d4f}"
    ".spark .down{fill:#d33c3c}.axis{font-size:9px;fill:#777}.grid{stroke:#e3e3e3}"
    ".tgt{stroke:#d79b00;stroke-dasharray:3 2}"
    ".strip .a100{fill:#2e9d4f}.strip .a99{fill:#9ccc65}.strip .a90{fill:#d79b00}"
    ".strip .a0{fill:#d33c3c}.strip .none{fill:#e3e3e3}"
    ".events{list-style:none;padding:0;margin:0;background:#fff}"
    ".events li{padding:.3em .6em;border-bottom:1px solid #eee}"
    ".events time{font-family:monospace;color:#555;margin-right:.6em}"
    ".events .badge{min-width:0;font-size:.85em}"
    "footer{margin-top:1em;color:#777;font-size:.9em}";

/* Fetches this page every REFRESH_S and swaps the parts that change; the
 * attributes on <html> say how many updates ran (data-updates) and when the
 * first page was made (data-first), for people and for tests. */
static const char *script =
    "(function(){var d=document,h=d.documentElement,ids=['overall','meta','rows','events'];"
    "h.setAttribute('data-first',d.getElementById('generated').getAttribute('data-t'));"
    "h.setAttribute('data-updates','0');"
    "function note(t){var n=d.getElementById('note');if(n)n.textContent=t;}"
    "function swap(doc){ids.forEach(function(id){var o=d.getElementById(id),"
    "n=doc.getElementById(id);if(o&&n)o.replaceWith(d.importNode(n,true));});"
    "d.title=doc.title;h.setAttribute('data-updates',String(+h.getAttribute('data-updates')+1));}"
    "function "
    "tick(){fetch(location.origin+location.pathname+location.search,{headers:{Accept:'text/html'},"
    "credentials:'same-origin',cache:'no-store'}).then(function(r){"
    "if(!r.ok&&r.status!==503)throw new Error('HTTP '+r.status);return r.text();})"
    ".then(function(t){swap(new DOMParser().parseFromString(t,'text/html'));note('');})"
    ".catch(function(e){note('update failed ('+e.message+'), retrying');})"
    ".then(function(){setTimeout(tick," STR(REFRESH_MS) ");});}"
                                                        "setTimeout(tick," STR(
                                                            REFRESH_MS) ");})();";

/* A target's rows. */
void render_html_part(const struct render_ctx *c, struct strbuf *sec, const struct target_view *v)
{
        row(&sec[0], v, c);
}

/* The page around the targets' rows; `agg` their aggregate status. */
void render_html_join(const struct render_job *j, enum status agg, struct render_answer *a)
{
        const struct render_ctx *c = &j->c;
        struct strbuf *b = &a->small;
        char when[CLOCK_TEXT_MAX];
        clock_format(c->now, CLOCK_HUMAN, when, sizeof(when));
        const char *nonce = c->nonce != NULL ? c->nonce : "";

        strbuf_printf(b,
                      "<!DOCTYPE html><html lang=\"en\" data-refresh=\"%d\"><head>"
                      "<meta charset=\"utf-8\">"
                      "<noscript><meta http-equiv=\"refresh\" content=\"%d\"></noscript>"
                      "<meta name=\"viewport\" content=\"width=device-width\">"
                      "<title>hdms-healthd: %s</title><style nonce=\"",
                      REFRESH_S, REFRESH_S, status_name(agg));
        esc(b, nonce);
        strbuf_printf(b, "\">%s</style></head><body>", css);
        strbuf_printf(b,
                      "<h1>hdms-healthd <span class=\"badge %s\" id=\"overall\">%s</span></h1>"
                      "<p class=\"muted\" id=\"meta\">version ",
                      status_name(agg), status_name(agg));
        esc(b, c->version);
        strbuf_printf(b, " &middot; <span id=\"generated\" data-t=\"%.0f\">%s</span> &middot; up ",
                      c->now * 1000.0, when);
        duration(b, c->uptime);
        strbuf_printf(b,
                      " &middot; updates every %d s &middot; <a href=\"/status?format=json\">"
                      "JSON</a> &middot; <a href=\"/events\">events</a> &middot; "
                      "<a href=\"/metrics\">metrics</a> <span id=\"note\"></span></p>",
                      REFRESH_S);
        strbuf_puts(b, "<table><thead><tr><th>target</th><th>status</th><th>reason</th>"
                       "<th>latency</th><th>startup</th><th>reconnects</th>"
                       "<th>availability 24 h</th><th>check latency</th></tr></thead>"
                       "<tbody id=\"rows\">");
        render_answer_section(a, 0);
        strbuf_puts(b, "</tbody></table>");
        notifiers(b, c);
        timeline(b, c);
        strbuf_puts(b, "<footer>Probe endpoints: <a href=\"/livez\">/livez</a> "
                       "<a href=\"/readyz\">/readyz</a> <a href=\"/startupz\">/startupz</a>"
                       "</footer><script nonce=\"");
        esc(b, nonce);
        strbuf_puts(b, "\">");
        strbuf_puts(b, script);
        strbuf_puts(b, "</script></body></html>\n");
}

char *render_html(const struct target_view *v, size_t n, const struct render_ctx *c)
{
        struct render_job *j = render_job_new(RENDER_STATUS_HTML, c, n);
        for (size_t i = 0; i < n; i++)
                render_job_add(j, &v[i]);
        enum status st;
        return render_job_finish(j, &st);
}
