/*
 * Unit tests for the JSON renderers (render_json.c) and the probe_result
 * helpers they rely on (target.c).  Views are built by hand; every output
 * is parsed back with jansson and checked as data, not as text.
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "probe.h"
#include "render.h"
#include "target.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define FFFD "\xef\xbf\xbd"

/* 2023-11-14T22:13:20Z */
#define T0 1700000000.0

/* What a test allocates is registered here and released by the teardown,
 * which Check runs after a failed assertion too: CK_FORK=no runs under
 * valgrind stay leak-free whatever fails. */
#define MAX_HELD 32
static void *held_mem[MAX_HELD];
static json_t *held_json[MAX_HELD];
static int nheld_mem, nheld_json;

static void *own(void *p)
{
        ck_assert_int_lt(nheld_mem, MAX_HELD);
        held_mem[nheld_mem++] = p;
        return p;
}

static void release_all(void)
{
        while (nheld_json > 0)
                json_decref(held_json[--nheld_json]);
        while (nheld_mem > 0)
                free(held_mem[--nheld_mem]);
}

/* One hand-made target: its configuration, results and view. */
struct fake {
        char name[TARGET_NAME_MAX];
        struct target_conf conf;
        struct probe_result shown;
        struct probe_result last;
        struct target_view v;
};

static void fake_init(struct fake *f, const char *name, enum target_kind kind, bool critical,
                      enum status st)
{
        memset(f, 0, sizeof(*f));
        snprintf(f->name, sizeof(f->name), "%s", name);
        snprintf(f->conf.name, sizeof(f->conf.name), "%s", name);
        f->conf.kind = kind;
        f->conf.port = 6379;
        f->conf.interval_ms = 2000;
        f->conf.timeout_ms = 1000;
        f->conf.retry_interval_ms = 250;
        f->conf.rise = 2;
        f->conf.fall = 2;
        f->conf.latency_target_ms = 50;
        f->conf.critical = critical;
        f->conf.queue_warn = 1000;
        probe_result_init(&f->shown);
        probe_result_init(&f->last);
        f->v.name = f->name;
        f->v.kind = target_kind_name(kind);
        f->v.conf = &f->conf;
        f->v.critical = critical;
        f->v.status = st;
        f->v.result_age = -1;
        f->v.startup_seconds = -1;
        if (st != ST_UNKNOWN) {
                f->shown.status = st;
                f->last.status = st;
                f->v.shown = &f->shown;
                f->v.last = &f->last;
                f->v.last_check = T0;
                f->v.last_change = T0 - 60;
                f->v.result_age = 0.5;
                f->v.last_duration = 0.0125;
                f->v.ever_passed = st != ST_FAIL;
                f->v.checks = 10;
        }
}

/* Sets the shown and last result to one failure/warning with a message. */
static void fake_result(struct fake *f, enum status st, const char *reason, const char *output)
{
        f->v.status = st;
        probe_result_set(&f->shown, st, reason, "%s", output);
        f->last = f->shown;
}

static json_t *parse(const char *s)
{
        json_error_t e;
        ck_assert_ptr_nonnull(s);
        json_t *j = json_loads(s, JSON_REJECT_DUPLICATES, &e);
        ck_assert_msg(j != NULL, "invalid JSON (%s at %d): %.300s", e.text, e.position, s);
        ck_assert_int_lt(nheld_json, MAX_HELD);
        held_json[nheld_json++] = j;
        return j;
}

static const char *jstr(json_t *o, const char *key)
{
        json_t *v = json_object_get(o, key);
        ck_assert_msg(v != NULL, "no key '%s'", key);
        ck_assert_msg(json_is_string(v), "'%s' is not a string", key);
        return json_string_value(v);
}

static bool valid_status3(const char *s)
{
        return strcmp(s, "pass") == 0 || strcmp(s, "warn") == 0 || strcmp(s, "fail") == 0;
}

static const struct render_ctx ctx_detail = {"1.2.3", T0, 42.0, true};
static const struct render_ctx ctx_brief = {"1.2.3", T0, 42.0, false};

/* ---- render_aggregate ---------------------------------------------------- */

/* Each target is two letters: status (P, W, F, U) and c(ritical) or
 * n(on-critical).  Want: P, W, F, or N for "not fail" (pass or warn). */
static const struct {
        const char *targets;
        char want;
} agg_cases[] = {
    {"", 'P'},
    {"Pc", 'P'},
    {"Pc Pc Pc", 'P'},
    {"Uc", 'F'},
    {"Pc Uc", 'F'},
    {"Fc", 'F'},
    {"Pc Fc Pc", 'F'},
    {"Wc", 'W'},
    {"Pc Wc", 'W'},
    {"Wc Fc", 'F'},
    {"Wc Uc", 'F'},
    /* non-critical targets never fail the aggregate, but they do warn */
    {"Pc Fn", 'N'},
    {"Pc Un", 'N'},
    {"Fn", 'N'},
    {"Un Un", 'N'},
    {"Pc Wn", 'W'},
    {"Wn", 'W'},
    {"Fn Wc", 'W'},
    {"Wn Fn Pc", 'W'},
    {"Wn Fc", 'F'},
    {"Un Uc", 'F'},
};

static enum status letter_status(char c)
{
        switch (c) {
        case 'P':
                return ST_PASS;
        case 'W':
                return ST_WARN;
        case 'F':
                return ST_FAIL;
        default:
                return ST_UNKNOWN;
        }
}

static size_t build_fakes(struct fake *f, size_t max, const char *spec)
{
        size_t n = 0;
        for (const char *p = spec; *p != '\0';) {
                if (*p == ' ') {
                        p++;
                        continue;
                }
                ck_assert_uint_lt(n, max);
                char name[16];
                snprintf(name, sizeof(name), "t%zu", n);
                fake_init(&f[n], name, KIND_REDIS, p[1] == 'c', letter_status(p[0]));
                if (p[0] == 'F' || p[0] == 'W')
                        fake_result(&f[n], letter_status(p[0]), "some_reason", "some output");
                n++;
                p += 2;
        }
        return n;
}

static void views_of(const struct fake *f, size_t n, struct target_view *v)
{
        for (size_t i = 0; i < n; i++)
                v[i] = f[i].v;
}

START_TEST(test_aggregate)
{
        struct fake f[8];
        struct target_view v[8];
        size_t n = build_fakes(f, 8, agg_cases[_i].targets);
        views_of(f, n, v);
        enum status got = render_aggregate(v, n);
        char want = agg_cases[_i].want;
        if (want == 'N')
                ck_assert_msg(got == ST_PASS || got == ST_WARN, "'%s': got %s",
                              agg_cases[_i].targets, status_name(got));
        else
                ck_assert_msg(got == letter_status(want), "'%s': got %s, want %c",
                              agg_cases[_i].targets, status_name(got), want);

        /* /readyz says the same, and its body's status matches. */
        enum status st = ST_UNKNOWN;
        char *body = own(render_ready_json(v, n, &ctx_detail, false, &st));
        ck_assert_int_eq(st, got);
        json_t *j = parse(body);
        ck_assert_str_eq(jstr(j, "status"), status_name(got));
}
END_TEST

/* ---- render_started ------------------------------------------------------ */

/* Each target: c/n (critical or not) and 1/0 (ever passed). */
static const struct {
        const char *targets;
        bool want;
} started_cases[] = {
    {"", true},      {"c1", true},        {"c0", false},   {"n0", true},
    {"n0 c1", true}, {"c1 c0 c1", false}, {"n1 n0", true}, {"c1 c1 n0", true},
};

static size_t build_started(struct fake *f, size_t max, const char *spec)
{
        size_t n = 0;
        for (const char *p = spec; *p != '\0';) {
                if (*p == ' ') {
                        p++;
                        continue;
                }
                ck_assert_uint_lt(n, max);
                char name[16];
                snprintf(name, sizeof(name), "t%zu", n);
                bool passed = p[1] == '1';
                fake_init(&f[n], name, KIND_POSTGRES, p[0] == 'c', passed ? ST_PASS : ST_UNKNOWN);
                f[n].v.ever_passed = passed;
                n++;
                p += 2;
        }
        return n;
}

