/*
 * Unit tests for the record (SPEC 11): the event journal, the state file
 * format (serialise / parse round trips, refusals of damaged files), the
 * matching rule, and the unobserved-time arithmetic of a restore.  Every
 * module here is pure, so the clocks are simulated: `mono` and `wall` are
 * numbers the tests choose, and nothing sleeps.
 */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "journal.h"
#include "slo.h"
#include "state.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define TOL 1e-3
#define WALL0 1800000000.0 /* 2027-01-15, a wall-clock origin */

static const struct slo_targets targets = {.startup = 10, .reconnect = 5, .latency = 0.05};

/* ---- journal ------------------------------------------------------------- */

static json_t *events_of(const struct journal *j, const struct journal_query *q)
{
        char *s = journal_query_json(j, q);
        json_error_t e;
        json_t *o = json_loads(s, 0, &e);
        ck_assert_msg(o != NULL, "not JSON: %s", s);
        free(s);
        json_t *a = json_incref(json_object_get(o, "events"));
        json_decref(o);
        ck_assert(json_is_array(a));
        return a;
}

static long long id_at(json_t *a, size_t i)
{
        return (long long)json_integer_value(json_object_get(json_array_get(a, i), "id"));
}

START_TEST(t_journal_query)
{
        struct journal *j = journal_new(100);
        struct journal_query all = {.type = -1};
        journal_start(j, WALL0, "1.0", 2, false);
        journal_transition(j, WALL0 + 1, "a", "redis", "pass", "fail", "connect_refused", "no");
        journal_transition(j, WALL0 + 2, "b", "postgres", "pass", "warn", "slow", NULL);
        journal_outage_end(j, WALL0 + 3, "a", "redis", 2.0, "blip", 1, 1.5);
        journal_reload(j, WALL0 + 4, "c", "", "b");
        journal_stop(j, WALL0 + 5, "SIGTERM");
        ck_assert_uint_eq(journal_count(j), 6);
        ck_assert_uint_eq(journal_next_id(j), 7);

        json_t *a = events_of(j, &all);
        ck_assert_uint_eq(json_array_size(a), 6);
        ck_assert_int_eq(id_at(a, 0), 6); /* newest first */
        ck_assert_int_eq(id_at(a, 5), 1);
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(a, 5), "time")),
                         "2027-01-15T08:00:00.000Z");
        json_decref(a);

        static const struct {
                const char *target;
                int type;
                uint64_t since;
                size_t limit;
                int n;
                int first;
        } rows[] = {
            {"a", -1, 0, 0, 2, 4},
            {NULL, EV_TRANSITION, 0, 0, 2, 3},
            {"a", EV_TRANSITION, 0, 0, 1, 2},
            {NULL, -1, 4, 0, 2, 6},
            {NULL, -1, 0, 2, 2, 6},
            {"nobody", -1, 0, 0, 0, 0},
            {NULL, EV_RELOAD, 0, 0, 1, 5},
            {NULL, -1, 6, 0, 0, 0},
        };
        for (int i = 0; i < N(rows); i++) {
                struct journal_query q = {rows[i].target, rows[i].type, rows[i].since,
                                          rows[i].limit};
                a = events_of(j, &q);
                ck_assert_msg((int)json_array_size(a) == rows[i].n, "row %d: %zu events", i,
                              json_array_size(a));
                if (rows[i].n > 0)
                        ck_assert_msg(id_at(a, 0) == rows[i].first, "row %d: first id %lld", i,
                                      id_at(a, 0));
                json_decref(a);
        }
        ck_assert_uint_eq(journal_appended(j, EV_TRANSITION), 2);
        ck_assert_uint_eq(journal_appended(j, EV_NOTIFY_FAILED), 0);
        journal_free(j);
}
END_TEST

