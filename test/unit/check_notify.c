/*
 * Unit tests for the notifications' pure parts (SPEC 12): the payloads
 * (notify_payload.c), the URL origin shown instead of a secret URL
 * (textutil.c), and one notifier's decisions (notify.c): min_duration,
 * notify_warn, targets, send_resolved, the bounded queue and its
 * replacement rule, retries and backoff, Alertmanager's re-posts and
 * resolutions, and the state kept across a restart.  Time is an argument
 * everywhere: nothing sleeps.  Delivery over real HTTP is tested in
 * test/integration/test_notify_smoke.py.
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify.h"
#include "textutil.h"

#define T0 1796400000.0 /* 2026-12-04T16:00:00Z */

static json_t *parse(const char *s)
{
        json_error_t e;
        json_t *j = json_loads(s, 0, &e);
        ck_assert_msg(j != NULL, "not JSON (%s): %s", e.text, s);
        return j;
}

static const char *str(const json_t *o, const char *path1, const char *path2)
{
        const json_t *x = json_object_get(o, path1);
        if (path2 != NULL)
                x = json_object_get(x, path2);
        return json_string_value(x);
}

/* ---- payloads ---- */

START_TEST(test_alertmanager_body)
{
        struct np_alert a[2] = {
            {.status = ST_FAIL,
             .target = "redis-cache",
             .kind = "redis",
             .instance = "host-a",
             .critical = true,
             .reason = "connect_refused",
             .output = "cannot connect",
             .starts_at = T0,
             .ends_at = T0 + 240},
            {.status = ST_WARN,
             .target = "pgbouncer",
             .kind = "pgbouncer",
             .instance = "host-a",
             .critical = false,
             .reason = "clients_waiting",
             .output = "3 waiting",
             .starts_at = T0 + 1.5,
             .ends_at = T0 + 60},
        };
        char *s = np_alertmanager_body(a, 2, "https://healthd.example/");
        json_t *j = parse(s);
        ck_assert(json_is_array(j));
        ck_assert_int_eq(json_array_size(j), 2);
        json_t *x = json_array_get(j, 0);
        ck_assert_str_eq(str(x, "labels", "alertname"), "HdmsHealthdTargetDown");
        ck_assert_str_eq(str(x, "labels", "target"), "redis-cache");
        ck_assert_str_eq(str(x, "labels", "kind"), "redis");
        ck_assert_str_eq(str(x, "labels", "instance"), "host-a");
        ck_assert_str_eq(str(x, "labels", "service"), "hdms-healthd");
        ck_assert_str_eq(str(x, "labels", "severity"), "critical");
        ck_assert_int_eq(json_object_size(json_object_get(x, "labels")), 6);
        ck_assert_str_eq(str(x, "annotations", "description"), "cannot connect");
        ck_assert_str_eq(str(x, "annotations", "reason"), "connect_refused");
        ck_assert_ptr_nonnull(strstr(str(x, "annotations", "summary"), "redis-cache"));
        ck_assert_str_eq(str(x, "startsAt", NULL), "2026-12-04T16:00:00.000Z");
        ck_assert_str_eq(str(x, "endsAt", NULL), "2026-12-04T16:04:00.000Z");
        ck_assert_str_eq(str(x, "generatorURL", NULL), "https://healthd.example/status");
        json_t *y = json_array_get(j, 1);
        ck_assert_str_eq(str(y, "labels", "alertname"), "HdmsHealthdTargetDegraded");
        ck_assert_str_eq(str(y, "labels", "severity"), "warning");
        ck_assert_str_eq(str(y, "startsAt", NULL), "2026-12-04T16:00:01.500Z");
        json_decref(j);
        free(s);

        /* no external_url: no generatorURL at all */
        s = np_alertmanager_body(a, 1, NULL);
        j = parse(s);
        ck_assert_ptr_null(json_object_get(json_array_get(j, 0), "generatorURL"));
        json_decref(j);
        free(s);
}
END_TEST

