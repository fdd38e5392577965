/* The bodies of notifications (SPEC 12): Alertmanager's API v2 alerts and
 * the webhook's JSON.  Pure: every time comes in as an argument. */
#include "journal.h"
#include "notify.h"
#include "textutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *json_time(double t)
{
        char buf[64];
        journal_time(t, buf, sizeof(buf));
        return json_string(buf);
}

/* jansson refuses invalid UTF-8: server text is cleaned first. */
static json_t *json_text(const char *s)
{
        if (s == NULL)
                return json_string("");
        size_t n = strlen(s);
        char *buf = malloc(n * 3 + 1);
        if (buf == NULL)
                abort();
        utf8_clean(buf, n * 3 + 1, s, n);
        json_t *j = json_string(buf);
        free(buf);
        return j != NULL ? j : json_string("");
}

static void set(json_t *o, const char *key, json_t *v)
{
        json_object_set_new(o, key, v != NULL ? v : json_null());
}

static char *dump(json_t *j)
{
        /* 15 digits: 1.5 stays 1.5, not 1.50000000000000011 */
        char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15));
        json_decref(j);
        if (s == NULL)
                abort();
        return s;
}

/* "https://h/x/" + "/status" without a doubled slash. */
static json_t *status_url(const char *external_url)
{
        if (external_url == NULL || external_url[0] == '\0')
                return NULL;
        size_t n = strlen(external_url);
        while (n > 0 && external_url[n - 1] == '/')
                n--;
        char *buf = malloc(n + 8);
        if (buf == NULL)
                abort();
        memcpy(buf, external_url, n);
        memcpy(buf + n, "/status", 8);
        json_t *j = json_text(buf);
        free(buf);
        return j;
}

char *np_alertmanager_body(const struct np_alert *a, size_t n, const char *external_url)
{
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
                const struct np_alert *x = &a[i];
                bool down = x->status == ST_FAIL;
                json_t *labels = json_object();
                set(labels, "alertname",
                    json_string(down ? "HdmsHealthdTargetDown" : "HdmsHealthdTargetDegraded"));
                set(labels, "target", json_text(x->target));
                set(labels, "kind", json_text(x->kind));
                set(labels, "instance", json_text(x->instance));
                set(labels, "service", json_string("hdms-healthd"));
                set(labels, "severity", json_string(x->critical ? "critical" : "warning"));
                json_t *ann = json_object();
                char summary[200];
                utf8_snprintf(summary, sizeof(summary), "%s (%s) on %s is %s%s%s", x->target,
                              x->kind, x->instance, down ? "down" : "degraded",
                              x->reason != NULL && x->reason[0] != '\0' ? ": " : "",
                              x->reason != NULL ? x->reason : "");
                set(ann, "summary", json_text(summary));
                set(ann, "description", json_text(x->output));
                set(ann, "reason", json_text(x->reason));
                json_t *o = json_object();
                set(o, "labels", labels);
                set(o, "annotations", ann);
                set(o, "startsAt", json_time(x->starts_at));
                set(o, "endsAt", json_time(x->ends_at));
                json_t *g = status_url(external_url);
                if (g != NULL)
                        set(o, "generatorURL", g);
                json_array_append_new(arr, o);
        }
        return dump(arr);
}

/* "1h 2m", "3m 5s", "12.3s": short, for a chat line. */
static void human_duration(double s, char *buf, size_t len)
{
        if (s < 0)
                s = 0;
        if (s < 60)
                snprintf(buf, len, "%.1fs", s);
        else if (s < 3600)
                snprintf(buf, len, "%dm %ds", (int)(s / 60), (int)s % 60);
        else if (s < 86400)
                snprintf(buf, len, "%dh %dm", (int)(s / 3600), ((int)s % 3600) / 60);
        else
                snprintf(buf, len, "%dd %dh", (int)(s / 86400), ((int)s % 86400) / 3600);
}

void np_webhook_text(const struct np_webhook *w, char *buf, size_t len)
{
        char dur[32];
        human_duration(w->duration, dur, sizeof(dur));
        const char *reason = w->reason != NULL ? w->reason : "";
        const char *output = w->output != NULL ? w->output : "";
        switch (w->event) {
        case ST_FAIL:
        case ST_WARN:
                utf8_snprintf(buf, len, "[%s] %s (%s) on %s: %s%s%.200s",
                              w->event == ST_FAIL ? "FAIL" : "WARN", w->target, w->kind,
                              w->instance, reason[0] != '\0' ? reason : status_name(w->event),
                              output[0] != '\0' ? ": " : "", output);
                break;
        case ST_PASS:
                utf8_snprintf(buf, len, "[OK] %s (%s) on %s recovered after %s (was %s)", w->target,
                              w->kind, w->instance, dur, status_name(w->previous));
                break;
        default:
                utf8_snprintf(buf, len, "[%s] %s (%s) on %s is %s after %s of %s", "INFO",
                              w->target, w->kind, w->instance, status_name(w->event), dur,
                              status_name(w->previous));
                break;
        }
        /* one line, whatever the server wrote */
        for (char *p = buf; *p != '\0'; p++)
                if (*p == '\n' || *p == '\r' || *p == '\t')
                        *p = ' ';
}

char *np_webhook_body(const struct np_webhook *w)
{
        char text[768];
        np_webhook_text(w, text, sizeof(text));
        json_t *o = json_object();
        set(o, "version", json_integer(1));
        set(o, "event", json_string(status_name(w->event)));
        set(o, "target", json_text(w->target));
        set(o, "kind", json_text(w->kind));
        set(o, "previous", json_string(status_name(w->previous)));
        set(o, "reason", w->reason != NULL && w->reason[0] != '\0' ? json_text(w->reason) : NULL);
        set(o, "output", w->output != NULL && w->output[0] != '\0' ? json_text(w->output) : NULL);
        set(o, "time", json_time(w->time));
        set(o, "since", json_time(w->since));
        double d = w->duration < 0 ? 0 : floor(w->duration * 1000.0 + 0.5) / 1000.0;
        set(o, "durationSeconds", json_real(d));
        set(o, "instance", json_text(w->instance));
        set(o, "url", status_url(w->external_url));
        set(o, "text", json_text(text));
        return dump(o);
}