START_TEST(t_journal_ring)
{
        struct journal *j = journal_new(10);
        struct journal_query all = {.type = -1};
        for (int i = 0; i < 25; i++)
                journal_stop(j, WALL0 + i, "SIGTERM");
        ck_assert_uint_eq(journal_count(j), 10);
        json_t *a = events_of(j, &all);
        ck_assert_int_eq(id_at(a, 0), 25);
        ck_assert_int_eq(id_at(a, 9), 16);
        json_decref(a);
        journal_resize(j, 3);
        a = events_of(j, &all);
        ck_assert_uint_eq(json_array_size(a), 3);
        ck_assert_int_eq(id_at(a, 2), 23);
        json_decref(a);
        journal_resize(j, 50);
        journal_stop(j, WALL0 + 30, NULL);
        ck_assert_uint_eq(journal_count(j), 4);
        ck_assert_uint_eq(journal_next_id(j), 27);
        /* restored events must keep increasing */
        struct journal *k = journal_new(5);
        ck_assert(journal_put_raw(k, 7, WALL0, EV_STOP, NULL, "{\"id\":7}"));
        ck_assert(!journal_put_raw(k, 7, WALL0, EV_STOP, NULL, "{\"id\":7}"));
        ck_assert(!journal_put_raw(k, 3, WALL0, EV_STOP, NULL, "{\"id\":3}"));
        ck_assert(journal_put_raw(k, 9, WALL0, EV_START, NULL, "{\"id\":9}"));
        ck_assert_uint_eq(journal_next_id(k), 10);
        journal_set_next_id(k, 40);
        ck_assert_uint_eq(journal_start(k, WALL0, "x", 0, true), 40);
        journal_set_next_id(k, 5); /* never backwards */
        ck_assert_uint_eq(journal_next_id(k), 41);
        journal_free(k);
        journal_free(j);
}
END_TEST

START_TEST(t_journal_bad_text)
{
        struct journal *j = journal_new(4);
        struct journal_query all = {.type = -1};
        journal_transition(j, WALL0, "a", "redis", "pass", "fail", "server_error",
                           "bad \xff\xfe bytes\n<script>");
        json_t *a = events_of(j, &all); /* still JSON */
        const char *out = json_string_value(json_object_get(json_array_get(a, 0), "output"));
        ck_assert_ptr_nonnull(out);
        ck_assert(strstr(out, "<script>") != NULL);
        ck_assert(strchr(out, '\n') == NULL);
        json_decref(a);
        journal_free(j);
}
END_TEST

START_TEST(t_time_round_trip)
{
        static const double times[] = {0, WALL0, WALL0 + 0.5, WALL0 + 59.999, 1e9 + 0.001};
        for (int i = 0; i < N(times); i++) {
                char buf[40];
                double back = -1;
                journal_time(times[i], buf, sizeof(buf));
                ck_assert_int_eq(state_parse_time(buf, &back), 0);
                ck_assert_msg(fabs(back - times[i]) < 0.0011, "%s -> %f", buf, back);
        }
        static const char *const bad[] = {"",
                                          "2027-01-15",
                                          "2027-01-15T08:00:00",
                                          "2027-13-15T08:00:00Z",
                                          "2027-01-15T08:00:00.Z",
                                          "2027-01-15T08:00:00+01:00"};
        for (int i = 0; i < N(bad); i++) {
                double t;
                ck_assert_msg(state_parse_time(bad[i], &t) != 0, "accepted %s", bad[i]);
        }
}
END_TEST

/* ---- state: a simulated target ----------------------------------------- */

static struct target_conf conf_redis(const char *name, const char *host, int port, int db)
{
        struct target_conf c;
        memset(&c, 0, sizeof(c));
        snprintf(c.name, sizeof(c.name), "%s", name);
        c.kind = KIND_REDIS;
        c.host = (char *)(uintptr_t)host;
        c.port = port;
        c.db = db;
        return c;
}

/* A slo that ran checks every 2 s from mono 1000 for `seconds`, with one
 * 20 s outage (detected at 1100, first pass at 1118, up at 1120). */
static struct slo *history(double seconds)
{
        struct slo *s = slo_new(1000, &targets);
        ck_assert_ptr_nonnull(s);
        for (double t = 1000; t <= 1000 + seconds; t += 2) {
                bool down = t >= 1100 && t < 1118;
                slo_check(s, t, !down, 0.002 + (down ? 0.1 : 0));
                slo_op(s, "ping", 0.001);
                if (t == 1100)
                        slo_down(s, t);
                if (t == 1120)
                        slo_up(s, t, 1118, false);
        }
        return s;
}

