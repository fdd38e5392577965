/*
 * Unit tests for slo: histograms, startup, reconnection, op latency, check
 * history and the rolling 24 h availability.  slo is pure, so every test
 * drives a simulated clock by passing `now`; nothing sleeps.  Table-driven
 * tests run one table row per loop iteration, so a failure names the row.
 */
#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "slo.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define TOL 1e-6
#define MIN 60.0
#define HOUR 3600.0
#define DAY 86400.0

static const struct slo_targets targets = {.startup = 10, .reconnect = 5, .latency = 0.05};

static struct slo *mk(double start)
{
        struct slo *s = slo_new(start, &targets);

        ck_assert_ptr_nonnull(s);
        return s;
}

/* ---- histograms ---------------------------------------------------------- */

START_TEST(t_bounds)
{
        static const struct {
                const double *b;
                const int *n;
                int want_n;
                double first, last, must_hold;
        } sets[] = {
            {slo_latency_bounds, &slo_latency_nbounds, 13, 0.001, 10, 0.05},
            {slo_reconnect_bounds, &slo_reconnect_nbounds, 12, 0.1, 30, 5},
            {slo_lag_bounds, &slo_lag_nbounds, 11, 0.0005, 1, 0.1},
        };
        int i, j;

        for (i = 0; i < N(sets); i++) {
                bool held = false;

                ck_assert_int_eq(*sets[i].n, sets[i].want_n);
                ck_assert_int_le(*sets[i].n, HIST_MAX_BOUNDS);
                ck_assert_double_eq(sets[i].b[0], sets[i].first);
                ck_assert_double_eq(sets[i].b[*sets[i].n - 1], sets[i].last);
                for (j = 0; j < *sets[i].n; j++) {
                        if (j > 0)
                                ck_assert_double_gt(sets[i].b[j], sets[i].b[j - 1]);
                        held = held || sets[i].b[j] == sets[i].must_hold;
                }
                ck_assert_msg(held, "set %d lacks the %g bound", i, sets[i].must_hold);
        }
}
END_TEST

/* One observation: it lands in every bucket from `first` on (nbounds: only
 * the +Inf bucket, i.e. count).  v == bound belongs to that bound. */
static const struct {
        const double *bounds;
        const int *nbounds;
        double v;
        int first;
} edge_cases[] = {
    {slo_latency_bounds, &slo_latency_nbounds, 0, 0},
    {slo_latency_bounds, &slo_latency_nbounds, -1, 0},
    {slo_latency_bounds, &slo_latency_nbounds, 0.001, 0},
    {slo_latency_bounds, &slo_latency_nbounds, 0.0010001, 1},
    {slo_latency_bounds, &slo_latency_nbounds, 0.025, 4},
    {slo_latency_bounds, &slo_latency_nbounds, 0.05, 5},
    {slo_latency_bounds, &slo_latency_nbounds, 0.0500001, 6},
    {slo_latency_bounds, &slo_latency_nbounds, 1, 9},
    {slo_latency_bounds, &slo_latency_nbounds, 10, 12},
    {slo_latency_bounds, &slo_latency_nbounds, 10.5, 13},
    {slo_reconnect_bounds, &slo_reconnect_nbounds, 0.1, 0},
    {slo_reconnect_bounds, &slo_reconnect_nbounds, 4.999, 6},
    {slo_reconnect_bounds, &slo_reconnect_nbounds, 5, 6},
    {slo_reconnect_bounds, &slo_reconnect_nbounds, 5.001, 7},
    {slo_reconnect_bounds, &slo_reconnect_nbounds, 30, 11},
    {slo_reconnect_bounds, &slo_reconnect_nbounds, 1800, 12},
    {slo_lag_bounds, &slo_lag_nbounds, 0.0005, 0},
    {slo_lag_bounds, &slo_lag_nbounds, 0.3, 9},
    {slo_lag_bounds, &slo_lag_nbounds, 2, 11},
};

START_TEST(t_hist_edges)
{
        struct hist h;
        int i, n = *edge_cases[_i].nbounds;

        hist_init(&h, edge_cases[_i].bounds, n);
        ck_assert_int_eq(h.nbounds, n);
        ck_assert_uint_eq(h.count, 0);
        hist_observe(&h, edge_cases[_i].v);
        for (i = 0; i < n; i++)
                ck_assert_msg(h.buckets[i] == (i >= edge_cases[_i].first ? 1u : 0u),
                              "v=%g bucket %d (le %g) = %llu", edge_cases[_i].v, i, h.bounds[i],
                              (unsigned long long)h.buckets[i]);
        for (; i < HIST_MAX_BOUNDS; i++)
                ck_assert_uint_eq(h.buckets[i], 0);
        ck_assert_uint_eq(h.count, 1);
        ck_assert_double_eq_tol(h.sum, edge_cases[_i].v, TOL);
        ck_assert_double_eq_tol(h.max, edge_cases[_i].v, TOL);
}
END_TEST