START_TEST(test_webhook_body)
{
        struct np_webhook w = {.event = ST_FAIL,
                               .previous = ST_PASS,
                               .target = "postgres",
                               .kind = "postgres",
                               .instance = "host-b",
                               .reason = "auth_failed",
                               .output = "password authentication failed\nfor user \"x\"",
                               .time = T0,
                               .since = T0,
                               .duration = 2.0004,
                               .external_url = "http://h:8080"};
        char *s = np_webhook_body(&w);
        json_t *j = parse(s);
        ck_assert_int_eq(json_integer_value(json_object_get(j, "version")), 1);
        ck_assert_str_eq(str(j, "event", NULL), "fail");
        ck_assert_str_eq(str(j, "target", NULL), "postgres");
        ck_assert_str_eq(str(j, "kind", NULL), "postgres");
        ck_assert_str_eq(str(j, "previous", NULL), "pass");
        ck_assert_str_eq(str(j, "reason", NULL), "auth_failed");
        ck_assert_ptr_nonnull(strstr(str(j, "output", NULL), "authentication failed"));
        ck_assert_str_eq(str(j, "time", NULL), "2026-12-04T16:00:00.000Z");
        ck_assert_str_eq(str(j, "since", NULL), "2026-12-04T16:00:00.000Z");
        ck_assert(fabs(json_number_value(json_object_get(j, "durationSeconds")) - 2.0) < 1e-9);
        ck_assert_str_eq(str(j, "instance", NULL), "host-b");
        ck_assert_str_eq(str(j, "url", NULL), "http://h:8080/status");
        const char *text = str(j, "text", NULL);
        ck_assert_ptr_nonnull(text);
        ck_assert_ptr_null(strchr(text, '\n')); /* one line */
        ck_assert_ptr_nonnull(strstr(text, "postgres"));
        ck_assert_ptr_nonnull(strstr(text, "auth_failed"));
        ck_assert_int_eq(json_object_size(j), 13);
        json_decref(j);
        free(s);

        /* a recovery: no reason or output, the outage's length */
        struct np_webhook p = {.event = ST_PASS,
                               .previous = ST_FAIL,
                               .target = "postgres",
                               .kind = "postgres",
                               .instance = "host-b",
                               .time = T0 + 75,
                               .since = T0,
                               .duration = 75};
        s = np_webhook_body(&p);
        j = parse(s);
        ck_assert_str_eq(str(j, "event", NULL), "pass");
        ck_assert_str_eq(str(j, "previous", NULL), "fail");
        ck_assert(json_is_null(json_object_get(j, "reason")));
        ck_assert(json_is_null(json_object_get(j, "url")));
        ck_assert_ptr_nonnull(strstr(str(j, "text", NULL), "1m 15s"));
        json_decref(j);
        free(s);
}
END_TEST

static const struct {
        const char *url, *origin;
} origins[] = {
    {"https://hooks.slack.com/services/T0/B0/XXXX", "https://hooks.slack.com:443"},
    {"http://127.0.0.1:9093", "http://127.0.0.1:9093"},
    {"http://user:secret@am.local:9093/x?token=1", "http://am.local:9093"},
    {"HTTPS://[::1]:8443/p#frag", "https://[::1]:8443"},
    {"http://host?token=abc", "http://host:80"},
    {"ftp://host/x", NULL},
    {"http://", NULL},
    {"http://host:99999/", NULL},
    {"http://host:/", NULL},
    {"http://[::1/", NULL},
    {"host:80", NULL},
};

START_TEST(test_url_origin)
{
        char out[300];
        int rc = url_origin(origins[_i].url, out, sizeof(out));
        if (origins[_i].origin == NULL) {
                ck_assert_int_eq(rc, -1);
                ck_assert_str_eq(out, "invalid");
        } else {
                ck_assert_int_eq(rc, 0);
                ck_assert_str_eq(out, origins[_i].origin);
        }
}
END_TEST

/* ---- one notifier ---- */

static struct notify_conf conf(enum notify_kind kind)
{
        struct notify_conf c;
        memset(&c, 0, sizeof(c));
        snprintf(c.name, sizeof(c.name), "n");
        c.kind = kind;
        c.url = (char *)(uintptr_t) "http://127.0.0.1:1/x";
        c.send_resolved = true;
        c.timeout_ms = 5000;
        c.repeat_interval_ms = 60000;
        c.queue_max = 100;
        return c;
}

static void status(struct notifier *n, const char *target, enum status from, enum status to,
                   double t)
{
        struct notify_event ev = {.target = target,
                                  .kind = "redis",
                                  .critical = true,
                                  .from = from,
                                  .to = to,
                                  .reason = to == ST_PASS ? NULL : "connect_refused",
                                  .output = to == ST_PASS ? NULL : "refused",
                                  .time = t};
        notifier_status(n, &ev, t);
}