START_TEST(test_started)
{
        struct fake f[8];
        struct target_view v[8];
        size_t n = build_started(f, 8, started_cases[_i].targets);
        views_of(f, n, v);
        ck_assert_int_eq(render_started(v, n), started_cases[_i].want);

        /* /startupz: pass when started, else fail naming the laggards. */
        enum status st = ST_UNKNOWN;
        char *body = own(render_ready_json(v, n, &ctx_detail, true, &st));
        json_t *j = parse(body);
        ck_assert_int_eq(st, started_cases[_i].want ? ST_PASS : ST_FAIL);
        ck_assert_str_eq(jstr(j, "status"), started_cases[_i].want ? "pass" : "fail");
        json_t *checks = json_object_get(j, "checks");
        ck_assert(json_is_object(checks));
        for (size_t i = 0; i < n; i++) {
                json_t *c = json_object_get(checks, f[i].name);
                bool laggard = f[i].v.critical && !f[i].v.ever_passed;
                ck_assert_msg((c != NULL) == laggard, "target %s listed=%d", f[i].name, c != NULL);
                if (c != NULL) {
                        ck_assert_str_eq(jstr(c, "status"), "fail");
                        ck_assert_str_eq(jstr(c, "reason"), "not_connected_yet");
                }
        }
}
END_TEST

/* ---- /readyz ------------------------------------------------------------- */

START_TEST(test_ready_lists_non_passing)
{
        struct fake f[4];
        fake_init(&f[0], "postgres", KIND_POSTGRES, true, ST_PASS);
        fake_init(&f[1], "pgbouncer", KIND_PGBOUNCER, true, ST_FAIL);
        fake_result(&f[1], ST_FAIL, "connect_failed", "connection refused");
        fake_init(&f[2], "redis-cache", KIND_REDIS, false, ST_WARN);
        fake_result(&f[2], ST_WARN, "latency", "GET took 80ms");
        fake_init(&f[3], "redis-celery", KIND_REDIS, true, ST_UNKNOWN);
        struct target_view v[4];
        views_of(f, 4, v);

        enum status st;
        char *body = own(render_ready_json(v, 4, &ctx_detail, false, &st));
        ck_assert_uint_lt(strlen(body), 4096);
        ck_assert_int_eq(st, ST_FAIL);
        json_t *j = parse(body);
        ck_assert_str_eq(jstr(j, "status"), "fail");
        json_t *checks = json_object_get(j, "checks");
        ck_assert_ptr_null(json_object_get(checks, "postgres"));
        json_t *c = json_object_get(checks, "pgbouncer");
        ck_assert_ptr_nonnull(c);
        ck_assert_str_eq(jstr(c, "status"), "fail");
        ck_assert_str_eq(jstr(c, "reason"), "connect_failed");
        ck_assert_str_eq(jstr(c, "output"), "connection refused");
        c = json_object_get(checks, "redis-cache");
        ck_assert_str_eq(jstr(c, "status"), "warn");
        ck_assert_str_eq(jstr(c, "reason"), "latency");
        ck_assert_str_eq(jstr(c, "output"), "GET took 80ms");
        c = json_object_get(checks, "redis-celery");
        ck_assert_str_eq(jstr(c, "reason"), "no_result_yet");
        ck_assert_ptr_null(json_object_get(j, "notShown"));
}
END_TEST

/* detail = false (a token is set): status and reason only, never output. */
START_TEST(test_ready_no_detail_hides_output)
{
        struct fake f[2];
        fake_init(&f[0], "pgbouncer", KIND_PGBOUNCER, true, ST_FAIL);
        fake_result(&f[0], ST_FAIL, "auth_failed", "password authentication failed for hdms");
        fake_init(&f[1], "redis-cache", KIND_REDIS, true, ST_WARN);
        fake_result(&f[1], ST_WARN, "latency", "SET took 99ms");
        struct target_view v[2];
        views_of(f, 2, v);

        enum status st;
        char *body = own(render_ready_json(v, 2, &ctx_brief, false, &st));
        ck_assert_ptr_null(strstr(body, "password authentication"));
        ck_assert_ptr_null(strstr(body, "took 99ms"));
        json_t *j = parse(body);
        json_t *checks = json_object_get(j, "checks");
        json_t *c = json_object_get(checks, "pgbouncer");
        ck_assert_str_eq(jstr(c, "reason"), "auth_failed");
        ck_assert_ptr_null(json_object_get(c, "output"));
        c = json_object_get(checks, "redis-cache");
        ck_assert_str_eq(jstr(c, "reason"), "latency");
        ck_assert_ptr_null(json_object_get(c, "output"));

        for (int i = 0; i < 2; i++) {
                body = own(render_target_json(&v[i], &ctx_brief));
                ck_assert_ptr_null(strstr(body, "password authentication"));
                ck_assert_ptr_null(strstr(body, "took 99ms"));
                j = parse(body);
                ck_assert_ptr_nonnull(json_object_get(j, "reason"));
                ck_assert_ptr_null(json_object_get(j, "output"));
        }
}
END_TEST

/* 1000 failing targets with long outputs: the body stays under Docker's
 * 4096 bytes, stays valid, and says how many were left out. */
static const struct {
        bool detail;
        bool startup;
        char fill; /* output filler; '"' doubles in JSON */
} many_cases[] = {
    {true, false, 'x'},  {true, false, '"'}, {true, false, '\\'},
    {false, false, 'x'}, {true, true, 'x'},
};

START_TEST(test_ready_many_targets_bounded)
{
        const size_t n = 1000;
        struct fake *f = own(calloc(n, sizeof(*f)));
        struct target_view *v = own(calloc(n, sizeof(*v)));
        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(v);
        char out[401];
        memset(out, many_cases[_i].fill, 400);
        out[400] = '\0';
        for (size_t i = 0; i < n; i++) {
                char name[TARGET_NAME_MAX];
                snprintf(name, sizeof(name), "target-with-a-long-name-%04zu", i);
                fake_init(&f[i], name, KIND_REDIS, true, ST_FAIL);
                fake_result(&f[i], ST_FAIL, "connect_failed", out);
                f[i].v.ever_passed = false;
        }
        views_of(f, n, v);

        enum status st;
        char *body = own(render_ready_json(v, n, many_cases[_i].detail ? &ctx_detail : &ctx_brief,
                                           many_cases[_i].startup, &st));
        ck_assert_ptr_nonnull(body);
        ck_assert_uint_lt(strlen(body), 4096);
        ck_assert_int_eq(st, ST_FAIL);
        json_t *j = parse(body);
        ck_assert_str_eq(jstr(j, "status"), "fail");
        json_t *checks = json_object_get(j, "checks");
        ck_assert(json_is_object(checks));
        size_t shown = json_object_size(checks);
        json_t *ns = json_object_get(j, "notShown");
        ck_assert_msg(json_is_integer(ns), "no notShown count");
        ck_assert_int_gt(json_integer_value(ns), 0);
        ck_assert_uint_eq(shown + (size_t)json_integer_value(ns), n);
        /* every entry shown is whole, with its full output when detailed */
        const char *key;
        json_t *c;
        json_object_foreach(checks, key, c)
        {
                ck_assert_str_eq(jstr(c, "status"), "fail");
                if (many_cases[_i].detail && !many_cases[_i].startup)
                        ck_assert_str_eq(jstr(c, "output"), out);
                else
                        ck_assert_ptr_null(json_object_get(c, "output"));
        }
}
END_TEST

/* ---- /health/{target} ---------------------------------------------------- */

static const struct {
        enum status st;
        const char *reason, *output;
        bool detail;
        const char *want_status, *want_reason, *want_output; /* NULL: absent */
} one_cases[] = {
    {ST_PASS, NULL, NULL, true, "pass", NULL, NULL},
    {ST_WARN, "latency", "GET took 80ms", true, "warn", "latency", "GET took 80ms"},
    {ST_WARN, "latency", "GET took 80ms", false, "warn", "latency", NULL},
    {ST_FAIL, "timeout", "no answer within 1000ms", true, "fail", "timeout",
     "no answer within 1000ms"},
    {ST_FAIL, "timeout", "no answer within 1000ms", false, "fail", "timeout", NULL},
    /* Probe bodies carry pass, warn or fail (SPEC 5): a target with no
     * result yet is not ready, so it answers fail with its reason. */
    {ST_UNKNOWN, NULL, NULL, true, "fail", "no_result_yet", NULL},
};