START_TEST(t_hist_cumulative)
{
        static const double vals[] = {0.0007, 0.003, 0.003, 0.05, 0.07, 0.3, 2, 11, 0.05};
        /* le:  .001 .0025 .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10 */
        static const uint64_t want[] = {1, 1, 3, 3, 3, 5, 6, 6, 7, 7, 8, 8, 8};
        static const double big[20] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                                       11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
        struct hist h;
        double sum = 0;
        int i;

        hist_init(&h, slo_latency_bounds, slo_latency_nbounds);
        for (i = 0; i < N(vals); i++) {
                hist_observe(&h, vals[i]);
                sum += vals[i];
        }
        for (i = 0; i < slo_latency_nbounds; i++) {
                ck_assert_uint_eq(h.buckets[i], want[i]);
                if (i > 0)
                        ck_assert_uint_ge(h.buckets[i], h.buckets[i - 1]);
        }
        ck_assert_uint_eq(h.count, N(vals)); /* the +Inf bucket */
        ck_assert_double_eq_tol(h.sum, sum, TOL);
        ck_assert_double_eq_tol(h.max, 11, TOL);

        /* NaN fits no bucket and is dropped rather than poisoning sum/max. */
        hist_observe(&h, NAN);
        ck_assert_uint_eq(h.count, N(vals));
        ck_assert_double_eq_tol(h.sum, sum, TOL);

        /* More bounds than fit are cut to HIST_MAX_BOUNDS, not overrun. */
        hist_init(&h, big, N(big));
        ck_assert_int_eq(h.nbounds, HIST_MAX_BOUNDS);
        hist_observe(&h, 100);
        ck_assert_uint_eq(h.buckets[HIST_MAX_BOUNDS - 1], 0);
        ck_assert_uint_eq(h.count, 1);
}
END_TEST

/* ---- startup ------------------------------------------------------------- */

static const struct {
        double start, first_ok, target;
        double want_seconds;
        bool want_met;
} startup_cases[] = {
    {100, 110, 10, 10, true},                               /* exactly at the target is met */
    {100, 110.5, 10, 10.5, false}, {100, 100, 10, 0, true}, /* the very first check passes */
    {0, 3, 2.5, 3, false},         {50, 52.5, 2.5, 2.5, true},
    {1e6, 1e6 + 7, 10, 7, true}, /* a large monotonic clock */
};

START_TEST(t_startup)
{
        struct slo_targets t = targets;
        struct slo_report r;
        struct slo *s;
        double now;

        t.startup = startup_cases[_i].target;
        s = slo_new(startup_cases[_i].start, &t);
        ck_assert_ptr_nonnull(s);
        slo_report(s, startup_cases[_i].start, &r);
        ck_assert(!r.started);
        ck_assert_double_eq(r.startup_seconds, -1);

        /* Failing checks before the first pass leave it unstarted. */
        for (now = startup_cases[_i].start; now < startup_cases[_i].first_ok; now += 0.5) {
                slo_check(s, now, false, 0.01);
                slo_report(s, now, &r);
                ck_assert(!r.started);
                ck_assert_double_eq(r.startup_seconds, -1);
                ck_assert(!r.startup_met);
        }
        slo_check(s, startup_cases[_i].first_ok, true, 0.01);
        slo_report(s, startup_cases[_i].first_ok, &r);
        ck_assert(r.started);
        ck_assert_double_eq_tol(r.startup_seconds, startup_cases[_i].want_seconds, TOL);
        ck_assert(r.startup_met == startup_cases[_i].want_met);

        /* Later passes and failures change nothing. */
        slo_check(s, startup_cases[_i].first_ok + 30, false, 0.01);
        slo_check(s, startup_cases[_i].first_ok + 60, true, 0.01);
        slo_report(s, startup_cases[_i].first_ok + 60, &r);
        ck_assert(r.started);
        ck_assert_double_eq_tol(r.startup_seconds, startup_cases[_i].want_seconds, TOL);
        ck_assert(r.startup_met == startup_cases[_i].want_met);
        slo_free(s);
}
END_TEST

/* ---- reconnection -------------------------------------------------------- */

static const struct {
        double target;
        double detect, first_ok, up;
        double want;
        bool want_met;
        int bucket; /* first reconnect bucket holding it */
} reconnect_cases[] = {
    {5, 100, 105, 106, 5, true, 6}, /* exactly at the target is met */
    {5, 100, 105.25, 106, 5.25, false, 7}, {5, 100, 100.1, 101, 0.1, true, 0},
    {5, 100, 99, 101, 0, true, 0}, /* first_ok before detection clamps to 0 */
    {2, 100, 102, 102, 2, true, 4},        {2, 100, 102.5, 103, 2.5, false, 5},
    {5, 100, 140, 141, 40, false, 12}, /* beyond the last bound: +Inf only */
};