static size_t qlen(const struct notifier *n)
{
        struct notify_stats st;
        notifier_get_stats(n, &st);
        return st.queue_length;
}

/* Takes the next request at `now` and answers it with `code`; returns its
 * parsed body (NULL when nothing was due). */
static json_t *deliver(struct notifier *n, double now, long code)
{
        struct notify_request rq;
        if (!notifier_take(n, now, &rq))
                return NULL;
        json_t *j = parse(rq.body);
        notifier_done(n, now, code, code == 0 ? "Couldn't connect to server" : NULL);
        return j;
}

static const char *event_of(json_t *j)
{
        return json_string_value(json_object_get(j, "event"));
}

START_TEST(test_webhook_fail_then_pass)
{
        struct notify_conf c = conf(NOTIFY_WEBHOOK);
        struct notifier *n = notifier_new(&c, "host", NULL);
        status(n, "r", ST_UNKNOWN, ST_PASS, T0); /* a normal start: nothing */
        ck_assert_int_eq(qlen(n), 0);
        status(n, "r", ST_PASS, ST_FAIL, T0 + 10);
        ck_assert_int_eq(qlen(n), 1);
        json_t *j = deliver(n, T0 + 10, 200);
        ck_assert_str_eq(event_of(j), "fail");
        ck_assert_str_eq(str(j, "previous", NULL), "pass");
        json_decref(j);
        status(n, "r", ST_FAIL, ST_FAIL, T0 + 11); /* nothing new */
        ck_assert_int_eq(qlen(n), 0);
        status(n, "r", ST_FAIL, ST_PASS, T0 + 40);
        j = deliver(n, T0 + 40, 204);
        ck_assert_str_eq(event_of(j), "pass");
        ck_assert_str_eq(str(j, "previous", NULL), "fail");
        ck_assert_str_eq(str(j, "since", NULL), "2026-12-04T16:00:10.000Z");
        ck_assert(fabs(json_number_value(json_object_get(j, "durationSeconds")) - 30) < 1e-9);
        json_decref(j);
        struct notify_stats st;
        notifier_get_stats(n, &st);
        ck_assert_int_eq(st.sent, 2);
        ck_assert(st.last_success == T0 + 40);
        notifier_free(n);
}
END_TEST

START_TEST(test_min_duration)
{
        struct notify_conf c = conf(NOTIFY_WEBHOOK);
        c.min_duration_ms = 5000;
        struct notifier *n = notifier_new(&c, "host", NULL);
        /* a blip shorter than min_duration: nothing, before or after */
        status(n, "r", ST_PASS, ST_FAIL, T0);
        ck_assert(notifier_next_wake(n) == T0 + 5);
        notifier_tick(n, T0 + 0.2);
        status(n, "r", ST_FAIL, ST_PASS, T0 + 0.2);
        notifier_tick(n, T0 + 10);
        ck_assert_int_eq(qlen(n), 0);
        ck_assert_ptr_null(deliver(n, T0 + 10, 200));
        /* a failure that lasts: sent once it has lasted 5 s */
        status(n, "r", ST_PASS, ST_FAIL, T0 + 20);
        notifier_tick(n, T0 + 24.9);
        ck_assert_int_eq(qlen(n), 0);
        notifier_tick(n, T0 + 25);
        json_t *j = deliver(n, T0 + 25, 200);
        ck_assert_str_eq(event_of(j), "fail");
        ck_assert_str_eq(str(j, "time", NULL), "2026-12-04T16:00:20.000Z");
        ck_assert(json_number_value(json_object_get(j, "durationSeconds")) >= 5);
        json_decref(j);
        status(n, "r", ST_FAIL, ST_PASS, T0 + 30);
        j = deliver(n, T0 + 30, 200);
        ck_assert_str_eq(event_of(j), "pass");
        json_decref(j);
        notifier_free(n);
}
END_TEST