START_TEST(test_target_json)
{
        struct fake f;
        fake_init(&f, "redis-cache", KIND_REDIS, true, one_cases[_i].st);
        if (one_cases[_i].reason != NULL)
                fake_result(&f, one_cases[_i].st, one_cases[_i].reason, one_cases[_i].output);
        char *body = own(render_target_json(&f.v, one_cases[_i].detail ? &ctx_detail : &ctx_brief));
        ck_assert_uint_lt(strlen(body), 4096);
        json_t *j = parse(body);
        ck_assert_str_eq(jstr(j, "status"), one_cases[_i].want_status);
        ck_assert_str_eq(jstr(j, "target"), "redis-cache");
        ck_assert_str_eq(jstr(j, "kind"), "redis");
        if (one_cases[_i].want_reason != NULL)
                ck_assert_str_eq(jstr(j, "reason"), one_cases[_i].want_reason);
        else
                ck_assert_ptr_null(json_object_get(j, "reason"));
        if (one_cases[_i].want_output != NULL)
                ck_assert_str_eq(jstr(j, "output"), one_cases[_i].want_output);
        else
                ck_assert_ptr_null(json_object_get(j, "output"));
}
END_TEST

/* The longest output, all of it escaped, still fits a probe body. */
START_TEST(test_target_json_longest_output)
{
        struct fake f;
        fake_init(&f, "redis-cache", KIND_REDIS, true, ST_FAIL);
        char out[OUTPUT_MAX + 100];
        memset(out, '"', sizeof(out) - 1);
        out[sizeof(out) - 1] = '\0';
        fake_result(&f, ST_FAIL, "error", out);
        ck_assert_uint_eq(strlen(f.shown.output), OUTPUT_MAX - 1);
        char *body = own(render_target_json(&f.v, &ctx_detail));
        ck_assert_uint_lt(strlen(body), 4096);
        json_t *j = parse(body);
        ck_assert_str_eq(jstr(j, "output"), f.shown.output);
}
END_TEST

/* ---- /status ------------------------------------------------------------- */

/* A stack of three: redis-cache passing with figures, postgres warning,
 * pgbouncer failing. */
static size_t build_stack(struct fake *f)
{
        fake_init(&f[0], "redis-cache", KIND_REDIS, true, ST_PASS);
        f[0].v.last_check = T0 + 0.25;
        struct probe_result *r = &f[0].last;
        r->nops = 2;
        snprintf(r->ops[0].op, sizeof(r->ops[0].op), "set");
        r->ops[0].seconds = 0.002;
        snprintf(r->ops[1].op, sizeof(r->ops[1].op), "get");
        r->ops[1].seconds = 0.080; /* over the 50 ms latency target */
        r->nqueues = 2;
        snprintf(r->queues[0].name, sizeof(r->queues[0].name), "celery");
        r->queues[0].length = 5;
        snprintf(r->queues[1].name, sizeof(r->queues[1].name), "reports");
        r->queues[1].length = 5000; /* over queue_warn 1000 */
        r->consumers = 0;
        r->used_memory = 1048576;
        r->connected_clients = 12;
        f[0].shown = *r;

        fake_init(&f[1], "postgres", KIND_POSTGRES, true, ST_WARN);
        fake_result(&f[1], ST_WARN, "pooler_bypass", "2 backends of hdms bypass PgBouncer");
        f[1].last.connections = 40;
        f[1].last.bypass = 2;

        fake_init(&f[2], "pgbouncer", KIND_PGBOUNCER, true, ST_FAIL);
        fake_result(&f[2], ST_FAIL, "connect_failed", "connection refused");
        f[2].last.npools = 1; /* a failed check's figures are not shown */
        snprintf(f[2].last.pools[0].database, sizeof(f[2].last.pools[0].database), "hdms");
        return 3;
}

/* Every key is "target:measurement" naming a target; every value a non-empty
 * array of draft-style objects.  need_output: warn/fail objects carry an
 * output (SPEC 5). */
static void check_measurements(json_t *checks, const struct fake *f, size_t n, bool need_output)
{
        const char *key;
        json_t *arr;
        json_object_foreach(checks, key, arr)
        {
                const char *colon = strchr(key, ':');
                ck_assert_msg(colon != NULL && colon[1] != '\0', "key '%s' not target:measurement",
                              key);
                bool known = false;
                for (size_t i = 0; i < n; i++)
                        if (strlen(f[i].name) == (size_t)(colon - key) &&
                            strncmp(key, f[i].name, (size_t)(colon - key)) == 0)
                                known = true;
                ck_assert_msg(known, "key '%s' names no target", key);
                ck_assert_msg(json_is_array(arr) && json_array_size(arr) > 0,
                              "'%s' is not a non-empty array", key);
                size_t k;
                json_t *m;
                json_array_foreach(arr, k, m)
                {
                        ck_assert(json_is_object(m));
                        const char *st = jstr(m, "status");
                        ck_assert_msg(valid_status3(st), "%s[%zu].status = %s", key, k, st);
                        ck_assert_msg(json_is_number(json_object_get(m, "observedValue")),
                                      "%s[%zu]: observedValue", key, k);
                        jstr(m, "observedUnit");
                        jstr(m, "time");
                        if (need_output && strcmp(st, "pass") != 0)
                                ck_assert_msg(json_is_string(json_object_get(m, "output")),
                                              "%s[%zu] is %s without output", key, k, st);
                }
        }
}

static json_t *measure(json_t *checks, const char *key, size_t idx)
{
        json_t *arr = json_object_get(checks, key);
        ck_assert_msg(json_is_array(arr), "no '%s'", key);
        json_t *m = json_array_get(arr, idx);
        ck_assert_msg(m != NULL, "'%s' has no entry %zu", key, idx);
        return m;
}

START_TEST(test_status_json_structure)
{
        struct fake f[3];
        struct target_view v[3];
        size_t n = build_stack(f);
        views_of(f, n, v);

        enum status st;
        char *body = own(render_status_json(v, n, &ctx_detail, &st));
        ck_assert_int_eq(st, ST_FAIL);
        json_t *j = parse(body);
        ck_assert_str_eq(jstr(j, "status"), "fail");
        ck_assert_str_eq(jstr(j, "version"), "1.2.3");
        ck_assert_str_eq(jstr(j, "serviceId"), "hdms-healthd");
        ck_assert(json_is_object(json_object_get(j, "links")));

        json_t *checks = json_object_get(j, "checks");
        ck_assert(json_is_object(checks));
        check_measurements(checks, f, n, false);

        json_t *m = measure(checks, "redis-cache:responseTime", 0);
        ck_assert_str_eq(jstr(m, "status"), "pass");
        ck_assert_double_eq_tol(json_number_value(json_object_get(m, "observedValue")), 12.5, 1e-9);
        ck_assert_str_eq(jstr(m, "observedUnit"), "ms");
        ck_assert_str_eq(jstr(m, "time"), "2023-11-14T22:13:20.250Z");
        ck_assert_ptr_null(json_object_get(m, "output"));

        json_t *ops = json_object_get(checks, "redis-cache:opLatency");
        ck_assert_uint_eq(json_array_size(ops), 2);
        ck_assert_str_eq(jstr(json_array_get(ops, 0), "componentId"), "set");
        ck_assert_str_eq(jstr(json_array_get(ops, 0), "status"), "pass");
        ck_assert_str_eq(jstr(json_array_get(ops, 1), "componentId"), "get");
        ck_assert_str_eq(jstr(json_array_get(ops, 1), "status"), "warn");
        ck_assert_double_eq_tol(
            json_number_value(json_object_get(json_array_get(ops, 1), "observedValue")), 80.0,
            1e-6);

        json_t *qs = json_object_get(checks, "redis-cache:queueLength");
        ck_assert_uint_eq(json_array_size(qs), 2);
        ck_assert_str_eq(jstr(json_array_get(qs, 0), "status"), "pass");
        ck_assert_str_eq(jstr(json_array_get(qs, 1), "componentId"), "reports");
        ck_assert_str_eq(jstr(json_array_get(qs, 1), "status"), "warn");
        ck_assert_str_eq(jstr(json_array_get(qs, 1), "observedUnit"), "messages");
        ck_assert(json_is_integer(json_object_get(json_array_get(qs, 1), "observedValue")));
        ck_assert_int_eq(
            json_integer_value(json_object_get(json_array_get(qs, 1), "observedValue")), 5000);

        m = measure(checks, "postgres:responseTime", 0);
        ck_assert_str_eq(jstr(m, "status"), "warn");
        ck_assert_str_eq(jstr(m, "output"), "2 backends of hdms bypass PgBouncer");
        m = measure(checks, "postgres:bypassBackends", 0);
        ck_assert_str_eq(jstr(m, "status"), "warn");
        ck_assert_int_eq(json_integer_value(json_object_get(m, "observedValue")), 2);

        m = measure(checks, "pgbouncer:responseTime", 0);
        ck_assert_str_eq(jstr(m, "status"), "fail");
        ck_assert_str_eq(jstr(m, "output"), "connection refused");
        ck_assert_ptr_null(json_object_get(checks, "pgbouncer:clientsWaiting"));

        json_t *targets = json_object_get(j, "targets");
        ck_assert(json_is_object(targets));
        ck_assert_uint_eq(json_object_size(targets), 3);
        json_t *t = json_object_get(targets, "pgbouncer");
        ck_assert_str_eq(jstr(t, "status"), "fail");
        ck_assert_str_eq(jstr(t, "kind"), "pgbouncer");
        ck_assert_str_eq(jstr(t, "reason"), "connect_failed");
        ck_assert_str_eq(jstr(t, "output"), "connection refused");
        ck_assert_str_eq(jstr(t, "lastCheck"), "2023-11-14T22:13:20.000Z");
        t = json_object_get(targets, "postgres");
        ck_assert_str_eq(jstr(t, "status"), "warn");
        ck_assert_str_eq(jstr(t, "reason"), "pooler_bypass");
        t = json_object_get(targets, "redis-cache");
        ck_assert_str_eq(jstr(t, "status"), "pass");
        ck_assert_ptr_null(json_object_get(t, "reason"));
        ck_assert_ptr_null(json_object_get(t, "output"));
        ck_assert_str_eq(jstr(t, "lastCheck"), "2023-11-14T22:13:20.250Z");
}
END_TEST