START_TEST(t_reconnect_target)
{
        struct slo_targets t = targets;
        struct slo_report r;
        struct slo *s;
        int i;

        t.reconnect = reconnect_cases[_i].target;
        s = slo_new(0, &t);
        ck_assert_ptr_nonnull(s);
        slo_check(s, 90, true, 0.01);
        slo_down(s, reconnect_cases[_i].detect);
        slo_up(s, reconnect_cases[_i].up, reconnect_cases[_i].first_ok, false);
        slo_report(s, reconnect_cases[_i].up, &r);

        ck_assert_double_eq_tol(r.reconnect_last, reconnect_cases[_i].want, TOL);
        ck_assert_double_eq_tol(r.reconnect_max, reconnect_cases[_i].want, TOL);
        ck_assert_uint_eq(r.reconnects_met, reconnect_cases[_i].want_met ? 1 : 0);
        ck_assert_uint_eq(r.reconnects_missed, reconnect_cases[_i].want_met ? 0 : 1);
        ck_assert_ptr_nonnull(r.reconnect);
        ck_assert_uint_eq(r.reconnect->count, 1);
        ck_assert_double_eq_tol(r.reconnect->sum, reconnect_cases[_i].want, TOL);
        for (i = 0; i < r.reconnect->nbounds; i++)
                ck_assert_uint_eq(r.reconnect->buckets[i],
                                  i >= reconnect_cases[_i].bucket ? 1u : 0u);
        ck_assert(!r.in_outage);
        ck_assert_double_eq(r.outage_seconds, 0);
        slo_free(s);
}
END_TEST

START_TEST(t_restart_blip)
{
        static const struct {
                double down, first_ok, up;
                bool restart;
        } seq[] = {
            {100, 101, 102, false},   {200, 204, 205, true},  {300, 309, 310, true},
            {400, 400.5, 401, false}, {500, 503, 503, false},
        };
        struct slo_report r;
        struct slo *s = mk(0);
        int i;

        /* The first up after startup is not a reconnection. */
        slo_check(s, 1, true, 0.01);
        slo_up(s, 1, 1, true);
        slo_report(s, 1, &r);
        ck_assert_double_eq(r.reconnect_last, -1);
        ck_assert_double_eq(r.reconnect_max, 0);
        ck_assert_uint_eq(r.reconnect->count, 0);
        ck_assert_uint_eq(r.restarts + r.blips + r.reconnects_met + r.reconnects_missed, 0);

        for (i = 0; i < N(seq); i++) {
                slo_down(s, seq[i].down);
                /* A second down while one is open keeps the first detection. */
                slo_down(s, seq[i].down + 0.5);
                slo_up(s, seq[i].up, seq[i].first_ok, seq[i].restart);
                /* And a second up without an outage is ignored. */
                slo_up(s, seq[i].up + 1, seq[i].up + 1, !seq[i].restart);
        }
        slo_report(s, 600, &r);
        ck_assert_uint_eq(r.restarts, 2);
        ck_assert_uint_eq(r.blips, 3);
        ck_assert_uint_eq(r.reconnects_met, 4);    /* 1, 4, 0.5, 3 */
        ck_assert_uint_eq(r.reconnects_missed, 1); /* 9 */
        ck_assert_uint_eq(r.reconnect->count, 5);
        ck_assert_double_eq_tol(r.reconnect_last, 3, TOL);
        ck_assert_double_eq_tol(r.reconnect_max, 9, TOL);
        ck_assert_double_eq_tol(r.reconnect->sum, 1 + 4 + 9 + 0.5 + 3, TOL);
        ck_assert_uint_eq(r.outages, 5);
        ck_assert_double_eq_tol(r.longest_outage, 10, TOL); /* 300 -> 310 */
        slo_free(s);
}
END_TEST

START_TEST(t_set_targets)
{
        struct slo_targets t = targets;
        struct slo_report r;
        struct slo *s = mk(0);

        slo_check(s, 8, true, 0.01);
        slo_down(s, 10);
        slo_up(s, 14, 14, false); /* 4 s: met against 5 */

        t.reconnect = 3;
        t.startup = 1;
        slo_set_targets(s, &t);
        slo_report(s, 14, &r);
        /* A reload keeps what was measured and judged so far... */
        ck_assert_uint_eq(r.reconnects_met, 1);
        ck_assert_uint_eq(r.reconnects_missed, 0);
        ck_assert(r.startup_met);
        ck_assert_uint_eq(r.reconnect->count, 1);
        ck_assert_uint_eq(r.latency->count, 1);
        ck_assert_double_eq_tol(r.observed_seconds, 6, TOL);
        ck_assert_double_eq_tol(r.down_seconds, 4, TOL);

        /* ...and judges new outages against the new target. */
        slo_down(s, 20);
        slo_up(s, 24, 24, false);
        slo_report(s, 24, &r);
        ck_assert_uint_eq(r.reconnects_met, 1);
        ck_assert_uint_eq(r.reconnects_missed, 1);

        /* NULL restores the defaults (reconnect 5 s). */
        slo_set_targets(s, NULL);
        slo_down(s, 30);
        slo_up(s, 35, 35, false);
        slo_report(s, 35, &r);
        ck_assert_uint_eq(r.reconnects_met, 2);
        slo_free(s);
}
END_TEST