static char *serialise_one(struct target_conf *c, struct slo *s, struct journal *j, double wall,
                           double mono, const char *status)
{
        struct state_target st = {.conf = c,
                                  .slo = s,
                                  .status = status,
                                  .reason = NULL,
                                  .output = NULL,
                                  .last_change = wall - 10};
        json_t *rec = state_record(&st, wall, mono);
        size_t len;
        char *buf = state_serialise(&rec, 1, NULL, 0, j, wall, &len);
        ck_assert_uint_eq(len, strlen(buf));
        json_decref(rec);
        return buf;
}

START_TEST(t_round_trip)
{
        struct target_conf c = conf_redis("cache", "127.0.0.1", 6379, 0);
        struct slo *s = history(600);
        struct journal *j = journal_new(10);
        journal_start(j, WALL0, "1", 1, false);
        journal_transition(j, WALL0 + 100, "cache", "redis", "pass", "fail", "timeout", "slow");
        /* saved at mono 1600 = wall WALL0 + 600 */
        char *buf = serialise_one(&c, s, j, WALL0 + 600, 1600, "pass");
        struct slo_report before;
        slo_report(s, 1600, &before);

        struct state_loaded l;
        char err[300];
        ck_assert_msg(state_parse(buf, strlen(buf), &l, err, sizeof(err)) == 0, "%s", err);
        ck_assert_uint_eq(json_array_size(l.targets), 1);
        ck_assert_uint_eq(l.next_event_id, 3);
        json_t *rec = json_array_get(l.targets, 0);
        ck_assert(state_record_matches(rec, &c, NULL, 0));

        /* another process, whose monotonic clock says 50 when the wall
         * clock is one hour after the save */
        struct slo *r = slo_new(50, &targets);
        struct state_previous prev;
        ck_assert_msg(state_restore(rec, r, &prev, WALL0 + 600 + 3600, 50, err, sizeof(err)) == 0,
                      "%s", err);
        ck_assert_str_eq(prev.status, "pass");
        ck_assert(fabs(prev.last_change - (WALL0 + 590)) < 0.01);
        struct slo_report after;
        slo_report(r, 50, &after);
        /* the hour nobody watched is neither up nor down */
        ck_assert_double_eq_tol(after.observed_seconds, before.observed_seconds, 0.01);
        ck_assert_double_eq_tol(after.down_seconds, before.down_seconds, 0.01);
        ck_assert_double_eq_tol(after.availability, before.availability, 1e-6);
        ck_assert_double_eq_tol(after.down_seconds, 20, 0.01);
        ck_assert_uint_eq(after.outages, 1);
        ck_assert_double_eq_tol(after.longest_outage, 20, 0.01);
        ck_assert_uint_eq(after.reconnects_missed, 1); /* 18 s against 5 s */
        ck_assert_uint_eq(after.reconnects_met, 0);
        ck_assert_uint_eq(after.reconnect->count, 1);
        ck_assert_double_eq_tol(after.reconnect_last, 18, TOL);
        ck_assert_uint_eq(after.latency->count, before.latency->count);
        ck_assert_double_eq_tol(after.latency->sum, before.latency->sum, 1e-6);
        ck_assert_int_eq(after.nops, 1);
        ck_assert_str_eq(after.op_names[0], "ping");
        ck_assert_uint_eq(after.ops[0]->count, before.ops[0]->count);
        ck_assert(!after.started); /* startup is measured from each start */
        double lat_a[SLO_HISTORY], lat_b[SLO_HISTORY];
        bool ok_a[SLO_HISTORY], ok_b[SLO_HISTORY];
        size_t na = slo_history(s, lat_a, ok_a, SLO_HISTORY);
        ck_assert_uint_eq(slo_history(r, lat_b, ok_b, SLO_HISTORY), na);
        for (size_t i = 0; i < na; i++) {
                ck_assert_double_eq_tol(lat_a[i], lat_b[i], 1e-6);
                ck_assert(ok_a[i] == ok_b[i]);
        }
        /* watching resumes: a minute up adds 60 s observed, nothing down */
        slo_check(r, 60, true, 0.001);
        slo_check(r, 120, true, 0.001);
        slo_report(r, 120, &after);
        ck_assert_double_eq_tol(after.observed_seconds, before.observed_seconds + 60, 0.01);
        ck_assert_double_eq_tol(after.down_seconds, 20, 0.01);

        /* events come back, ids continue */
        struct journal *j2 = journal_new(10);
        state_restore_events(&l, j2);
        ck_assert_uint_eq(journal_count(j2), 2);
        ck_assert_uint_eq(journal_start(j2, WALL0 + 4200, "1", 1, true), 3);
        /* and the restored state serialises to a file that parses again */
        char *buf2 = serialise_one(&c, r, j2, WALL0 + 4300, 220, "pass");
        struct state_loaded l2;
        ck_assert_msg(state_parse(buf2, strlen(buf2), &l2, err, sizeof(err)) == 0, "%s", err);
        ck_assert_uint_eq(json_array_size(l2.events), 3);
        state_loaded_free(&l2);
        free(buf2);

        journal_free(j2);
        slo_free(r);
        state_loaded_free(&l);
        free(buf);
        journal_free(j);
        slo_free(s);
}
END_TEST