/* SPEC 5: check objects carry output on warn and fail, also the figures
 * (op latency, queue length, consumers, bypass, clients waiting). */
START_TEST(test_status_json_output_on_warn)
{
        struct fake f[3];
        struct target_view v[3];
        size_t n = build_stack(f);
        views_of(f, n, v);
        enum status st;
        char *body = own(render_status_json(v, n, &ctx_detail, &st));
        json_t *j = parse(body);
        check_measurements(json_object_get(j, "checks"), f, n, true);
}
END_TEST

/* A target with no result yet: the target map says unknown, but each check
 * object follows the health-check draft (pass, warn or fail). */
START_TEST(test_status_json_unknown_target)
{
        struct fake f[2];
        fake_init(&f[0], "redis-cache", KIND_REDIS, true, ST_PASS);
        fake_init(&f[1], "postgres", KIND_POSTGRES, true, ST_UNKNOWN);
        struct target_view v[2];
        views_of(f, 2, v);
        enum status st;
        char *body = own(render_status_json(v, 2, &ctx_detail, &st));
        ck_assert_int_eq(st, ST_FAIL);
        json_t *j = parse(body);
        ck_assert_str_eq(jstr(j, "status"), "fail");
        json_t *t = json_object_get(json_object_get(j, "targets"), "postgres");
        ck_assert_str_eq(jstr(t, "status"), "unknown");
        ck_assert_str_eq(jstr(t, "reason"), "no_result_yet");
        json_t *m = measure(json_object_get(j, "checks"), "postgres:responseTime", 0);
        ck_assert_msg(valid_status3(jstr(m, "status")), "check status '%s'", jstr(m, "status"));
}
END_TEST

/* Raw bytes straight into the results, as a probe or the engine could leave
 * them (a message cut inside a character, a server's name that was never
 * cleaned): every renderer still answers valid UTF-8, and the output is
 * there, cleaned, on /status, /readyz, /health/{target}, the dashboard and
 * /metrics.  jansson refuses invalid strings, and a refused one used to
 * vanish from the body without a word. */
#define RAW_OUT                                                                                    \
        "the database is down; "                                                                   \
        "\xc3\xa9t\xc3\xa9 \xff and \xc3\x28 end \xe2\x82"
#define CLEAN_OUT                                                                                  \
        "the database is down; "                                                                   \
        "\xc3\xa9t\xc3\xa9 " FFFD " and " FFFD "( end " FFFD

static void raw_output(struct probe_result *r, const char *text)
{
        ck_assert_uint_lt(strlen(text), sizeof(r->output));
        memcpy(r->output, text, strlen(text) + 1);
}

static bool valid_utf8(const char *s)
{
        json_t *j = json_string(s); /* jansson's own check */
        json_decref(j);
        return j != NULL;
}

START_TEST(test_renderers_raw_invalid_utf8)
{
        struct fake f[3];
        fake_init(&f[0], "postgres", KIND_POSTGRES, true, ST_FAIL);
        fake_result(&f[0], ST_FAIL, "server_error", "x");
        raw_output(&f[0].shown, RAW_OUT);
        raw_output(&f[0].last, RAW_OUT);
        fake_init(&f[1], "pgbouncer", KIND_PGBOUNCER, true, ST_PASS);
        static char hdms[] = "hdms";
        f[1].conf.dbname = hdms;
        f[1].conf.user = hdms;
        f[1].last.npools = 1;
        snprintf(f[1].last.pools[0].database, sizeof(f[1].last.pools[0].database), "db\xff\xfe");
        snprintf(f[1].last.pools[0].user, sizeof(f[1].last.pools[0].user), "u\xc3\x28");
        f[1].last.pools[0].waiting = 3;
        fake_init(&f[2], "redis-celery", KIND_REDIS, true, ST_WARN);
        fake_result(&f[2], ST_WARN, "queue_depth", "x");
        raw_output(&f[2].shown, "queue \xe2\x82");
        f[2].last = f[2].shown;
        f[2].last.nqueues = 1;
        snprintf(f[2].last.queues[0].name, sizeof(f[2].last.queues[0].name), "q\xe2\x82");
        f[2].last.queues[0].length = 5000;
        struct target_view v[3];
        views_of(f, 3, v);
        enum status st;

        /* /status: the target map, its raw last result and the check object */
        char *body = own(render_status_json(v, 3, &ctx_detail, &st));
        json_t *j = parse(body);
        json_t *t = json_object_get(json_object_get(j, "targets"), "postgres");
        ck_assert_str_eq(jstr(t, "output"), CLEAN_OUT);
        ck_assert_str_eq(jstr(json_object_get(t, "lastResult"), "output"), CLEAN_OUT);
        json_t *checks = json_object_get(j, "checks");
        ck_assert_str_eq(jstr(measure(checks, "postgres:responseTime", 0), "output"), CLEAN_OUT);
        ck_assert_str_eq(jstr(measure(checks, "redis-celery:responseTime", 0), "output"),
                         "queue " FFFD);
        json_t *q = measure(checks, "redis-celery:queueLength", 0);
        ck_assert_str_eq(jstr(q, "componentId"), "q" FFFD);
        ck_assert_str_eq(jstr(q, "output"), "q" FFFD " warn: 5000 messages");
        json_t *pool = measure(checks, "pgbouncer:clientsWaiting", 0);
        ck_assert_str_eq(jstr(pool, "componentId"), "db" FFFD FFFD "/u" FFFD "(");

        /* /readyz */
        body = own(render_ready_json(v, 3, &ctx_detail, false, &st));
        j = parse(body);
        json_t *c = json_object_get(json_object_get(j, "checks"), "postgres");
        ck_assert_ptr_nonnull(c);
        ck_assert_str_eq(jstr(c, "reason"), "server_error");
        ck_assert_str_eq(jstr(c, "output"), CLEAN_OUT);
        c = json_object_get(json_object_get(j, "checks"), "redis-celery");
        ck_assert_str_eq(jstr(c, "output"), "queue " FFFD);

        /* /health/{target} */
        body = own(render_target_json(&v[0], &ctx_detail));
        j = parse(body);
        ck_assert_str_eq(jstr(j, "output"), CLEAN_OUT);

        /* the dashboard: valid UTF-8 with the cleaned text */
        struct render_ctx hc = ctx_detail;
        struct slo_targets sl = {10, 5, 0.05};
        struct slo *slo[3];
        for (int i = 0; i < 3; i++)
                v[i].slo = slo[i] = slo_new(0, &sl);
        body = own(render_html(v, 3, &hc));
        ck_assert_msg(valid_utf8(body), "the dashboard is not valid UTF-8");
        ck_assert_ptr_nonnull(strstr(body, "the database is down; \xc3\xa9t\xc3\xa9 " FFFD " and"));

        /* /metrics: label values are UTF-8 too */
        body = own(render_metrics(v, 3, &hc));
        for (int i = 0; i < 3; i++)
                slo_free(slo[i]);
        ck_assert_msg(valid_utf8(body), "the exposition is not valid UTF-8");
        ck_assert_ptr_nonnull(strstr(body, "hdms_healthd_pgbouncer_clients_waiting{target="
                                           "\"pgbouncer\",database=\"db" FFFD FFFD
                                           "\",user=\"u" FFFD "(\"} 3\n"));
}
END_TEST