/* ---- latency and ops ----------------------------------------------------- */

START_TEST(t_latency)
{
        struct slo_report r;
        struct slo *s = mk(0);

        slo_report(s, 0, &r);
        ck_assert_double_eq(r.latency_last, -1);
        ck_assert_uint_eq(r.latency->count, 0);

        slo_check(s, 1, true, 0.05);  /* the 0.05 bound itself */
        slo_check(s, 2, false, 0.08); /* failed checks are timed too */
        slo_check(s, 3, true, 0.002);
        slo_report(s, 3, &r);
        ck_assert_double_eq_tol(r.latency_last, 0.002, TOL);
        ck_assert_uint_eq(r.latency->count, 3);
        ck_assert_uint_eq(r.latency->buckets[1], 1); /* le 0.0025 */
        ck_assert_uint_eq(r.latency->buckets[4], 1); /* le 0.025 */
        ck_assert_uint_eq(r.latency->buckets[5], 2); /* le 0.05 */
        ck_assert_uint_eq(r.latency->buckets[6], 3); /* le 0.1 */
        ck_assert_double_eq_tol(r.latency->max, 0.08, TOL);
        ck_assert_double_eq_tol(r.latency->sum, 0.132, TOL);
        slo_free(s);
}
END_TEST

START_TEST(t_ops)
{
        static const char *const names[] = {
            "ping",
            "set",
            "get",
            "del",
            "lpush",
            "rpop",
            "fifteen_chars_x",            /* exactly 15: kept whole */
            "abcdefghijklmnopqrstuvwxyz", /* cut to 15 */
        };
        struct slo_report r;
        struct slo *s = mk(0);
        int i;

        slo_report(s, 0, &r);
        ck_assert_int_eq(r.nops, 0);
        for (i = 0; i < SLO_MAX_OPS; i++) {
                ck_assert_ptr_null(r.op_names[i]);
                ck_assert_ptr_null(r.ops[i]);
        }

        for (i = 0; i < N(names); i++)
                slo_op(s, names[i], 0.001 * (i + 1));
        slo_op(s, "set", 0.2);                /* existing: same histogram */
        slo_op(s, "abcdefghijklmnoXYZ", 0.3); /* same first 15: same histogram */
        slo_op(s, "hset", 0.01);              /* a ninth name: dropped */
        slo_op(s, "", 0.01);
        slo_op(s, NULL, 0.01);

        slo_report(s, 0, &r);
        ck_assert_int_eq(r.nops, SLO_MAX_OPS);
        for (i = 0; i < 6; i++)
                ck_assert_str_eq(r.op_names[i], names[i]); /* first-seen order */
        ck_assert_str_eq(r.op_names[6], "fifteen_chars_x");
        ck_assert_str_eq(r.op_names[7], "abcdefghijklmno");
        ck_assert_uint_eq(r.ops[0]->count, 1);
        ck_assert_uint_eq(r.ops[1]->count, 2);
        ck_assert_double_eq_tol(r.ops[1]->max, 0.2, TOL);
        ck_assert_uint_eq(r.ops[1]->buckets[7], 2); /* both <= 0.25 */
        ck_assert_uint_eq(r.ops[1]->buckets[6], 1);
        ck_assert_uint_eq(r.ops[7]->count, 2);
        ck_assert_double_eq_tol(r.ops[7]->sum, 0.008 + 0.3, TOL);
        ck_assert_int_eq(r.ops[0]->nbounds, slo_latency_nbounds);
        /* Ops are not checks: the check latency histogram is untouched. */
        ck_assert_uint_eq(r.latency->count, 0);
        slo_free(s);
}
END_TEST