/* Frequent checks and saves (allowed: interval 10 ms, state_interval
 * 100 ms): the float sums of a minute's short spans must never pass 60 s,
 * or the daemon writes a minute that its own parser refuses. */
START_TEST(t_minute_never_over_60s)
{
        struct slo *s = slo_new(0, &targets);
        /* 1,000 evenly spaced checks a minute: the sum of 1,000 float
         * spans of 60 ms comes out above 60 s */
        for (int k = 1; k <= 3 * 1000; k++)
                slo_check(s, k * 0.06, true, 0.001);
        json_t *saved = slo_save(s, 180.0);
        struct slo *r = slo_new(1000, &targets);
        char err[200] = "";
        ck_assert_msg(slo_load(r, saved, 1000, 0, err, sizeof(err)) == 0, "refused: %s", err);
        json_decref(saved);
        slo_free(r);
        slo_free(s);
}
END_TEST

/* An outage open at the save: closed as unobserved when it ended while
 * nobody watched, a normal outage when the next check still fails; the
 * gap is left out either way. */
START_TEST(t_unobserved_outage)
{
        static const struct {
                bool first_pass;  /* the first check after the restore passes */
                double more_down; /* else: down this long after the restore */
        } rows[] = {{true, 0}, {false, 30}};
        for (int i = 0; i < N(rows); i++) {
                struct target_conf c = conf_redis("cache", "127.0.0.1", 6379, 0);
                struct slo *s = slo_new(0, &targets);
                for (double t = 0; t <= 100; t += 2) {
                        slo_check(s, t, t < 90, 0.001);
                        if (t == 90)
                                slo_down(s, t); /* down since 90, still at the save at 100 */
                }
                struct journal *j = journal_new(4);
                char *buf = serialise_one(&c, s, j, WALL0 + 100, 100, "fail");
                struct slo_report before;
                slo_report(s, 100, &before);
                ck_assert(before.in_outage);

                struct state_loaded l;
                char err[300];
                ck_assert_int_eq(state_parse(buf, strlen(buf), &l, err, sizeof(err)), 0);
                struct slo *r = slo_new(5000, &targets);
                struct state_previous prev;
                /* restored 10 minutes later */
                ck_assert_int_eq(state_restore(json_array_get(l.targets, 0), r, &prev, WALL0 + 700,
                                               5000, err, sizeof(err)),
                                 0);
                ck_assert_str_eq(prev.status, "fail");
                struct slo_outage o0, o;
                slo_last_outage(r, &o0);
                double t = 5001;
                slo_check(r, t, rows[i].first_pass, 0.001);
                if (!rows[i].first_pass) {
                        slo_down(r, t); /* already open: not a second outage */
                        t += rows[i].more_down;
                        slo_check(r, t, true, 0.001);
                }
                slo_up(r, t, t, false);
                slo_last_outage(r, &o);
                ck_assert_uint_eq(o.closed, o0.closed + 1);
                /* ended while nobody watched: unobserved; still down at the
                 * first check after the restore: its end was watched, a
                 * reconnection like any other (10 s before the save and 30
                 * after: missed against the 5 s target) */
                ck_assert(o.unobserved == rows[i].first_pass);
                ck_assert(o.reconnection == !rows[i].first_pass);
                /* 10 s watched before the save, and what was watched after */
                ck_assert_double_eq_tol(o.seconds, 10 + rows[i].more_down, 0.01);
                struct slo_report after;
                slo_report(r, t, &after);
                ck_assert_uint_eq(after.reconnects_met + after.reconnects_missed,
                                  rows[i].first_pass ? 0 : 1);
                ck_assert_uint_eq(after.outages, 1);
                ck_assert_double_eq_tol(after.down_seconds, 10 + rows[i].more_down, 0.01);
                ck_assert_double_eq_tol(after.observed_seconds, 100 + rows[i].more_down, 0.01);
                ck_assert(!after.in_outage);
                slo_free(r);
                state_loaded_free(&l);
                free(buf);
                journal_free(j);
                slo_free(s);
        }
}
END_TEST

