/* The /status dashboard: one self-contained HTML page (inline CSS and SVG,
 * no script, no external asset) that refreshes itself.  Every string that
 * came from the network or the configuration goes through esc(). */
#include "render.h"
#include "clock.h"
#include "strbuf.h"
#include "textutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Latency line over up/down bars, from the last results (oldest first). */
static void sparkline(struct strbuf *b, const struct slo *slo)
{
        double lat[SLO_HISTORY];
        bool ok[SLO_HISTORY];
        size_t n = slo_history(slo, lat, ok, SLO_HISTORY);
        const int w = 180, h = 36, bar = 6;
        strbuf_printf(b,
                      "<svg class=\"spark\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                      "role=\"img\" aria-label=\"latency and up/down history\">",
                      w, h + bar + 2, w, h + bar + 2);
        if (n == 0) {
                strbuf_puts(b, "</svg>");
                return;
        }
        double max = 0;
        for (size_t i = 0; i < n; i++)
                if (lat[i] > max)
                        max = lat[i];
        if (max <= 0)
                max = 1e-3;
        double step = n > 1 ? (double)(w - 2) / (double)(SLO_HISTORY - 1) : 0;
        double x0 = (double)(w - 2) - step * (double)(n - 1) + 1;
        strbuf_puts(b, "<polyline fill=\"none\" stroke=\"#3b6ea8\" stroke-width=\"1.5\" points=\"");
        for (size_t i = 0; i < n; i++)
                strbuf_printf(b, "%.1f,%.1f ", x0 + step * (double)i,
                              1 + (double)(h - 2) * (1.0 - lat[i] / max));
        strbuf_puts(b, "\"/>");
        double bw = step > 1 ? step : 1;
        for (size_t i = 0; i < n; i++)
                strbuf_printf(b,
                              "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" "
                              "fill=\"%s\"/>",
                              x0 + step * (double)i - bw / 2, h + 2, bw, bar,
                              ok[i] ? "#2e9d4f" : "#d33c3c");
        strbuf_printf(b, "<title>max %.2f ms over the last %zu checks</title></svg>", max * 1000.0,
                      n);
}

static const char *css =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}"
    "h1{font-size:1.3em;margin:0 0 .3em}table{border-collapse:collapse;width:100%;"
    "background:#fff}th,td{padding:.45em .6em;border-bottom:1px solid #e3e3e3;text-align:left;"
    "vertical-align:top}th{background:#f0f0f0;font-weight:600}"
    ".badge{display:inline-block;min-width:3.5em;text-align:center;border-radius:3px;"
    "padding:.1em .4em;color:#fff;font-weight:600}"
    ".pass{background:#2e9d4f}.warn{background:#d79b00}.fail{background:#d33c3c}"
    ".unknown{background:#888}.out{color:#555;font-size:.92em;max-width:32em;"
    "overflow-wrap:anywhere}.code{font-family:monospace}.muted{color:#777}"
    "footer{margin-top:1em;color:#777;font-size:.9em}";