START_TEST(t_history)
{
        double lat[SLO_HISTORY + 5];
        bool ok[SLO_HISTORY + 5];
        struct slo *s = mk(0);
        size_t n, i;

        ck_assert_uint_eq(slo_history(s, lat, ok, SLO_HISTORY), 0);
        for (i = 0; i < 10; i++)
                slo_check(s, (double)i, i % 3 != 0, (double)i / 1000);
        n = slo_history(s, lat, ok, N(lat));
        ck_assert_uint_eq(n, 10);
        for (i = 0; i < n; i++) {
                ck_assert_double_eq_tol(lat[i], (double)i / 1000, TOL);
                ck_assert(ok[i] == (i % 3 != 0));
        }

        /* 70 checks in all: the ring keeps the last SLO_HISTORY, oldest first. */
        for (i = 10; i < 70; i++)
                slo_check(s, (double)i, i % 3 != 0, (double)i / 1000);
        n = slo_history(s, lat, ok, N(lat));
        ck_assert_uint_eq(n, SLO_HISTORY);
        for (i = 0; i < n; i++) {
                ck_assert_double_eq_tol(lat[i], (double)(i + 70 - SLO_HISTORY) / 1000, TOL);
                ck_assert(ok[i] == ((i + 70 - SLO_HISTORY) % 3 != 0));
        }

        /* A smaller max gives the most recent ones. */
        n = slo_history(s, lat, ok, 5);
        ck_assert_uint_eq(n, 5);
        for (i = 0; i < n; i++)
                ck_assert_double_eq_tol(lat[i], (double)(65 + i) / 1000, TOL);
        ck_assert_uint_eq(slo_history(s, lat, ok, 0), 0);

        /* Either output may be left out. */
        memset(ok, 0, sizeof(ok));
        ck_assert_uint_eq(slo_history(s, NULL, ok, 3), 3);
        ck_assert(ok[0] && ok[1] && !ok[2]); /* checks 67, 68, 69 */
        ck_assert_uint_eq(slo_history(s, lat, NULL, 3), 3);
        ck_assert_double_eq_tol(lat[2], 0.069, TOL);
        slo_free(s);
}
END_TEST

/* ---- availability -------------------------------------------------------- */

START_TEST(t_no_observation_before_first_check)
{
        struct slo_report r;
        struct slo *s = mk(0);

        slo_report(s, 5000, &r);
        ck_assert_double_eq(r.availability, 1);
        ck_assert_double_eq(r.observed_seconds, 0);

        /* A down/up pair before any check moves no time into the ring. */
        slo_down(s, 100);
        slo_up(s, 200, 150, false);
        slo_report(s, 5000, &r);
        ck_assert_double_eq(r.observed_seconds, 0);
        ck_assert_double_eq(r.down_seconds, 0);
        ck_assert_double_eq(r.availability, 1);
        ck_assert_uint_eq(r.outages, 0);
        ck_assert_double_eq(r.longest_outage, 0);

        /* The first check only starts the clock; time counts after it. */
        slo_check(s, 1000, false, 0.01);
        slo_report(s, 1000, &r);
        ck_assert_double_eq(r.observed_seconds, 0);
        ck_assert_double_eq(r.availability, 1);
        slo_report(s, 1090, &r);
        ck_assert_double_eq_tol(r.observed_seconds, 90, TOL);
        ck_assert_double_eq_tol(r.down_seconds, 0, TOL);
        ck_assert_double_eq_tol(r.availability, 1, TOL);
        slo_free(s);
}
END_TEST

/*
 * An outage from 50 to 130 spans minutes 0 (10 s), 1 (60 s) and 2 (10 s).
 * Letting each minute leave the window in turn shows how it was split.  Each
 * row is asserted twice: reporting the still-open span (const report), then
 * after a check at the same time has written it into the ring.
 */
static const struct {
        double now;
        double observed, down;
        uint64_t outages;
        double longest;
} split_rows[] = {
    {130, 80, 80, 1, 80},
    {200, 150, 80, 1, 80},
    {1439 * MIN + 59, 1439 * MIN + 9, 80, 1, 80}, /* window is minutes 0..1439 */
    {1440 * MIN, 1440 * MIN - 60, 70, 0, 80},     /* minute 0 gone: outage started there */
    {1440 * MIN + 30, 1440 * MIN - 30, 70, 0, 80},
    {1441 * MIN, 1440 * MIN - 60, 10, 0, 80},
    {1441 * MIN + 59.5, 1440 * MIN - 0.5, 10, 0, 80},
    {1442 * MIN, 1440 * MIN - 60, 0, 0, 0}, /* minute 2, where it closed, gone too */
};

START_TEST(t_minute_split)
{
        struct slo_report r;
        struct slo *s = mk(0);
        int i, pass;

        slo_check(s, 50, true, 0.01);
        slo_down(s, 50);
        slo_check(s, 90, false, 0.01);
        slo_up(s, 130, 130, false);
        for (i = 0; i < N(split_rows); i++) {
                for (pass = 0; pass < 2; pass++) {
                        if (pass == 1)
                                slo_check(s, split_rows[i].now, true, 0.01);
                        slo_report(s, split_rows[i].now, &r);
                        ck_assert_msg(r.observed_seconds > split_rows[i].observed - TOL &&
                                          r.observed_seconds < split_rows[i].observed + TOL,
                                      "row %d pass %d: observed %.3f want %.3f", i, pass,
                                      r.observed_seconds, split_rows[i].observed);
                        ck_assert_msg(r.down_seconds > split_rows[i].down - TOL &&
                                          r.down_seconds < split_rows[i].down + TOL,
                                      "row %d pass %d: down %.3f want %.3f", i, pass,
                                      r.down_seconds, split_rows[i].down);
                        ck_assert_double_eq_tol(
                            r.availability, 1 - split_rows[i].down / split_rows[i].observed, TOL);
                        ck_assert_uint_eq(r.outages, split_rows[i].outages);
                        ck_assert_double_eq_tol(r.longest_outage, split_rows[i].longest, TOL);
                }
        }
        slo_free(s);
}
END_TEST