/* SPEC 13: the dashboard shows the server certificate's days left. */
START_TEST(test_html_cert_days_left)
{
        struct fake f;
        fake_init(&f, "postgres", KIND_POSTGRES, true, ST_WARN);
        fake_result(&f, ST_WARN, "cert_expiring", "expires soon");
        f.last.cert_not_after = (long long)(ctx_detail.now + 3.5 * 86400);
        struct slo_targets sl = {10, 5, 0.05};
        struct slo *slo = slo_new(0, &sl);
        f.v.slo = slo;
        struct render_ctx hc = ctx_detail;
        char *body = own(render_html(&f.v, 1, &hc));
        ck_assert_ptr_nonnull(strstr(body, "data-m=\"cert-days\">3</span> days left"));
        f.last.cert_not_after = (long long)(ctx_detail.now - 60);
        body = own(render_html(&f.v, 1, &hc));
        ck_assert_ptr_nonnull(strstr(body, "data-m=\"cert-days\">expired</span>"));
        f.last.cert_not_after = 0; /* no TLS: nothing said */
        body = own(render_html(&f.v, 1, &hc));
        ck_assert_ptr_null(strstr(body, "cert-days"));
        slo_free(slo);
}
END_TEST

/* HTML escaping is the dashboard's job: JSON carries the text unchanged. */
START_TEST(test_status_json_script_unchanged)
{
        static const char script[] = "<script>alert('x&y')</script>";
        struct fake f;
        fake_init(&f, "redis-cache", KIND_REDIS, true, ST_FAIL);
        fake_result(&f, ST_FAIL, "server_error", script);
        enum status st;
        char *body = own(render_status_json(&f.v, 1, &ctx_detail, &st));
        json_t *j = parse(body);
        json_t *t = json_object_get(json_object_get(j, "targets"), "redis-cache");
        ck_assert_str_eq(jstr(t, "output"), script);
        json_t *m = measure(json_object_get(j, "checks"), "redis-cache:responseTime", 0);
        ck_assert_str_eq(jstr(m, "output"), script);
        ck_assert_ptr_null(strstr(body, "&lt;"));

        body = own(render_target_json(&f.v, &ctx_detail));
        j = parse(body);
        ck_assert_str_eq(jstr(j, "output"), script);
}
END_TEST

START_TEST(test_status_json_empty)
{
        enum status st = ST_UNKNOWN;
        char *body = own(render_status_json(NULL, 0, &ctx_detail, &st));
        ck_assert_int_eq(st, ST_PASS);
        json_t *j = parse(body);
        ck_assert_str_eq(jstr(j, "status"), "pass");
        ck_assert_uint_eq(json_object_size(json_object_get(j, "checks")), 0);
}
END_TEST

/* ---- render_stale_after -------------------------------------------------- */

static const struct {
        int64_t interval, timeout, retry;
        double want;
} stale_cases[] = {
    {2000, 1000, 250, 6.0}, /* 3 x interval */
    {100, 90, 250, 0.44},   /* interval + timeout + retry_interval */
    {1000, 500, 2500, 4.0}, /* 1000 + 500 + 2500 > 3000 */
    {60000, 1000, 250, 180.0},
};

START_TEST(test_stale_after)
{
        struct fake f;
        fake_init(&f, "x", KIND_REDIS, true, ST_PASS);
        f.conf.interval_ms = stale_cases[_i].interval;
        f.conf.timeout_ms = stale_cases[_i].timeout;
        f.conf.retry_interval_ms = stale_cases[_i].retry;
        ck_assert_double_eq_tol(render_stale_after(&f.v), stale_cases[_i].want, 1e-9);
}
END_TEST

/* ---- probe_result_set / probe_result_worsen ------------------------------ */

struct step {
        char op; /* S: set, W: worsen, 0: end */
        enum status st;
        const char *reason, *msg;
        enum status want_st;
        const char *want_reason, *want_output;
};

static const struct {
        struct step steps[6];
} worsen_cases[] = {
    /* From a fresh (passing) result: the first problem sets everything. */
    {{{'W', ST_WARN, "latency", "GET took 80ms", ST_WARN, "latency", "GET took 80ms"}}},
    {{{'W', ST_FAIL, "oom", "out of memory", ST_FAIL, "oom", "out of memory"}}},
    /* Equal status: the first reason stays, the message is appended. */
    {{{'W', ST_WARN, "latency", "GET took 80ms", ST_WARN, "latency", "GET took 80ms"},
      {'W', ST_WARN, "queue", "celery holds 5000", ST_WARN, "latency",
       "GET took 80ms; celery holds 5000"},
      {'W', ST_WARN, "headroom", "memory 95%", ST_WARN, "latency",
       "GET took 80ms; celery holds 5000; memory 95%"}}},
    /* Worse status: its reason replaces, its message goes first. */
    {{{'W', ST_WARN, "latency", "GET took 80ms", ST_WARN, "latency", "GET took 80ms"},
      {'W', ST_FAIL, "oom", "out of memory", ST_FAIL, "oom", "out of memory; GET took 80ms"},
      {'W', ST_FAIL, "readonly", "replica", ST_FAIL, "oom",
       "out of memory; GET took 80ms; replica"},
      /* a milder problem never lowers the status or takes the reason */
      {'W', ST_WARN, "queue", "q", ST_FAIL, "oom", "out of memory; GET took 80ms; replica; q"}}},
    /* After probe_result_set. */
    {{{'S', ST_WARN, "bypass", "2 backends bypass", ST_WARN, "bypass", "2 backends bypass"},
      {'W', ST_FAIL, "refused", "new clients refused", ST_FAIL, "refused",
       "new clients refused; 2 backends bypass"}}},
    {{{'S', ST_FAIL, "timeout", "no answer", ST_FAIL, "timeout", "no answer"},
      {'S', ST_WARN, "latency", "slow", ST_WARN, "latency", "slow"}}},
    /* Messages are cleaned to UTF-8 on every path. */
    {{{'W', ST_WARN, "a", "x\xff", ST_WARN, "a", "x" FFFD},
      {'W', ST_WARN, "b", "\xc3\x28y", ST_WARN, "a", "x" FFFD "; " FFFD "(y"},
      {'W', ST_FAIL, "c", "z\r\n", ST_FAIL, "c", "z; x" FFFD "; " FFFD "(y"}}},
};

START_TEST(test_worsen)
{
        struct probe_result r;
        probe_result_init(&r);
        ck_assert_int_eq(r.status, ST_PASS);
        ck_assert_str_eq(r.reason, "");
        ck_assert_str_eq(r.output, "");
        for (int k = 0; k < N(worsen_cases[_i].steps) && worsen_cases[_i].steps[k].op; k++) {
                const struct step *s = &worsen_cases[_i].steps[k];
                if (s->op == 'S')
                        probe_result_set(&r, s->st, s->reason, "%s", s->msg);
                else
                        probe_result_worsen(&r, s->st, s->reason, "%s", s->msg);
                ck_assert_msg(r.status == s->want_st, "row %d step %d: status %s", _i, k,
                              status_name(r.status));
                ck_assert_str_eq(r.reason, s->want_reason);
                ck_assert_str_eq(r.output, s->want_output);
        }
}
END_TEST