START_TEST(test_warn_filter_resolved)
{
        struct notify_conf c = conf(NOTIFY_WEBHOOK);
        struct notifier *n = notifier_new(&c, "host", NULL);
        /* notify_warn = no: a warn is not sent */
        status(n, "r", ST_PASS, ST_WARN, T0);
        ck_assert_int_eq(qlen(n), 0);
        /* fail -> warn ends the failure: the receiver hears it */
        status(n, "r", ST_WARN, ST_FAIL, T0 + 1);
        json_decref(deliver(n, T0 + 1, 200));
        status(n, "r", ST_FAIL, ST_WARN, T0 + 2);
        json_t *j = deliver(n, T0 + 2, 200);
        ck_assert_str_eq(event_of(j), "warn");
        ck_assert_str_eq(str(j, "previous", NULL), "fail");
        json_decref(j);
        notifier_free(n);

        c.notify_warn = true;
        n = notifier_new(&c, "host", NULL);
        status(n, "r", ST_PASS, ST_WARN, T0);
        j = deliver(n, T0, 200);
        ck_assert_str_eq(event_of(j), "warn");
        json_decref(j);
        notifier_free(n);

        /* targets: others are ignored */
        char *names[] = {(char *)(uintptr_t) "r"};
        c.notify_warn = false;
        c.targets = names[0];
        c.target_names = names;
        c.ntarget_names = 1;
        n = notifier_new(&c, "host", NULL);
        status(n, "other", ST_PASS, ST_FAIL, T0);
        ck_assert_int_eq(qlen(n), 0);
        status(n, "r", ST_PASS, ST_FAIL, T0);
        ck_assert_int_eq(qlen(n), 1);
        notifier_free(n);

        /* send_resolved = no: the failure only */
        c = conf(NOTIFY_WEBHOOK);
        c.send_resolved = false;
        n = notifier_new(&c, "host", NULL);
        status(n, "r", ST_PASS, ST_FAIL, T0);
        json_decref(deliver(n, T0, 200));
        status(n, "r", ST_FAIL, ST_PASS, T0 + 5);
        ck_assert_int_eq(qlen(n), 0);
        notifier_free(n);
}
END_TEST

START_TEST(test_newer_state_replaces)
{
        struct notify_conf c = conf(NOTIFY_WEBHOOK);
        struct notifier *n = notifier_new(&c, "host", NULL);
        status(n, "r", ST_PASS, ST_FAIL, T0);
        status(n, "s", ST_PASS, ST_FAIL, T0);
        status(n, "r", ST_FAIL, ST_PASS, T0 + 1);
        ck_assert_int_eq(qlen(n), 2);
        /* r's place in the queue, r's newest state */
        json_t *j = deliver(n, T0 + 1, 200);
        ck_assert_str_eq(str(j, "target", NULL), "r");
        ck_assert_str_eq(event_of(j), "pass");
        json_decref(j);
        j = deliver(n, T0 + 1, 200);
        ck_assert_str_eq(str(j, "target", NULL), "s");
        json_decref(j);
        notifier_free(n);
}
END_TEST

START_TEST(test_queue_bounded)
{
        struct notify_conf c = conf(NOTIFY_WEBHOOK);
        c.queue_max = 3;
        struct notifier *n = notifier_new(&c, "host", NULL);
        char name[8];
        for (int i = 0; i < 5; i++) {
                snprintf(name, sizeof(name), "t%d", i);
                status(n, name, ST_PASS, ST_FAIL, T0 + i);
        }
        struct notify_stats st;
        notifier_get_stats(n, &st);
        ck_assert_int_eq(st.queue_length, 3);
        ck_assert_int_eq(st.dropped, 2);
        json_t *j = deliver(n, T0 + 5, 200); /* the oldest went */
        ck_assert_str_eq(str(j, "target", NULL), "t2");
        json_decref(j);
        notifier_free(n);
}
END_TEST

START_TEST(test_retry_backoff)
{
        struct notify_conf c = conf(NOTIFY_WEBHOOK);
        struct notifier *n = notifier_new(&c, "host", NULL);
        status(n, "r", ST_PASS, ST_FAIL, T0);
        struct notify_request rq;
        double now = T0;
        const double want[] = {1, 2, 4, 8, 16, 32, 60, 60, 60};
        for (int i = 0; i < 9; i++) {
                ck_assert(notifier_take(n, now, &rq));
                ck_assert_int_eq(rq.tries, i + 1);
                long code = i % 3 == 0 ? 0 : i % 3 == 1 ? 503 : 429;
                ck_assert_int_eq(notifier_done(n, now, code, "Couldn't connect to server"),
                                 NOTIFY_RETRY);
                ck_assert(notifier_next_wake(n) == now + want[i]);
                ck_assert(!notifier_take(n, now + want[i] - 0.01, &rq));
                now += want[i];
        }
        ck_assert(notifier_take(n, now, &rq));
        ck_assert_int_eq(rq.tries, 10);
        ck_assert_int_eq(notifier_done(n, now, 500, NULL), NOTIFY_FAILED);
        struct notify_stats st;
        notifier_get_stats(n, &st);
        ck_assert_int_eq(st.failed, 1);
        ck_assert_int_eq(st.sent, 0);
        ck_assert_int_eq(st.queue_length, 0);
        ck_assert_str_eq(st.last_error_text, "HTTP 500");
        notifier_free(n);
}
END_TEST