START_TEST(t_long_span)
{
        /* now = 100000 is in minute 1666; the window starts at minute 227. */
        const double wstart = 227 * MIN;
        struct slo_report r;
        struct slo *s = mk(0);

        /* An up span longer than 24 h: only its last 24 h count. */
        slo_check(s, 0, true, 0.01);
        slo_report(s, 100000, &r); /* still open */
        ck_assert_double_eq_tol(r.observed_seconds, 100000 - wstart, TOL);
        ck_assert_double_eq_tol(r.down_seconds, 0, TOL);
        slo_check(s, 100000, true, 0.01); /* written to the ring */
        slo_report(s, 100000, &r);
        ck_assert_double_eq_tol(r.observed_seconds, 100000 - wstart, TOL);
        ck_assert_double_eq_tol(r.availability, 1, TOL);
        slo_free(s);

        /* A down span longer than 24 h fills the whole window. */
        s = mk(0);
        slo_check(s, 0, true, 0.01);
        slo_down(s, 10);
        slo_up(s, 100010, 100005, true);
        slo_report(s, 100010, &r);
        ck_assert_double_eq_tol(r.observed_seconds, 100010 - wstart, TOL);
        ck_assert_double_eq_tol(r.down_seconds, 100010 - wstart, TOL);
        ck_assert_double_eq_tol(r.availability, 0, TOL);
        ck_assert_uint_eq(r.outages, 0);                        /* started before the window */
        ck_assert_double_eq_tol(r.longest_outage, 100000, TOL); /* but closed inside it */
        ck_assert_double_eq_tol(r.reconnect_last, 99995, TOL);
        ck_assert_uint_eq(r.reconnects_missed, 1);

        /* A minute on, the ring's stale slots are reused: one more up minute. */
        slo_check(s, 100070, true, 0.01);
        slo_report(s, 100070, &r);
        ck_assert_double_eq_tol(r.observed_seconds, 100070 - 228 * MIN, TOL);
        ck_assert_double_eq_tol(r.down_seconds, 100010 - 228 * MIN, TOL);

        /* Three quiet days later only the open (up) span counts. */
        slo_report(s, 100070 + 3 * DAY, &r);
        ck_assert_double_eq_tol(r.down_seconds, 0, TOL);
        ck_assert_double_eq_tol(r.availability, 1, TOL);
        ck_assert_double_eq_tol(r.longest_outage, 0, TOL);
        slo_free(s);

        /* The work is bounded by the window, not the span: 1e13 s (317,000
         * years) would be 1.7e11 minutes to walk.  now is in minute
         * 166666666666, so the window starts at 9999999913620 s. */
        s = mk(0);
        slo_check(s, 0, true, 0.01);
        slo_down(s, 0);
        slo_check(s, 1e13, false, 0.01);
        slo_report(s, 1e13, &r);
        ck_assert_double_eq_tol(r.observed_seconds, 86380, TOL);
        ck_assert_double_eq_tol(r.down_seconds, 86380, TOL);
        ck_assert_double_eq_tol(r.outage_seconds, 1e13, TOL);
        slo_free(s);
}
END_TEST

/* A clock value that is not a number, or absurdly far out, is ignored
 * rather than turned into a minute index. */
START_TEST(t_bad_time)
{
        static const double bad[] = {NAN, INFINITY, -INFINITY, 1e300, -1e300};
        struct slo_report r;
        struct slo *s = mk(0);
        int i;

        for (i = 0; i < N(bad); i++) {
                slo_check(s, bad[i], true, 0.01);
                slo_down(s, bad[i]);
                slo_up(s, bad[i], bad[i], true);
                slo_report(s, bad[i], &r);
                ck_assert(!r.started);
                ck_assert(!r.in_outage);
                ck_assert_double_eq(r.availability, 1);
        }
        slo_check(s, 10, true, 0.01);
        slo_check(s, NAN, true, 0.01);
        slo_check(s, 70, true, 0.01);
        slo_report(s, 70, &r);
        ck_assert_double_eq_tol(r.startup_seconds, 10, TOL);
        ck_assert_double_eq_tol(r.observed_seconds, 60, TOL);
        ck_assert_uint_eq(r.latency->count, 2);
        slo_free(s);
}
END_TEST