/* Long outputs are cut, never past the buffer and never inside a UTF-8
 * character (jansson drops invalid strings, so a cut character would make
 * the whole message vanish from /status). */
static const struct {
        int old_chars;   /* 2-byte characters already in the output */
        size_t new_len;  /* length of the new, worse message */
        enum status st2; /* status of the second message */
} cut_cases[] = {
    {255, 10, ST_FAIL}, /* the old text is cut mid-character */
    {255, 11, ST_FAIL}, {200, 109, ST_FAIL}, {255, 10, ST_WARN}, /* appended */
    {255, 0, ST_WARN},  {100, 600, ST_FAIL},
};

START_TEST(test_worsen_cut_keeps_utf8)
{
        char old[OUTPUT_MAX * 2] = "";
        for (int k = 0; k < cut_cases[_i].old_chars; k++)
                strcat(old, "\xc3\xa9");
        char msg[700];
        memset(msg, 'm', cut_cases[_i].new_len);
        msg[cut_cases[_i].new_len] = '\0';

        struct probe_result r;
        probe_result_init(&r);
        probe_result_set(&r, ST_WARN, "first", "%s", old);
        ck_assert_uint_lt(strlen(r.output), OUTPUT_MAX);
        probe_result_worsen(&r, cut_cases[_i].st2, "second", "%s", msg);
        ck_assert_uint_lt(strlen(r.output), OUTPUT_MAX);
        json_t *s = json_string(r.output);
        ck_assert_msg(s != NULL, "output is not valid UTF-8 (%zu bytes)", strlen(r.output));
        json_decref(s);
        if (cut_cases[_i].st2 == ST_FAIL && cut_cases[_i].new_len < OUTPUT_MAX)
                ck_assert_int_eq(strncmp(r.output, msg, cut_cases[_i].new_len), 0);
        else if (cut_cases[_i].st2 == ST_WARN)
                ck_assert_int_eq(strncmp(r.output, "\xc3\xa9", 2), 0);

        /* and /status shows the message */
        struct fake f;
        fake_init(&f, "redis-cache", KIND_REDIS, true, r.status);
        f.shown = r;
        f.last = r;
        enum status st;
        char *body = own(render_status_json(&f.v, 1, &ctx_detail, &st));
        json_t *j = parse(body);
        json_t *t = json_object_get(json_object_get(j, "targets"), "redis-cache");
        ck_assert_str_eq(jstr(t, "output"), r.output);
}
END_TEST

/* ---- clock_format ------------------------------------------------------- */

/* The one timestamp format of logs, JSON and the dashboard. */
START_TEST(test_clock_format)
{
        char buf[CLOCK_TEXT_MAX];
        ck_assert_str_eq(clock_format(T0, CLOCK_RFC3339, buf, sizeof(buf)),
                         "2023-11-14T22:13:20.000Z");
        ck_assert_str_eq(clock_format(T0 + 0.25, CLOCK_RFC3339, buf, sizeof(buf)),
                         "2023-11-14T22:13:20.250Z");
        /* truncated, never rounded into the next second */
        ck_assert_str_eq(clock_format(T0 + 0.9999, CLOCK_RFC3339, buf, sizeof(buf)),
                         "2023-11-14T22:13:20.999Z");
        ck_assert_str_eq(clock_format(0, CLOCK_RFC3339, buf, sizeof(buf)),
                         "1970-01-01T00:00:00.000Z");
        ck_assert_str_eq(clock_format(T0 + 0.5, CLOCK_HUMAN, buf, sizeof(buf)),
                         "2023-11-14 22:13:20 UTC");
        /* too small a buffer or no time at all: empty, never a cut timestamp */
        char small[20];
        ck_assert_str_eq(clock_format(T0, CLOCK_RFC3339, small, sizeof(small)), "");
        ck_assert_str_eq(clock_format(T0, CLOCK_RFC3339, buf, 24), "");
        ck_assert_str_eq(clock_format(T0, CLOCK_RFC3339, buf, 25), "2023-11-14T22:13:20.000Z");
        ck_assert_str_eq(clock_format(NAN, CLOCK_RFC3339, buf, sizeof(buf)), "");
        /* the clocks move forward */
        double m = mono_now(), w = wall_now();
        ck_assert(m > 0 && w > T0);
        ck_assert(mono_now() >= m);
}
END_TEST

/* ---- /metrics snapshot ---------------------------------------------------- */

/* Every kind with figures, label values that need escaping, a target with no
 * result yet, service levels with an outage and a loop-lag histogram.  The
 * exposition is compared byte for byte with data/render_metrics.txt: the
 * families are a table now, and a reordered family, a changed HELP text or
 * a lost series shows here first.  HEALTHD_UPDATE_GOLDEN=1 rewrites the
 * file after an intended change (review the diff). */
struct snap {
        struct fake f[5];
        struct slo *slo[5];
        struct target_view v[5];
        struct hist lag;
};

static void snap_slo(struct snap *s, size_t i, bool ok)
{
        static const struct slo_targets st = {10, 5, 0.05};
        s->slo[i] = slo_new(100.0, &st);
        s->f[i].v.slo = s->slo[i];
        if (s->f[i].v.status == ST_UNKNOWN)
                return;
        s->f[i].v.failures = 2;
        s->f[i].v.transitions = 3;
        slo_check(s->slo[i], 101, true, 0.004);
        slo_check(s->slo[i], 103, ok, 0.2);
        slo_op(s->slo[i], "ping", 0.001);
        slo_op(s->slo[i], "get", 0.06);
        slo_down(s->slo[i], 104);
        slo_up(s->slo[i], 110, 109, true);
        slo_check(s->slo[i], 111, true, 0.03);
}

static void snap_init(struct snap *s)
{
        static char celery[] = "celery", reports[] = "re\"p\\orts";
        static char host[] = "127.0.0.1", hdms[] = "hdms";
        memset(s, 0, sizeof(*s));
        struct fake *f = s->f;
        fake_init(&f[0], "redis-cache", KIND_REDIS, true, ST_PASS);
        struct probe_result *r = &f[0].last;
        r->nops = 2;
        snprintf(r->ops[0].op, sizeof(r->ops[0].op), "set");
        r->ops[0].seconds = 0.002;
        snprintf(r->ops[1].op, sizeof(r->ops[1].op), "get");
        r->ops[1].seconds = 0.08;
        r->used_memory = 1048576;
        r->connected_clients = 12;
        f[0].shown = *r;

        fake_init(&f[1], "redis-celery", KIND_REDIS, true, ST_WARN);
        f[1].conf.nqueues = 2;
        f[1].conf.queues[0] = celery;
        f[1].conf.queues[1] = reports;
        fake_result(&f[1], ST_WARN, "queue_depth", "queue re\"p\\orts holds 5000 <b>");
        f[1].last.nqueues = 1;
        snprintf(f[1].last.queues[0].name, sizeof(f[1].last.queues[0].name), "celery");
        f[1].last.queues[0].length = 5;
        f[1].last.consumers = 0;

        fake_init(&f[2], "postgres", KIND_POSTGRES, true, ST_FAIL);
        fake_result(&f[2], ST_FAIL, "connect_refused", "could not connect: refused\nline 2");
        f[2].last.connections = 40;
        f[2].last.max_connections = 100;
        f[2].last.bypass = 2;

        fake_init(&f[3], "pgbouncer", KIND_PGBOUNCER, true, ST_PASS);
        r = &f[3].last;
        r->npools = 2;
        snprintf(r->pools[0].database, sizeof(r->pools[0].database), "other");
        snprintf(r->pools[0].user, sizeof(r->pools[0].user), "app\"x");
        r->pools[0].waiting = 3;
        r->pools[0].maxwait_s = 1.5;
        snprintf(r->pools[1].database, sizeof(r->pools[1].database), "pgbouncer");
        snprintf(r->pools[1].user, sizeof(r->pools[1].user), "pgbouncer");
        f[3].shown = *r;

        fake_init(&f[4], "pgb2", KIND_PGBOUNCER, false, ST_UNKNOWN);
        for (size_t i = 0; i < 5; i++) {
                f[i].conf.host = host;
                f[i].conf.dbname = hdms;
                f[i].conf.user = hdms;
                f[i].v.last_check = T0 + 0.125;
                snap_slo(s, i, f[i].v.status != ST_FAIL);
        }
        views_of(f, 5, s->v);
        hist_init(&s->lag, slo_lag_bounds, slo_lag_nbounds);
        hist_observe(&s->lag, 0.0001);
        hist_observe(&s->lag, 0.003);
        hist_observe(&s->lag, 2);
}

