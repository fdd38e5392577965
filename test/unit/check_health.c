/*
 * Unit tests for health.c: the HAProxy-style rise/fall counter.
 *
 * Table-driven: each row is a (rise, fall) pair, a sequence of check results
 * ('P' pass, 'F' fail) and, after each step, the expected state ('U' up,
 * 'D' down) and whether the next check comes at retry_interval ('r') or at
 * interval ('-').  Each row is one loop iteration of a Check test, so a
 * failure names the row.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const struct {
        int rise, fall;
        const char *seq;   /* P: pass, F: fail */
        const char *up;    /* after each step: U up, D down */
        const char *retry; /* after each step: r retrying, - not */
} seq_cases[] = {
    /* The first result decides at once. */
    {2, 2, "P", "U", "-"},
    {2, 2, "F", "D", "r"},
    {3, 3, "P", "U", "-"},
    {3, 3, "F", "D", "r"},
    /* fall consecutive failures take an up target down, and not fewer. */
    {2, 2, "PF", "UU", "-r"},
    {2, 2, "PFF", "UUD", "-rr"},
    {3, 3, "PFF", "UUU", "-rr"},
    {3, 3, "PFFF", "UUUD", "-rrr"},
    /* A pass in between resets the count of failures. */
    {2, 2, "PFPF", "UUUU", "-r-r"},
    {2, 2, "PFPFPF", "UUUUUU", "-r-r-r"},
    {3, 3, "PFFPFFPFF", "UUUUUUUUU", "-rr-rr-rr"},
    {3, 3, "PFFPFFF", "UUUUUUD", "-rr-rrr"},
    /* rise passes bring a down target back, and not fewer. */
    {2, 2, "FP", "DD", "rr"},
    {2, 2, "FPP", "DDU", "rr-"},
    {3, 2, "FPP", "DDD", "rrr"},
    {3, 2, "FPPP", "DDDU", "rrr-"},
    {2, 2, "PFFPP", "UUDDU", "-rrr-"},
    {2, 2, "PFFPPFP", "UUDDUUU", "-rrr-r-"},
    /* A failure while coming back starts the count of passes again. */
    {2, 2, "FPFPP", "DDDDU", "rrrr-"},
    {3, 2, "FPPFPPP", "DDDDDDU", "rrrrrr-"},
    /* Staying down or up. */
    {2, 2, "FFFF", "DDDD", "rrrr"},
    {2, 2, "PPPP", "UUUU", "----"},
    /* rise = 1, fall = 1: every result counts at once. */
    {1, 1, "PFPF", "UDUD", "-r-r"},
    {1, 1, "FFPP", "DDUU", "rr--"},
    {1, 1, "FPFP", "DUDU", "r-r-"},
    /* Asymmetric. */
    {3, 1, "PFPPP", "UDDDU", "-rrr-"},
    {1, 3, "PFFFP", "UUUDU", "-rrr-"},
    {1, 3, "PFFPFFF", "UUUUUUD", "-rr-rrr"},
    {1, 3, "FP", "DU", "r-"},
    /* Values below 1 behave as 1. */
    {0, 0, "PFP", "UDU", "-r-"},
};

START_TEST(test_sequences)
{
        const int i = _i;
        const char *seq = seq_cases[i].seq;
        size_t n = strlen(seq);
        ck_assert_uint_eq(strlen(seq_cases[i].up), n);
        ck_assert_uint_eq(strlen(seq_cases[i].retry), n);

        struct health h;
        health_init(&h, seq_cases[i].rise, seq_cases[i].fall);
        ck_assert(!h.known);
        for (size_t k = 0; k < n; k++) {
                bool ok = seq[k] == 'P';
                bool want_up = seq_cases[i].up[k] == 'U';
                bool want_retry = seq_cases[i].retry[k] == 'r';
                /* health_feed reports the first result and every change of up. */
                bool want_changed = k == 0 || seq_cases[i].up[k] != seq_cases[i].up[k - 1];
                bool changed = health_feed(&h, ok);
                ck_assert_msg(h.known, "row %d step %zu: not known", i, k);
                ck_assert_msg(h.up == want_up, "row %d (rise %d fall %d, %s) step %zu: up=%d", i,
                              seq_cases[i].rise, seq_cases[i].fall, seq, k, h.up);
                ck_assert_msg(h.last_ok == ok, "row %d step %zu: last_ok", i, k);
                ck_assert_msg(changed == want_changed, "row %d (%s) step %zu: changed=%d", i, seq,
                              k, changed);
                ck_assert_msg(health_retrying(&h) == want_retry,
                              "row %d (rise %d fall %d, %s) step %zu: retrying=%d", i,
                              seq_cases[i].rise, seq_cases[i].fall, seq, k, health_retrying(&h));
        }
}
END_TEST