char *render_html(const struct target_view *v, size_t n, const struct render_ctx *c)
{
        struct strbuf b;
        strbuf_init(&b, 8192 + n * 3072);
        enum status agg = render_aggregate(v, n);
        char when[CLOCK_TEXT_MAX];
        clock_format(c->now, CLOCK_HUMAN, when, sizeof(when));

        strbuf_printf(&b,
                      "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                      "<meta http-equiv=\"refresh\" content=\"5\">"
                      "<meta name=\"viewport\" content=\"width=device-width\">"
                      "<title>hdms-healthd: %s</title><style>%s</style></head><body>",
                      status_name(agg), css);
        strbuf_printf(&b,
                      "<h1>hdms-healthd <span class=\"badge %s\" id=\"overall\">%s</span></h1>"
                      "<p class=\"muted\">version ",
                      status_name(agg), status_name(agg));
        esc(&b, c->version);
        strbuf_printf(&b, " &middot; %s &middot; up ", when);
        duration(&b, c->uptime);
        strbuf_puts(&b, " &middot; refreshes every 5 s &middot; <a href=\"/status?format=json\">"
                        "JSON</a> &middot; <a href=\"/metrics\">metrics</a></p>");
        strbuf_puts(&b, "<table><thead><tr><th>target</th><th>status</th><th>reason</th>"
                        "<th>latency</th><th>startup</th><th>reconnects</th>"
                        "<th>availability 24 h</th><th>history</th></tr></thead><tbody>");
        for (size_t i = 0; i < n; i++) {
                const struct target_view *t = &v[i];
                struct slo_report r;
                slo_report(t->slo, c->mono, &r);
                strbuf_puts(&b, "<tr class=\"target\" data-target=\"");
                esc(&b, t->name);
                strbuf_puts(&b, "\"><td><b>");
                esc(&b, t->name);
                strbuf_puts(&b, "</b><br><span class=\"muted\">");
                esc(&b, t->kind);
                if (t->conf != NULL && t->conf->host != NULL) {
                        strbuf_puts(&b, " &middot; ");
                        esc(&b, t->conf->host);
                        strbuf_printf(&b, ":%d", t->conf->port);
                        if (strcmp(t->kind, "redis") == 0)
                                strbuf_printf(&b, " db %d", t->conf->db);
                }
                if (!t->critical)
                        strbuf_puts(&b, " &middot; not critical");
                strbuf_printf(&b, "</span></td><td><span class=\"badge %s status\">%s</span></td>",
                              status_name(t->status), status_name(t->status));
                strbuf_puts(&b, "<td class=\"out\">");
                const struct probe_result *s = t->shown;
                if (t->status == ST_UNKNOWN)
                        strbuf_puts(&b, "<span class=\"code\">no_result_yet</span>");
                else if (s != NULL && t->status != ST_PASS) {
                        strbuf_puts(&b, "<span class=\"code\">");
                        esc(&b, s->reason);
                        strbuf_puts(&b, "</span><br>");
                        esc(&b, s->output);
                } else if (t->last != NULL && t->last->status == ST_FAIL) {
                        strbuf_puts(&b, "<span class=\"muted\">last check: ");
                        esc(&b, t->last->reason);
                        strbuf_puts(&b, "</span>");
                }
                strbuf_puts(&b, "</td><td>");
                duration(&b, t->last != NULL ? t->last_duration : -1);
                strbuf_puts(&b, "</td><td>");
                duration(&b, r.started ? r.startup_seconds : -1);
                if (r.started)
                        strbuf_printf(&b, r.startup_met ? " <span class=\"muted\">met</span>"
                                                        : " <b>missed</b>");
                strbuf_puts(&b, "</td><td>");
                if (r.reconnect != NULL && r.reconnect->count > 0) {
                        strbuf_puts(&b, "last ");
                        duration(&b, r.reconnect_last);
                        strbuf_puts(&b, ", max ");
                        duration(&b, r.reconnect_max);
                        strbuf_printf(&b,
                                      "<br><span class=\"muted\">%llu met, %llu missed; "
                                      "%llu restart%s</span>",
                                      (unsigned long long)r.reconnects_met,
                                      (unsigned long long)r.reconnects_missed,
                                      (unsigned long long)r.restarts, r.restarts == 1 ? "" : "s");
                } else {
                        strbuf_puts(&b, "<span class=\"muted\">none</span>");
                }
                if (r.in_outage) {
                        strbuf_puts(&b, "<br><b>down for ");
                        duration(&b, r.outage_seconds);
                        strbuf_puts(&b, "</b>");
                }
                strbuf_printf(&b, "</td><td>%.3f%%<br><span class=\"muted\">%llu outage%s",
                              r.availability * 100.0, (unsigned long long)r.outages,
                              r.outages == 1 ? "" : "s");
                if (r.outages > 0) {
                        strbuf_puts(&b, ", longest ");
                        duration(&b, r.longest_outage);
                }
                strbuf_puts(&b, "</span></td><td>");
                sparkline(&b, t->slo);
                strbuf_puts(&b, "</td></tr>");
        }
        strbuf_puts(&b, "</tbody></table><footer>Probe endpoints: <a href=\"/livez\">/livez</a> "
                        "<a href=\"/readyz\">/readyz</a> <a href=\"/startupz\">/startupz</a>"
                        "</footer></body></html>\n");
        return strbuf_take(&b);
}