/* A save older than the window restores histograms, not availability. */
START_TEST(t_old_save)
{
        struct target_conf c = conf_redis("cache", "127.0.0.1", 6379, 0);
        struct slo *s = history(600);
        struct journal *j = journal_new(4);
        char *buf = serialise_one(&c, s, j, WALL0 + 600, 1600, "pass");
        struct state_loaded l;
        char err[300];
        ck_assert_int_eq(state_parse(buf, strlen(buf), &l, err, sizeof(err)), 0);
        struct slo *r = slo_new(0, &targets);
        struct state_previous prev;
        ck_assert_int_eq(state_restore(json_array_get(l.targets, 0), r, &prev,
                                       WALL0 + 600 + 2 * 86400, 0, err, sizeof(err)),
                         0);
        struct slo_report rep;
        slo_report(r, 0, &rep);
        ck_assert_double_eq_tol(rep.observed_seconds, 0, TOL);
        ck_assert_double_eq_tol(rep.availability, 1, TOL);
        ck_assert_uint_eq(rep.reconnects_missed, 1);
        slo_free(r);
        state_loaded_free(&l);
        free(buf);
        journal_free(j);
        slo_free(s);
}
END_TEST

START_TEST(t_matching_rule)
{
        struct target_conf c = conf_redis("cache", "10.0.0.7", 6379, 2);
        struct slo *s = slo_new(0, &targets);
        struct state_target st = {.conf = &c, .slo = s, .status = "pass"};
        json_t *rec = state_record(&st, WALL0, 0);
        struct target_conf pg;
        memset(&pg, 0, sizeof(pg));
        snprintf(pg.name, sizeof(pg.name), "cache");
        pg.kind = KIND_POSTGRES;
        pg.host = (char *)(uintptr_t) "10.0.0.7";
        pg.port = 6379;
        pg.dbname = (char *)(uintptr_t) "app";
        struct target_conf rows[] = {
            conf_redis("cache", "10.0.0.7", 6379, 2), conf_redis("other", "10.0.0.7", 6379, 2),
            conf_redis("cache", "10.0.0.8", 6379, 2), conf_redis("cache", "10.0.0.7", 6380, 2),
            conf_redis("cache", "10.0.0.7", 6379, 3), pg,
        };
        static const char *const want[] = {NULL, "name", "host", "port", "db", "kind"};
        for (int i = 0; i < N(rows); i++) {
                char why[64] = "";
                bool m = state_record_matches(rec, &rows[i], why, sizeof(why));
                ck_assert_msg(m == (want[i] == NULL), "row %d: %s", i, why);
                if (want[i] != NULL)
                        ck_assert_msg(strncmp(why, want[i], strlen(want[i])) == 0, "row %d: %s", i,
                                      why);
        }
        /* postgres: the database name is part of the identity */
        struct state_target sp = {.conf = &pg, .slo = s, .status = "pass"};
        json_t *prec = state_record(&sp, WALL0, 0);
        ck_assert(state_record_matches(prec, &pg, NULL, 0));
        pg.dbname = (char *)(uintptr_t) "reports";
        ck_assert(!state_record_matches(prec, &pg, NULL, 0));
        json_decref(prec);
        json_decref(rec);
        slo_free(s);
}
END_TEST