/* Large rise/fall, walked programmatically: exactly fall failures take it
 * down, exactly rise passes bring it back, and a failure on the way back
 * restarts the count. */
static const struct {
        int rise, fall;
} large_cases[] = {{5, 7}, {7, 5}, {10, 10}, {50, 3}, {100, 100}};

START_TEST(test_large)
{
        const int rise = large_cases[_i].rise, fall = large_cases[_i].fall;
        struct health h;
        health_init(&h, rise, fall);

        ck_assert(health_feed(&h, true));
        ck_assert(h.up);
        ck_assert(!health_retrying(&h));

        for (int round = 0; round < 2; round++) {
                for (int k = 1; k < fall; k++) {
                        ck_assert(!health_feed(&h, false));
                        ck_assert_msg(h.up, "down after %d of %d failures", k, fall);
                        ck_assert(health_retrying(&h));
                }
                if (round == 0) {
                        /* one pass resets the failures: fall-1 more stay up */
                        ck_assert(!health_feed(&h, true));
                        ck_assert(h.up);
                        ck_assert(!health_retrying(&h));
                }
        }
        ck_assert(health_feed(&h, false));
        ck_assert_msg(!h.up, "still up after %d failures", fall);
        ck_assert(health_retrying(&h));

        for (int round = 0; round < 2; round++) {
                for (int k = 1; k < rise; k++) {
                        ck_assert(!health_feed(&h, true));
                        ck_assert_msg(!h.up, "up after %d of %d passes", k, rise);
                        ck_assert(health_retrying(&h));
                }
                if (round == 0) {
                        /* a failure on the way back restarts the count */
                        ck_assert(!health_feed(&h, false));
                        ck_assert(!h.up);
                        ck_assert(health_retrying(&h));
                }
        }
        ck_assert(health_feed(&h, true));
        ck_assert_msg(h.up, "still down after %d passes", rise);
        ck_assert(!health_retrying(&h));

        /* Many more passes change nothing; the counter saturates. */
        for (int k = 0; k < 3 * (rise + fall); k++)
                ck_assert(!health_feed(&h, true));
        for (int k = 1; k < fall; k++)
                ck_assert(!health_feed(&h, false));
        ck_assert(h.up);
        ck_assert(health_feed(&h, false));
        ck_assert(!h.up);

        /* Many more failures change nothing either. */
        for (int k = 0; k < 3 * (rise + fall); k++)
                ck_assert(!health_feed(&h, false));
        for (int k = 1; k < rise; k++)
                ck_assert(!health_feed(&h, true));
        ck_assert(!h.up);
        ck_assert(health_feed(&h, true));
        ck_assert(h.up);
}
END_TEST

/* A first failure makes the state known (down) and is reported as a change. */
START_TEST(test_first_result_reported)
{
        struct health h;
        health_init(&h, 2, 2);
        ck_assert(!h.known);
        ck_assert(!h.up);
        ck_assert(health_feed(&h, false));
        ck_assert(h.known);
        ck_assert(!h.up);
        ck_assert(!health_feed(&h, false));
}
END_TEST

static const struct {
        enum status st;
        const char *name;
} status_cases[] = {
    {ST_UNKNOWN, "unknown"},
    {ST_PASS, "pass"},
    {ST_WARN, "warn"},
    {ST_FAIL, "fail"},
};

START_TEST(test_status_name)
{
        ck_assert_str_eq(status_name(status_cases[_i].st), status_cases[_i].name);
}
END_TEST

static Suite *health_suite(void)
{
        Suite *s = suite_create("health");
        TCase *tc = tcase_create("core");
        tcase_add_loop_test(tc, test_sequences, 0, N(seq_cases));
        tcase_add_loop_test(tc, test_large, 0, N(large_cases));
        tcase_add_test(tc, test_first_result_reported);
        tcase_add_loop_test(tc, test_status_name, 0, N(status_cases));
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(health_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