START_TEST(test_4xx_not_retried)
{
        struct notify_conf c = conf(NOTIFY_WEBHOOK);
        struct notifier *n = notifier_new(&c, "host", NULL);
        status(n, "r", ST_PASS, ST_FAIL, T0);
        struct notify_request rq;
        ck_assert(notifier_take(n, T0, &rq));
        ck_assert_int_eq(notifier_done(n, T0, 400, NULL), NOTIFY_FAILED);
        ck_assert_int_eq(qlen(n), 0);
        /* the next notification goes at once */
        status(n, "r", ST_FAIL, ST_PASS, T0 + 1);
        ck_assert(notifier_take(n, T0 + 1, &rq));
        ck_assert_int_eq(notifier_done(n, T0 + 1, 200, NULL), NOTIFY_SENT);
        notifier_free(n);
}
END_TEST

START_TEST(test_retry_superseded)
{
        struct notify_conf c = conf(NOTIFY_WEBHOOK);
        struct notifier *n = notifier_new(&c, "host", NULL);
        status(n, "r", ST_PASS, ST_FAIL, T0);
        struct notify_request rq;
        ck_assert(notifier_take(n, T0, &rq));
        /* the target recovers while its failure is in flight */
        status(n, "r", ST_FAIL, ST_PASS, T0 + 0.5);
        ck_assert_int_eq(notifier_done(n, T0 + 1, 503, NULL), NOTIFY_RETRY);
        ck_assert_int_eq(qlen(n), 1);
        json_t *j = deliver(n, T0 + 2, 200);
        ck_assert_str_eq(event_of(j), "pass"); /* never the stale fail last */
        json_decref(j);
        ck_assert_int_eq(qlen(n), 0);
        notifier_free(n);
}
END_TEST

static const char *ends_at(json_t *j, size_t i)
{
        return json_string_value(json_object_get(json_array_get(j, i), "endsAt"));
}

static const struct {
        const char *base, *post;
} am_urls[] = {
    {"http://127.0.0.1:9093", "http://127.0.0.1:9093/api/v2/alerts"},
    {"http://am:9093/", "http://am:9093/api/v2/alerts"},
    {"https://h/prefix/am//", "https://h/prefix/am/api/v2/alerts"},
    {"http://am:9093/?x=1", "http://am:9093/api/v2/alerts?x=1"},
};

/* NTP steps the wall clock back an hour (then forward): a backoff, a
 * min_duration wait and a re-post keep their distance from now. */
START_TEST(test_clock_step)
{
        const double back = -3600;
        /* a backoff */
        struct notify_conf c = conf(NOTIFY_WEBHOOK);
        struct notifier *n = notifier_new(&c, "host", NULL);
        status(n, "r", ST_PASS, ST_FAIL, T0);
        struct notify_request rq;
        ck_assert(notifier_take(n, T0, &rq));
        ck_assert_int_eq(notifier_done(n, T0, 503, NULL), NOTIFY_RETRY);
        notifier_clock_step(n, back);
        ck_assert(notifier_next_wake(n) == T0 + back + 1);
        ck_assert(!notifier_take(n, T0 + back + 0.5, &rq));
        ck_assert(notifier_take(n, T0 + back + 1, &rq));
        ck_assert_int_eq(rq.tries, 2);
        notifier_free(n);
        /* a min_duration wait */
        c.min_duration_ms = 5000;
        n = notifier_new(&c, "host", NULL);
        status(n, "r", ST_PASS, ST_FAIL, T0);
        notifier_clock_step(n, back);
        notifier_tick(n, T0 + back + 4.9);
        ck_assert_int_eq(qlen(n), 0);
        notifier_tick(n, T0 + back + 5);
        ck_assert_int_eq(qlen(n), 1);
        notifier_free(n);
        /* an Alertmanager re-post, the clock stepped forward */
        c = conf(NOTIFY_ALERTMANAGER);
        n = notifier_new(&c, "host", NULL);
        status(n, "r", ST_PASS, ST_FAIL, T0);
        json_t *j = deliver(n, T0, 200);
        ck_assert_ptr_nonnull(j);
        json_decref(j);
        notifier_clock_step(n, 600);
        ck_assert(notifier_next_wake(n) == T0 + 600 + 60);
        notifier_tick(n, T0 + 600 + 59);
        ck_assert_ptr_null(deliver(n, T0 + 600 + 59, 200));
        notifier_tick(n, T0 + 600 + 60);
        j = deliver(n, T0 + 600 + 60, 200);
        ck_assert_ptr_nonnull(j);
        json_decref(j);
        notifier_free(n);
}
END_TEST