static void snap_free(struct snap *s)
{
        for (size_t i = 0; i < 5; i++)
                slo_free(s->slo[i]);
}

static char *read_data(const char *name)
{
        const char *dir = getenv("HEALTHD_TEST_DATA");
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir ? dir : "test/unit/data", name);
        FILE *f = fopen(path, "rb");
        ck_assert_msg(f != NULL, "cannot open %s (run from the repo root)", path);
        ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
        long size = ftell(f);
        ck_assert_int_gt(size, 0);
        rewind(f);
        char *buf = own(malloc((size_t)size + 1));
        ck_assert_uint_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
        buf[size] = '\0';
        fclose(f);
        return buf;
}

START_TEST(test_metrics_snapshot)
{
        struct snap s;
        snap_init(&s);
        struct render_ctx c = {"1.2.3", T0 + 0.75, 4242.5, true, 200.0, &s.lag, 10000, 5000};
        char *got = own(render_metrics(s.v, 5, &c));
        snap_free(&s);
        if (getenv("HEALTHD_UPDATE_GOLDEN") != NULL) {
                FILE *f = fopen("test/unit/data/render_metrics.txt", "wb");
                ck_assert_ptr_nonnull(f);
                fputs(got, f);
                fclose(f);
        }
        const char *want = read_data("render_metrics.txt");
        size_t line = 1, i = 0;
        for (; got[i] != '\0' && got[i] == want[i]; i++)
                if (got[i] == '\n')
                        line++;
        ck_assert_msg(got[i] == want[i], "differs at line %zu: got '%.80s' want '%.80s'", line,
                      got + i, want + i);
}
END_TEST

/* The same snapshot as /status (JSON) and as the dashboard, byte for byte
 * (data/render_status.json, data/render_status.html): the renderers build
 * each target's part on its own and join the parts (render_job.h), and
 * these files were written by the renderers that built the whole document
 * at once.  HEALTHD_UPDATE_GOLDEN=1 rewrites them (review the diff). */
static void golden(const char *name, const char *got)
{
        char path[128];
        snprintf(path, sizeof(path), "test/unit/data/%s", name);
        if (getenv("HEALTHD_UPDATE_GOLDEN") != NULL) {
                FILE *f = fopen(path, "wb");
                ck_assert_ptr_nonnull(f);
                fputs(got, f);
                fclose(f);
        }
        const char *want = read_data(name);
        size_t i = 0;
        while (got[i] != '\0' && got[i] == want[i])
                i++;
        ck_assert_msg(got[i] == want[i], "%s differs at byte %zu: got '%.80s' want '%.80s'", name,
                      i, got + i, want + i);
}

START_TEST(test_status_snapshot)
{
        struct snap s;
        snap_init(&s);
        struct render_ctx c = {"1.2.3", T0 + 0.75, 4242.5, true, 200.0, &s.lag, 10000, 5000};
        enum status st;
        char *json = own(render_status_json(s.v, 5, &c, &st));
        ck_assert_int_eq(st, ST_FAIL);
        c.nonce = "bm9uY2Vub25jZW5vbmNl";
        char *html = own(render_html(s.v, 5, &c));
        snap_free(&s);
        golden("render_status.json", json);
        golden("render_status.html", html);
}
END_TEST

/* A render in pieces (render.h) takes each target as it is when added: a
 * change after that is not in this answer, a change before it is, and the
 * status is the aggregate of the targets as rendered. */
static char *render_whole(enum render_kind kind, const struct target_view *v, size_t n,
                          const struct render_ctx *c, enum status *st)
{
        *st = render_aggregate(v, n);
        if (kind == RENDER_STATUS_JSON)
                return render_status_json(v, n, c, st);
        return kind == RENDER_STATUS_HTML ? render_html(v, n, c) : render_metrics(v, n, c);
}

static void snap_change(struct snap *s, size_t i)
{
        s->v[i].status = ST_PASS;
        s->v[i].checks += 7;
        s->v[i].last_duration += 0.5;
        s->f[i].last.connections += 1;
        s->f[i].last.used_memory += 1;
        slo_check(s->slo[i], 115, true, 0.25);
}

START_TEST(test_job_parts_as_added)
{
        static const enum render_kind kinds[] = {RENDER_STATUS_JSON, RENDER_STATUS_HTML,
                                                 RENDER_METRICS};
        enum render_kind kind = kinds[_i];
        struct snap s;
        snap_init(&s);
        struct render_ctx c = {"1.2.3", T0 + 0.75, 4242.5, true, 200.0, &s.lag, 10000, 5000};
        c.nonce = "bm9uY2Vub25jZW5vbmNl";
        enum status st_before, st_job, st_after;
        char *before = own(render_whole(kind, s.v, 5, &c, &st_before));
        ck_assert_int_eq(st_before, ST_FAIL);
        struct render_job *j = render_job_new(kind, &c, 1); /* a small hint: it grows */
        for (size_t i = 0; i < 5; i++) {
                render_job_add(j, &s.v[i]);
                snap_change(&s, i);
        }
        ck_assert_uint_eq(render_job_count(j), 5);
        char *got = own(render_job_finish(j, &st_job));
        ck_assert_int_eq(st_job, st_before);
        ck_assert_msg(strcmp(got, before) == 0,
                      "a change after a target was added is in the answer");

        char *after = own(render_whole(kind, s.v, 5, &c, &st_after));
        ck_assert_int_eq(st_after, ST_PASS);
        ck_assert_msg(strcmp(after, before) != 0, "the changes show in a new render");
        j = render_job_new(kind, &c, 5);
        for (size_t i = 0; i < 5; i++)
                render_job_add(j, &s.v[i]);
        got = own(render_job_finish(j, &st_job));
        ck_assert_int_eq(st_job, ST_PASS);
        ck_assert_msg(strcmp(got, after) == 0, "the parts joined differ from the whole");
        snap_free(&s);

        /* an unfinished job is freed whole (LeakSanitizer) */
        j = render_job_new(kind, &c, 2);
        render_job_free(j);
}
END_TEST

/* A large answer is sent from its pieces (render_answer_read, in MHD's
 * blocks) or compressed from them (render_answer_piece): both are the
 * joined answer, byte for byte, whatever the block size. */
START_TEST(test_answer_pieces)
{
        static const enum render_kind kinds[] = {RENDER_STATUS_JSON, RENDER_STATUS_HTML,
                                                 RENDER_METRICS};
        struct snap s;
        snap_init(&s);
        struct render_ctx c = {"1.2.3", T0 + 0.75, 4242.5, true, 200.0, &s.lag, 10000, 5000};
        c.nonce = "bm9uY2Vub25jZW5vbmNl";
        enum status st;
        char *whole = own(render_whole(kinds[_i], s.v, 5, &c, &st));
        size_t len = strlen(whole);
        struct render_job *j = render_job_new(kinds[_i], &c, 5);
        for (size_t i = 0; i < 5; i++)
                render_job_add(j, &s.v[i]);
        struct render_answer *a = render_job_answer(j, &st);
        ck_assert_ptr_nonnull(a);
        ck_assert_uint_eq(render_answer_size(a), len);
        char *buf = own(malloc(len + 64));
        static const size_t blocks[] = {1, 7, 4096, 1 << 20};
        for (int b = 0; b < N(blocks); b++) {
                memset(buf, 0, len + 64);
                size_t pos = 0, n;
                while ((n = render_answer_read(a, pos, buf + pos, blocks[b])) > 0) {
                        ck_assert_uint_le(n, blocks[b]);
                        pos += n;
                }
                ck_assert_uint_eq(pos, len);
                ck_assert(memcmp(buf, whole, len) == 0);
        }
        /* a read from elsewhere than the last one ended (MHD may start over) */
        ck_assert_uint_eq(render_answer_read(a, len - 5, buf, 64), 5);
        ck_assert(memcmp(buf, whole + len - 5, 5) == 0);
        ck_assert_uint_eq(render_answer_read(a, 3, buf, 10), 10);
        ck_assert(memcmp(buf, whole + 3, 10) == 0);
        size_t pos = 0, plen;
        const char *p;
        for (size_t i = 0; render_answer_piece(a, i, &p, &plen); i++) {
                ck_assert_uint_gt(plen, 0);
                ck_assert(memcmp(p, whole + pos, plen) == 0);
                pos += plen;
        }
        ck_assert_uint_eq(pos, len);
        render_answer_free(a);
        snap_free(&s);
}
END_TEST