START_TEST(t_damaged_files)
{
        struct target_conf c = conf_redis("cache", "127.0.0.1", 6379, 0);
        struct slo *s = history(120);
        struct journal *j = journal_new(4);
        journal_start(j, WALL0, "1", 1, false);
        char *good = serialise_one(&c, s, j, WALL0 + 120, 1120, "pass");
        size_t n = strlen(good);
        char *cut = strndup(good, n / 2);
        static const char *const fixed[] = {
            "",
            "{}",
            "[1,2]",
            "{\"format\":\"something-else\",\"version\":1}",
            "{\"format\":\"hdms-healthd-state\",\"version\":2,\"savedAt\":\"2027-01-15T08:00:00Z\","
            "\"nextEventId\":1,\"targets\":[],\"events\":[]}",
            "{\"format\":\"hdms-healthd-state\",\"version\":1,\"savedAt\":\"2027-01-15T08:00:00Z\","
            "\"nextEventId\":5,\"targets\":[],\"events\":[{\"id\":3,\"time\":"
            "\"2027-01-15T08:00:00Z\",\"type\":\"start\"},{\"id\":2,\"time\":"
            "\"2027-01-15T08:00:00Z\",\"type\":\"stop\"}]}",
            "{\"format\":\"hdms-healthd-state\",\"version\":1,\"savedAt\":\"2027-01-15T08:00:00Z\","
            "\"nextEventId\":5,\"targets\":[],\"events\":[{\"id\":3,\"time\":"
            "\"2027-01-15T08:00:00Z\",\"type\":\"party\"}]}",
            "{\"format\":\"hdms-healthd-state\",\"version\":1,\"savedAt\":\"2027-01-15T08:00:00Z\","
            "\"nextEventId\":5,\"targets\":[{\"name\":\"x\"}],\"events\":[]}",
        };
        struct state_loaded l;
        char err[300];
        ck_assert_int_ne(state_parse(cut, strlen(cut), &l, err, sizeof(err)), 0);
        ck_assert(strlen(err) > 0);
        for (int i = 0; i < N(fixed); i++) {
                err[0] = '\0';
                ck_assert_msg(state_parse(fixed[i], strlen(fixed[i]), &l, err, sizeof(err)) != 0,
                              "accepted case %d", i);
                ck_assert_msg(strlen(err) > 0, "case %d: no reason", i);
        }
        static const char v2[] = "{\"format\":\"hdms-healthd-state\",\"version\":2}";
        ck_assert_int_eq(state_parse(v2, strlen(v2), &l, err, sizeof(err)), -1);
        ck_assert_msg(strstr(err, "version 2") != NULL, "%s", err);
        /* damaged service levels: refused when restored */
        char *bad = strdup(good);
        char *p = strstr(bad, "\"buckets\":[");
        ck_assert_ptr_nonnull(p);
        memcpy(p + 11, "9999", 4); /* no longer a cumulative count */
        ck_assert_msg(state_parse(bad, strlen(bad), &l, err, sizeof(err)) == 0, "%s", err);
        struct slo *r = slo_new(0, &targets);
        struct state_previous prev;
        ck_assert_int_ne(
            state_restore(json_array_get(l.targets, 0), r, &prev, WALL0 + 200, 0, err, sizeof(err)),
            0);
        ck_assert_msg(strstr(err, "latency") != NULL, "%s", err);
        slo_free(r);
        state_loaded_free(&l);
        free(bad);
        free(cut);
        free(good);
        journal_free(j);
        slo_free(s);
}
END_TEST