START_TEST(test_alertmanager_url)
{
        struct notify_conf c = conf(NOTIFY_ALERTMANAGER);
        c.url = (char *)(uintptr_t)am_urls[_i].base;
        struct notifier *n = notifier_new(&c, "host", NULL);
        status(n, "r", ST_PASS, ST_FAIL, T0);
        struct notify_request rq;
        ck_assert(notifier_take(n, T0, &rq));
        ck_assert_str_eq(rq.url, am_urls[_i].post);
        notifier_free(n);
        /* a webhook's URL is used as it is */
        c = conf(NOTIFY_WEBHOOK);
        c.url = (char *)(uintptr_t)am_urls[_i].base;
        n = notifier_new(&c, "host", NULL);
        status(n, "r", ST_PASS, ST_FAIL, T0);
        ck_assert(notifier_take(n, T0, &rq));
        ck_assert_str_eq(rq.url, am_urls[_i].base);
        notifier_free(n);
}
END_TEST

START_TEST(test_alertmanager_cycle)
{
        struct notify_conf c = conf(NOTIFY_ALERTMANAGER);
        struct notifier *n = notifier_new(&c, "host", "http://h");
        status(n, "r", ST_PASS, ST_FAIL, T0);
        json_t *j = deliver(n, T0, 200);
        ck_assert_int_eq(json_array_size(j), 1);
        ck_assert_str_eq(ends_at(j, 0), "2026-12-04T16:04:00.000Z"); /* now + 4 x 1m */
        json_decref(j);
        ck_assert(notifier_next_wake(n) == T0 + 60);
        ck_assert_ptr_null(deliver(n, T0 + 59, 200));
        notifier_tick(n, T0 + 60);
        j = deliver(n, T0 + 60, 200);
        ck_assert_str_eq(ends_at(j, 0), "2026-12-04T16:05:00.000Z");
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 0), "startsAt")),
                         "2026-12-04T16:00:00.000Z");
        json_decref(j);
        /* recovery: endsAt = the recovery time, re-posted for 15 minutes */
        status(n, "r", ST_FAIL, ST_PASS, T0 + 90);
        j = deliver(n, T0 + 90, 200);
        ck_assert_str_eq(ends_at(j, 0), "2026-12-04T16:01:30.000Z");
        json_decref(j);
        int reposts = 0;
        for (double t = T0 + 91; t < T0 + 90 + 1000; t += 1) {
                notifier_tick(n, t);
                json_t *k = deliver(n, t, 200);
                if (k != NULL) {
                        ck_assert_str_eq(ends_at(k, 0), "2026-12-04T16:01:30.000Z");
                        json_decref(k);
                        reposts++;
                }
        }
        ck_assert_int_ge(reposts, 14);
        ck_assert_int_le(reposts, 15);
        ck_assert(notifier_next_wake(n) == 0);
        notifier_free(n);
}
END_TEST

START_TEST(test_alertmanager_warn)
{
        struct notify_conf c = conf(NOTIFY_ALERTMANAGER);
        c.notify_warn = true;
        struct notifier *n = notifier_new(&c, "host", NULL);
        status(n, "r", ST_PASS, ST_FAIL, T0);
        json_decref(deliver(n, T0, 200));
        status(n, "r", ST_FAIL, ST_WARN, T0 + 10);
        json_t *j = deliver(n, T0 + 10, 200);
        /* the Down alert ends, the Degraded one starts */
        ck_assert_int_eq(json_array_size(j), 2);
        ck_assert_str_eq(str(json_array_get(j, 0), "labels", "alertname"), "HdmsHealthdTargetDown");
        ck_assert_str_eq(ends_at(j, 0), "2026-12-04T16:00:10.000Z");
        ck_assert_str_eq(str(json_array_get(j, 1), "labels", "alertname"),
                         "HdmsHealthdTargetDegraded");
        json_decref(j);
        notifier_free(n);
}
END_TEST