/* A section's text is kept in chunks of about a megabyte (render_job.h):
 * 1,500 targets' answers cross many chunk boundaries, and every target
 * is still there once, in order, and the document is whole; the answer is
 * freed a buffer at a time. */
START_TEST(test_answer_chunks)
{
        enum { MANY = 1500 };
        static const enum render_kind kinds[] = {RENDER_STATUS_JSON, RENDER_STATUS_HTML,
                                                 RENDER_METRICS};
        static char names[MANY][8];
        struct snap s;
        snap_init(&s);
        struct target_view *v = own(calloc(MANY, sizeof(*v)));
        for (int i = 0; i < MANY; i++) {
                snprintf(names[i], sizeof(names[i]), "t%04d", i);
                v[i] = s.v[i % 5];
                v[i].name = names[i];
        }
        struct render_ctx c = {"1.2.3", T0 + 0.75, 4242.5, true, 200.0, &s.lag, 10000, 5000};
        c.nonce = "bm9uY2Vub25jZW5vbmNl";
        struct render_job *j = render_job_new(kinds[_i], &c, MANY);
        for (int i = 0; i < MANY; i++)
                render_job_add(j, &v[i]);
        enum status st;
        struct render_answer *a = render_job_answer(j, &st);
        ck_assert_ptr_nonnull(a);
        size_t big = 0;
        const char *p;
        size_t plen;
        for (size_t i = 0; render_answer_piece(a, i, &p, &plen); i++)
                big = plen > big ? plen : big;
        ck_assert_uint_ge(big, 1024 * 1024);         /* a closed chunk: there was one */
        ck_assert_uint_le(big, 1024 * 1024 + 65536); /* a chunk and one target's part */
        char *text = own(render_answer_join(a));
        ck_assert_uint_eq(strlen(text), render_answer_size(a));
        while (!render_answer_free_some(a))
                ;
        static const char *const pre[] = {"\"", "<tr class=\"target\" data-target=\"",
                                          "hdms_healthd_checks_total{target=\""};
        static const char *const post[] = {"\":{\"kind\"", "\"", "\""};
        const char *at = text;
        for (int i = 0; i < MANY; i++) {
                char want[64];
                snprintf(want, sizeof(want), "%s%s%s", pre[_i], names[i], post[_i]);
                const char *next = strstr(at, want);
                ck_assert_msg(next != NULL, "%s missing or out of order", want);
                at = next + 1;
        }
        if (kinds[_i] == RENDER_STATUS_JSON) {
                json_t *doc = parse(text);
                ck_assert_uint_eq(json_object_size(json_object_get(doc, "targets")), MANY);
        }
        snap_free(&s);
}
END_TEST

/* ---- the server certificate's expiry (probe_tls.c) ---- */

#define DAY 86400.0
#define NOW 1800000000.0

static const struct {
        double not_after; /* seconds from NOW; 0: no TLS */
        int64_t warn_ms;
        enum status want;
        const char *words; /* in the output, or NULL */
} cert_cases[] = {
    {0, 14 * 86400000LL, ST_PASS, NULL},                  /* no TLS: nothing */
    {30 * DAY, 14 * 86400000LL, ST_PASS, NULL},           /* far */
    {14 * DAY + 1, 14 * 86400000LL, ST_PASS, NULL},       /* just outside */
    {14 * DAY, 14 * 86400000LL, ST_WARN, "in 14.0 days"}, /* the edge warns */
    {3 * DAY, 14 * 86400000LL, ST_WARN, "in 3.0 days"},   /* the case */
    {-400 * DAY, 14 * 86400000LL, ST_WARN, "expired 400.0 days ago"},
    {3 * DAY, 2 * 86400000LL, ST_PASS, NULL}, /* a shorter window */
    {1 * DAY, 0, ST_PASS, NULL},              /* 0: never warn */
};

START_TEST(test_cert_expiry)
{
        struct probe_result r;
        probe_result_init(&r);
        long long na =
            cert_cases[_i].not_after == 0 ? 0 : (long long)(NOW + cert_cases[_i].not_after);
        probe_judge_cert(&r, na, cert_cases[_i].warn_ms, NOW);
        ck_assert_int_eq(r.status, cert_cases[_i].want);
        ck_assert_int_eq(r.cert_not_after, na);
        if (cert_cases[_i].want == ST_WARN)
                ck_assert_str_eq(r.reason, "cert_expiring");
        else
                ck_assert_str_eq(r.reason, "");
        if (cert_cases[_i].words != NULL)
                ck_assert_msg(strstr(r.output, cert_cases[_i].words) != NULL, "'%s' lacks '%s'",
                              r.output, cert_cases[_i].words);
}
END_TEST

/* A failed check keeps its reason; the expiry is still recorded. */
START_TEST(test_cert_expiry_after_fail)
{
        struct probe_result r;
        probe_result_init(&r);
        probe_result_set(&r, ST_FAIL, "timeout", "no answer");
        probe_judge_cert(&r, (long long)(NOW + DAY), 14 * 86400000LL, NOW);
        ck_assert_int_eq(r.status, ST_FAIL);
        ck_assert_str_eq(r.reason, "timeout");
        ck_assert_int_eq(r.cert_not_after, (long long)(NOW + DAY));
}
END_TEST

static Suite *render_suite(void)
{
        Suite *s = suite_create("render");
        TCase *tc = tcase_create("aggregate");
        tcase_add_checked_fixture(tc, NULL, release_all);
        tcase_add_loop_test(tc, test_aggregate, 0, N(agg_cases));
        tcase_add_loop_test(tc, test_started, 0, N(started_cases));
        suite_add_tcase(s, tc);

        tc = tcase_create("probe_bodies");
        tcase_add_checked_fixture(tc, NULL, release_all);
        tcase_add_test(tc, test_ready_lists_non_passing);
        tcase_add_test(tc, test_ready_no_detail_hides_output);
        tcase_add_loop_test(tc, test_ready_many_targets_bounded, 0, N(many_cases));
        tcase_add_loop_test(tc, test_target_json, 0, N(one_cases));
        tcase_add_test(tc, test_target_json_longest_output);
        tcase_add_loop_test(tc, test_stale_after, 0, N(stale_cases));
        suite_add_tcase(s, tc);

        tc = tcase_create("status");
        tcase_add_checked_fixture(tc, NULL, release_all);
        tcase_add_test(tc, test_status_json_structure);
        tcase_add_test(tc, test_status_json_output_on_warn);
        tcase_add_test(tc, test_status_json_unknown_target);
        tcase_add_test(tc, test_renderers_raw_invalid_utf8);
        tcase_add_test(tc, test_status_json_script_unchanged);
        tcase_add_test(tc, test_html_cert_days_left);
        tcase_add_test(tc, test_status_json_empty);
        suite_add_tcase(s, tc);

        tc = tcase_create("probe_result");
        tcase_add_checked_fixture(tc, NULL, release_all);
        tcase_add_loop_test(tc, test_worsen, 0, N(worsen_cases));
        tcase_add_loop_test(tc, test_worsen_cut_keeps_utf8, 0, N(cut_cases));
        tcase_add_loop_test(tc, test_cert_expiry, 0, N(cert_cases));
        tcase_add_test(tc, test_cert_expiry_after_fail);
        suite_add_tcase(s, tc);

        tc = tcase_create("metrics");
        tcase_add_checked_fixture(tc, NULL, release_all);
        tcase_add_test(tc, test_metrics_snapshot);
        tcase_add_test(tc, test_status_snapshot);
        tcase_add_loop_test(tc, test_job_parts_as_added, 0, 3);
        tcase_add_loop_test(tc, test_answer_pieces, 0, 3);
        tcase_add_loop_test(tc, test_answer_chunks, 0, 3);
        suite_add_tcase(s, tc);

        tc = tcase_create("clock");
        tcase_add_test(tc, test_clock_format);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(render_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