/* The 24 h strip adds up to the report. */
START_TEST(t_cells)
{
        struct slo *s = history(7200);
        struct slo_cell cells[96];
        struct slo_report rep;
        slo_cells(s, 8200, 15, cells, 96);
        slo_report(s, 8200, &rep);
        double obs = 0, down = 0;
        uint32_t outages = 0;
        for (int i = 0; i < 96; i++) {
                obs += cells[i].observed;
                down += cells[i].down;
                outages += cells[i].outages;
        }
        ck_assert_double_eq_tol(obs, rep.observed_seconds, 0.01);
        ck_assert_double_eq_tol(down, rep.down_seconds, 0.01);
        ck_assert_uint_eq(outages, rep.outages);
        /* the last cell: 14 whole minutes and the current one's 40 s */
        ck_assert_double_eq_tol(cells[95].observed, 14 * 60 + 40, 1);
        ck_assert_double_eq_tol(cells[0].observed, 0, TOL);
        slo_free(s);
}
END_TEST

/* The keys of the record: [daemon] state_file, state_interval, events_max,
 * and their HEALTHD_ forms. */
START_TEST(t_config_keys)
{
        char err[512];
        struct config_overrides ov = {0};
        char *none[] = {NULL};
        struct config *c = config_load(&ov, none, err, sizeof(err));
        ck_assert_msg(c != NULL, "%s", err);
        ck_assert_ptr_null(c->state_file);
        ck_assert_int_eq(c->state_interval_ms, 60000);
        ck_assert_int_eq(c->events_max, 1000);
        config_free(c);

        char *env[] = {(char *)(uintptr_t) "HEALTHD_STATE_FILE=/var/lib/hdms-healthd/state.json",
                       (char *)(uintptr_t) "HEALTHD_STATE_INTERVAL=250ms",
                       (char *)(uintptr_t) "HEALTHD_EVENTS_MAX=50", NULL};
        c = config_load(&ov, env, err, sizeof(err));
        ck_assert_msg(c != NULL, "%s", err);
        ck_assert_str_eq(c->state_file, "/var/lib/hdms-healthd/state.json");
        ck_assert_int_eq(c->state_interval_ms, 250);
        ck_assert_int_eq(c->events_max, 50);
        config_free(c);

        static const struct {
                const char *var;
                const char *key;
        } bad[] = {
            {"HEALTHD_STATE_INTERVAL=50ms", "state_interval"},
            {"HEALTHD_STATE_INTERVAL=soon", "state_interval"},
            {"HEALTHD_EVENTS_MAX=5", "events_max"},
            {"HEALTHD_EVENTS_MAX=1000000", "events_max"},
            {"HEALTHD_STATE_FILE=", "state_file"},
        };
        for (int i = 0; i < N(bad); i++) {
                char *e[] = {(char *)(uintptr_t)bad[i].var, NULL};
                err[0] = '\0';
                c = config_load(&ov, e, err, sizeof(err));
                if (c == NULL) {
                        ck_assert_msg(strcasestr(err, bad[i].key) != NULL, "%s: %s", bad[i].var,
                                      err);
                } else {
                        /* an empty variable is unset, as for every HEALTHD_ key */
                        ck_assert_msg(strcmp(bad[i].key, "state_file") == 0, "%s accepted",
                                      bad[i].var);
                        ck_assert_ptr_null(c->state_file);
                        config_free(c);
                }
        }
}
END_TEST

static Suite *record_suite(void)
{
        Suite *su = suite_create("record");
        TCase *tc = tcase_create("core");
        tcase_add_test(tc, t_journal_query);
        tcase_add_test(tc, t_journal_ring);
        tcase_add_test(tc, t_journal_bad_text);
        tcase_add_test(tc, t_time_round_trip);
        tcase_add_test(tc, t_round_trip);
        tcase_add_test(tc, t_unobserved_outage);
        tcase_add_test(tc, t_minute_never_over_60s);
        tcase_add_test(tc, t_old_save);
        tcase_add_test(tc, t_matching_rule);
        tcase_add_test(tc, t_damaged_files);
        tcase_add_test(tc, t_cells);
        tcase_add_test(tc, t_config_keys);
        suite_add_tcase(su, tc);
        return su;
}

int main(void)
{
        SRunner *sr = srunner_create(record_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