/* The state file's member: a restart neither repeats a failure nor loses
 * its resolution. */
START_TEST(test_restart_webhook)
{
        struct notify_conf c = conf(NOTIFY_WEBHOOK);
        struct notifier *n = notifier_new(&c, "host", NULL);
        status(n, "r", ST_PASS, ST_FAIL, T0);
        status(n, "s", ST_PASS, ST_FAIL, T0);
        json_decref(deliver(n, T0, 200)); /* r delivered, s still queued */
        json_t *saved = notifier_save(n);
        notifier_free(n);

        struct config cfg;
        memset(&cfg, 0, sizeof(cfg));
        struct target_conf tc[2];
        memset(tc, 0, sizeof(tc));
        snprintf(tc[0].name, sizeof(tc[0].name), "r");
        snprintf(tc[1].name, sizeof(tc[1].name), "s");
        cfg.targets = tc;
        cfg.ntargets = 2;

        n = notifier_new(&c, "host", NULL);
        notifier_restore(n, saved, T0 + 100);
        notifier_prune(n, &cfg, T0 + 100);
        ck_assert_int_eq(qlen(n), 0);
        status(n, "r", ST_UNKNOWN, ST_FAIL, T0 + 101); /* still failing: no duplicate */
        ck_assert_int_eq(qlen(n), 0);
        status(n, "s", ST_UNKNOWN, ST_FAIL, T0 + 101); /* never delivered: sent now */
        json_t *j = deliver(n, T0 + 101, 200);
        ck_assert_str_eq(str(j, "target", NULL), "s");
        json_decref(j);
        status(n, "r", ST_FAIL, ST_PASS, T0 + 150);
        j = deliver(n, T0 + 150, 200);
        ck_assert_str_eq(event_of(j), "pass");
        ck_assert_str_eq(str(j, "since", NULL), "2026-12-04T16:00:00.000Z");
        json_decref(j);
        notifier_free(n);

        /* recovered while the daemon was down: the first result passes */
        n = notifier_new(&c, "host", NULL);
        notifier_restore(n, saved, T0 + 100);
        status(n, "r", ST_UNKNOWN, ST_PASS, T0 + 101);
        j = deliver(n, T0 + 101, 200);
        ck_assert_str_eq(event_of(j), "pass");
        json_decref(j);
        notifier_free(n);
        json_decref(saved);
}
END_TEST

START_TEST(test_restart_alertmanager)
{
        struct notify_conf c = conf(NOTIFY_ALERTMANAGER);
        struct notifier *n = notifier_new(&c, "host", NULL);
        status(n, "r", ST_PASS, ST_FAIL, T0);
        status(n, "gone", ST_PASS, ST_FAIL, T0);
        json_decref(deliver(n, T0, 200));
        json_decref(deliver(n, T0, 200));
        /* through text, as in the file */
        json_t *saved = notifier_save(n);
        char *text = json_dumps(saved, JSON_COMPACT);
        json_decref(saved);
        saved = parse(text);
        free(text);
        notifier_free(n);

        struct config cfg;
        memset(&cfg, 0, sizeof(cfg));
        struct target_conf tc;
        memset(&tc, 0, sizeof(tc));
        snprintf(tc.name, sizeof(tc.name), "r");
        cfg.targets = &tc;
        cfg.ntargets = 1;
        n = notifier_new(&c, "host", NULL);
        notifier_restore(n, saved, T0 + 100);
        notifier_prune(n, &cfg, T0 + 100); /* "gone" is not configured any more */
        notifier_tick(n, T0 + 100);
        int seen_r = 0, resolved_gone = 0;
        for (int i = 0; i < 2; i++) {
                json_t *j = deliver(n, T0 + 100, 200);
                ck_assert_ptr_nonnull(j);
                const char *t = str(json_array_get(j, 0), "labels", "target");
                if (strcmp(t, "r") == 0) {
                        /* re-posted as it was: same start, still firing */
                        ck_assert_str_eq(
                            json_string_value(json_object_get(json_array_get(j, 0), "startsAt")),
                            "2026-12-04T16:00:00.000Z");
                        ck_assert_str_eq(ends_at(j, 0), "2026-12-04T16:05:40.000Z");
                        seen_r++;
                } else {
                        ck_assert_str_eq(t, "gone");
                        ck_assert_str_eq(ends_at(j, 0), "2026-12-04T16:01:40.000Z");
                        resolved_gone++;
                }
                json_decref(j);
        }
        ck_assert_int_eq(seen_r, 1);
        ck_assert_int_eq(resolved_gone, 1);
        status(n, "r", ST_UNKNOWN, ST_FAIL, T0 + 101); /* no new alert */
        ck_assert_int_eq(qlen(n), 0);
        status(n, "r", ST_FAIL, ST_PASS, T0 + 120);
        json_t *j = deliver(n, T0 + 120, 200);
        ck_assert_str_eq(ends_at(j, 0), "2026-12-04T16:02:00.000Z");
        json_decref(j);
        notifier_free(n);
        json_decref(saved);

        /* a damaged member is skipped, not a crash */
        n = notifier_new(&c, "host", NULL);
        json_t *bad = parse("{\"kind\":\"alertmanager\",\"targets\":{\"r\":{\"alerts\":[1,{}]},"
                            "\"x\":3}}");
        notifier_restore(n, bad, T0);
        json_decref(bad);
        bad = parse("{\"kind\":\"webhook\",\"targets\":{\"r\":{\"announced\":\"fail\"}}}");
        notifier_restore(n, bad, T0); /* another kind's: ignored */
        json_decref(bad);
        ck_assert_int_eq(qlen(n), 0);
        notifier_free(n);
}
END_TEST