START_TEST(t_open_outage)
{
        struct slo_report r, r2;
        struct slo *s = mk(0);
        double t;

        for (t = 0; t <= 600; t += 10)
                slo_check(s, t, true, 0.01);
        slo_down(s, 600);
        /* No call since: the report still shows the outage growing. */
        slo_report(s, 900, &r);
        ck_assert(r.in_outage);
        ck_assert_double_eq_tol(r.outage_seconds, 300, TOL);
        ck_assert_double_eq_tol(r.observed_seconds, 900, TOL);
        ck_assert_double_eq_tol(r.down_seconds, 300, TOL);
        ck_assert_double_eq_tol(r.availability, 1 - 300.0 / 900, TOL);
        ck_assert_uint_eq(r.outages, 1);
        ck_assert_double_eq_tol(r.longest_outage, 300, TOL);

        /* The report is read-only: repeating it, or writing the same span
         * with a check, gives the same figures. */
        slo_report(s, 900, &r2);
        ck_assert_double_eq(r2.down_seconds, r.down_seconds);
        ck_assert_double_eq(r2.observed_seconds, r.observed_seconds);
        slo_check(s, 900, false, 0.01);
        slo_report(s, 900, &r2);
        ck_assert_double_eq_tol(r2.down_seconds, r.down_seconds, TOL);
        ck_assert_double_eq_tol(r2.observed_seconds, r.observed_seconds, TOL);
        ck_assert_double_eq_tol(r2.outage_seconds, 300, TOL);

        /* An outage longer than a day dominates the window. */
        slo_report(s, 600 + 90000, &r);
        ck_assert(r.in_outage);
        ck_assert_double_eq_tol(r.outage_seconds, 90000, TOL);
        ck_assert_double_eq_tol(r.availability, 0, TOL);
        ck_assert_double_eq_tol(r.longest_outage, 90000, TOL);
        ck_assert_uint_eq(r.outages, 0); /* counted by start, which left the window */

        /* Closing it: reconnection from detection to first_ok, outage over. */
        slo_check(s, 960, true, 0.01);
        slo_up(s, 960, 950, true);
        slo_report(s, 1000, &r);
        ck_assert(!r.in_outage);
        ck_assert_double_eq(r.outage_seconds, 0);
        ck_assert_double_eq_tol(r.reconnect_last, 350, TOL);
        ck_assert_double_eq_tol(r.longest_outage, 360, TOL);
        ck_assert_double_eq_tol(r.down_seconds, 360, TOL);
        ck_assert_double_eq_tol(r.observed_seconds, 1000, TOL);
        slo_free(s);
}
END_TEST

/* Down seconds of [a, b) inside [lo, hi). */
static double overlap(double a, double b, double lo, double hi)
{
        double x = a > lo ? a : lo, y = b < hi ? b : hi;

        return y > x ? y - x : 0;
}

/*
 * A check every 2 s for 26 hours, with a 30-minute outage at hour 1 and a
 * 2-minute outage at hour 24.  Every 10 simulated minutes the report is
 * compared with a direct computation over the window; then a few moments
 * are pinned with explicit figures.
 */
/* A target down from its first check: the down time and the outage count,
 * but its first time up is a slow start, not a reconnection. */
START_TEST(t_down_from_start)
{
        struct slo_report r;
        struct slo *s = slo_new(0, NULL);
        slo_check(s, 1, false, 0.01);
        slo_down(s, 1);
        for (int t = 2; t <= 61; t++)
                slo_check(s, t, false, 0.01);
        slo_check(s, 62, true, 0.01);
        slo_up(s, 62, 62, false);
        slo_check(s, 121, true, 0.01);
        slo_report(s, 121, &r);
        ck_assert_uint_eq(r.reconnect->count, 0);
        ck_assert_uint_eq(r.reconnects_met + r.reconnects_missed, 0);
        ck_assert_uint_eq(r.outages, 1);
        ck_assert_double_eq_tol(r.down_seconds, 61, 1e-6);
        ck_assert_double_eq_tol(r.availability, 1.0 - 61.0 / 120.0, 1e-6);
        ck_assert(r.started);
        /* a later outage is a reconnection */
        slo_check(s, 130, false, 0.01);
        slo_down(s, 130);
        slo_check(s, 131, true, 0.01);
        slo_up(s, 132, 131, true);
        slo_report(s, 132, &r);
        ck_assert_uint_eq(r.reconnect->count, 1);
        ck_assert_double_eq_tol(r.reconnect_last, 1, 1e-9);
        ck_assert_uint_eq(r.restarts, 1);
        slo_free(s);
}
END_TEST