/* A target taken out of an Alertmanager notifier's `targets` (the notifier
 * rebuilt from its saved member): its firing alert is resolved, not left to
 * expire. */
START_TEST(test_unwatched_alert_resolved)
{
        struct notify_conf c = conf(NOTIFY_ALERTMANAGER);
        struct notifier *n = notifier_new(&c, "host", NULL);
        status(n, "r", ST_PASS, ST_FAIL, T0);
        json_decref(deliver(n, T0, 200));
        json_t *saved = notifier_save(n);
        notifier_free(n);

        char *names[] = {(char *)(uintptr_t) "other"};
        c.targets = names[0];
        c.target_names = names;
        c.ntarget_names = 1;
        struct config cfg;
        memset(&cfg, 0, sizeof(cfg));
        struct target_conf tc[2];
        memset(tc, 0, sizeof(tc));
        snprintf(tc[0].name, sizeof(tc[0].name), "r");
        snprintf(tc[1].name, sizeof(tc[1].name), "other");
        cfg.targets = tc;
        cfg.ntargets = 2;
        n = notifier_new(&c, "host", NULL);
        notifier_restore(n, saved, T0 + 100);
        notifier_prune(n, &cfg, T0 + 100);
        json_t *j = deliver(n, T0 + 100, 200);
        ck_assert_ptr_nonnull(j);
        ck_assert_str_eq(str(json_array_get(j, 0), "labels", "target"), "r");
        ck_assert_str_eq(ends_at(j, 0), "2026-12-04T16:01:40.000Z");
        json_decref(j);
        status(n, "r", ST_PASS, ST_FAIL, T0 + 110); /* not watched: nothing */
        ck_assert_int_eq(qlen(n), 0);
        notifier_free(n);
        json_decref(saved);
}
END_TEST

static Suite *notify_suite(void)
{
        Suite *s = suite_create("notify");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, test_alertmanager_body);
        tcase_add_test(tc, test_webhook_body);
        tcase_add_loop_test(tc, test_url_origin, 0, (int)(sizeof(origins) / sizeof(origins[0])));
        tcase_add_test(tc, test_webhook_fail_then_pass);
        tcase_add_test(tc, test_min_duration);
        tcase_add_test(tc, test_warn_filter_resolved);
        tcase_add_test(tc, test_newer_state_replaces);
        tcase_add_test(tc, test_queue_bounded);
        tcase_add_test(tc, test_retry_backoff);
        tcase_add_test(tc, test_4xx_not_retried);
        tcase_add_test(tc, test_retry_superseded);
        tcase_add_test(tc, test_clock_step);
        tcase_add_loop_test(tc, test_alertmanager_url, 0,
                            (int)(sizeof(am_urls) / sizeof(am_urls[0])));
        tcase_add_test(tc, test_alertmanager_cycle);
        tcase_add_test(tc, test_alertmanager_warn);
        tcase_add_test(tc, test_restart_webhook);
        tcase_add_test(tc, test_restart_alertmanager);
        tcase_add_test(tc, test_unwatched_alert_resolved);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(notify_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