START_TEST(t_day_simulation)
{
        const double o1_down = 1 * HOUR, o1_up = 1.5 * HOUR;
        const double o2_down = 24 * HOUR, o2_up = 24 * HOUR + 2 * MIN;
        struct slo_report r;
        struct slo *s = mk(0);
        double t;
        int compared = 0;

        for (t = 0; t <= 26 * HOUR; t += 2) {
                bool down = (t >= o1_down && t < o1_up) || (t >= o2_down && t < o2_up);

                slo_check(s, t, !down, down ? 1.0 : 0.004);
                if (t == o1_down || t == o2_down)
                        slo_down(s, t);
                if (t == o1_up)
                        slo_up(s, t, t, true);
                if (t == o2_up)
                        slo_up(s, t, t, false);

                if ((int64_t)t % 600 == 0) {
                        /* The window: the current minute and the 1439 before. */
                        double wlo = ((double)((int64_t)t / 60) - 1439) * MIN;
                        double lo = wlo > 0 ? wlo : 0;
                        double want_down =
                            overlap(o1_down, o1_up, lo, t) + overlap(o2_down, o2_up, lo, t);

                        slo_report(s, t, &r);
                        ck_assert_msg(
                            r.observed_seconds > t - lo - TOL && r.observed_seconds < t - lo + TOL,
                            "t=%.0f observed %.3f want %.3f", t, r.observed_seconds, t - lo);
                        ck_assert_msg(r.down_seconds > want_down - TOL &&
                                          r.down_seconds < want_down + TOL,
                                      "t=%.0f down %.3f want %.3f", t, r.down_seconds, want_down);
                        compared++;
                }

                if (t == o2_up) {
                        /* Right after the second outage: window from 3 min. */
                        slo_report(s, t, &r);
                        ck_assert_double_eq_tol(r.observed_seconds, t - 3 * MIN, TOL);
                        ck_assert_double_eq_tol(r.down_seconds, 30 * MIN + 2 * MIN, TOL);
                        ck_assert_double_eq_tol(r.availability, 1 - (32 * MIN) / (t - 3 * MIN),
                                                TOL);
                        ck_assert_uint_eq(r.outages, 2);
                        ck_assert_double_eq_tol(r.longest_outage, 30 * MIN, TOL);
                        ck_assert_uint_eq(r.reconnects_missed, 2); /* 1800 s and 120 s */
                        ck_assert_uint_eq(r.restarts, 1);
                        ck_assert_uint_eq(r.blips, 1);
                }
                if (t == 25 * HOUR + 10 * MIN) {
                        /* Window from 71 min: the first outage's start is gone
                         * (count drops) but 1140 s of it still count, and it
                         * closed inside the window, so it is still the longest. */
                        slo_report(s, t, &r);
                        ck_assert_double_eq_tol(r.observed_seconds, DAY - MIN, TOL);
                        ck_assert_double_eq_tol(r.down_seconds, 1140 + 2 * MIN, TOL);
                        ck_assert_uint_eq(r.outages, 1);
                        ck_assert_double_eq_tol(r.longest_outage, 30 * MIN, TOL);
                }
        }

        /* Hour 26: the first outage has left the window entirely. */
        slo_report(s, 26 * HOUR, &r);
        ck_assert_double_eq_tol(r.observed_seconds, DAY - MIN, TOL);
        ck_assert_double_eq_tol(r.down_seconds, 2 * MIN, TOL);
        ck_assert_double_eq_tol(r.availability, 1 - (2 * MIN) / (DAY - MIN), TOL);
        ck_assert_uint_eq(r.outages, 1);
        ck_assert_double_eq_tol(r.longest_outage, 2 * MIN, TOL);
        ck_assert(!r.in_outage);
        ck_assert(r.started);
        ck_assert_double_eq(r.startup_seconds, 0);
        ck_assert_uint_eq(r.latency->count, 26 * 1800 + 1);
        ck_assert_int_eq(compared, 26 * 6 + 1);
        slo_free(s);
}
END_TEST

static Suite *slo_suite(void)
{
        Suite *s = suite_create("slo");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, t_bounds);
        tcase_add_loop_test(tc, t_hist_edges, 0, N(edge_cases));
        tcase_add_test(tc, t_hist_cumulative);
        tcase_add_loop_test(tc, t_startup, 0, N(startup_cases));
        tcase_add_loop_test(tc, t_reconnect_target, 0, N(reconnect_cases));
        tcase_add_test(tc, t_restart_blip);
        tcase_add_test(tc, t_set_targets);
        tcase_add_test(tc, t_latency);
        tcase_add_test(tc, t_ops);
        tcase_add_test(tc, t_history);
        tcase_add_test(tc, t_no_observation_before_first_check);
        tcase_add_test(tc, t_minute_split);
        tcase_add_test(tc, t_long_span);
        tcase_add_test(tc, t_bad_time);
        tcase_add_test(tc, t_open_outage);
        tcase_add_test(tc, t_down_from_start);
        tcase_add_test(tc, t_day_simulation);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(slo_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
