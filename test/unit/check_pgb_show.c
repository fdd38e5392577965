/*
 * Unit tests for pgb_show: PgBouncer admin-console result parsing.
 *
 * Tables are written as TSV: the first line holds the column names, "\N" is
 * SQL NULL, and an empty field is an empty string. The pgb118_*.tsv fixtures
 * in test/unit/data/ were captured from a real PgBouncer 1.18.0 in front of
 * PostgreSQL 15 (see data/README); the rest are hand-made edge cases.
 */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgb_show.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define MAX_LINES 256

/* A struct sqltab and the heap memory behind it. */
struct tab {
        struct sqltab t;
        char *text;
        const char **names;
        const char **cells;
};

static void tab_parse(struct tab *tb, const char *tsv)
{
        char *lines[MAX_LINES];
        char *rest, *l;
        int nl = 0, ncols = 1, r, c;
        const char *p;

        memset(tb, 0, sizeof(*tb));
        tb->text = strdup(tsv);
        ck_assert_ptr_nonnull(tb->text);
        rest = tb->text;
        while ((l = strsep(&rest, "\n")) != NULL) {
                if (*l == '\0')
                        continue;
                ck_assert_int_lt(nl, MAX_LINES);
                lines[nl++] = l;
        }
        ck_assert_int_ge(nl, 1);
        for (p = lines[0]; *p; p++)
                ncols += *p == '\t';
        tb->names = calloc((size_t)ncols, sizeof(*tb->names));
        tb->cells = calloc((size_t)(nl - 1) * (size_t)ncols + 1, sizeof(*tb->cells));
        ck_assert(tb->names != NULL && tb->cells != NULL);
        for (r = 0; r < nl; r++) {
                char *f, *lp = lines[r];

                for (c = 0; (f = strsep(&lp, "\t")) != NULL; c++) {
                        ck_assert_msg(c < ncols, "row %d has too many fields", r);
                        if (r == 0)
                                tb->names[c] = f;
                        else
                                tb->cells[(size_t)(r - 1) * (size_t)ncols + (size_t)c] =
                                    strcmp(f, "\\N") == 0 ? NULL : f;
                }
                ck_assert_msg(c == ncols, "row %d has %d fields, want %d", r, c, ncols);
        }
        tb->t.nrows = nl - 1;
        tb->t.ncols = ncols;
        tb->t.names = tb->names;
        tb->t.cells = tb->cells;
}

static void tab_load(struct tab *tb, const char *fixture)
{
        const char *dir = getenv("HEALTHD_TEST_DATA");
        char path[512], *buf;
        FILE *f;
        long size;

        snprintf(path, sizeof(path), "%s/%s", dir ? dir : "test/unit/data", fixture);
        f = fopen(path, "rb");
        ck_assert_msg(f != NULL, "cannot open %s (run from the repo root or set HEALTHD_TEST_DATA)",
                      path);
        ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
        size = ftell(f);
        ck_assert_int_gt(size, 0);
        rewind(f);
        buf = calloc(1, (size_t)size + 1);
        ck_assert_ptr_nonnull(buf);
        ck_assert_uint_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
        fclose(f);
        tab_parse(tb, buf);
        free(buf);
}

/* The same table with its columns in reverse order (borrowing src's text). */
static void tab_reversed(const struct tab *src, struct tab *dst)
{
        int nc = src->t.ncols, r, c;

        memset(dst, 0, sizeof(*dst));
        dst->names = calloc((size_t)nc, sizeof(*dst->names));
        dst->cells = calloc((size_t)src->t.nrows * (size_t)nc + 1, sizeof(*dst->cells));
        ck_assert(dst->names != NULL && dst->cells != NULL);
        for (c = 0; c < nc; c++) {
                dst->names[c] = src->names[nc - 1 - c];
                for (r = 0; r < src->t.nrows; r++)
                        dst->cells[r * nc + c] = src->cells[r * nc + (nc - 1 - c)];
        }
        dst->t = src->t;
        dst->t.names = dst->names;
        dst->t.cells = dst->cells;
}

static void tab_free(struct tab *tb)
{
        free(tb->text);
        free(tb->names);
        free(tb->cells);
        memset(tb, 0, sizeof(*tb));
}

/* err must be "" when want is NULL, else contain want. */
static void check_err(const char *err, const char *want, int i)
{
        if (want == NULL)
                ck_assert_msg(err[0] == '\0', "case %d: unexpected error '%s'", i, err);
        else
                ck_assert_msg(strstr(err, want) != NULL, "case %d: error '%s' lacks '%s'", i, err,
                              want);
}

/* ---- SHOW POOLS ---------------------------------------------------------- */

#define POOLS_118                                                                                  \
        "database\tuser\tcl_active\tcl_waiting\tcl_active_cancel_req\tcl_waiting_cancel_req\t"     \
        "sv_active\tsv_active_cancel\tsv_being_canceled\tsv_idle\tsv_used\tsv_tested\t"            \
        "sv_login\tmaxwait\tmaxwait_us\tpool_mode\n"

static const struct {
        const char *tsv;
        size_t max;
        int rc;
        size_t n;
        const char *err; /* substring, or NULL for no error */
        /* pool[0] when n > 0 */
        const char *db, *user;
        long cl_active, cl_waiting, sv_idle, sv_used, sv_login;
        double maxwait_s;
        const char *pool_mode;
} pool_cases[] = {
    /* 1.18 layout, admin pseudo-pool skipped. */
    {POOLS_118 "app\tu\t1\t2\t0\t0\t3\t0\t0\t4\t5\t0\t6\t7\t250000\ttransaction\n"
               "pgbouncer\tpgbouncer\t1\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tstatement\n",
     8, 0, 1, NULL, "app", "u", 1, 2, 4, 5, 6, 7.25, "transaction"},
    /* 1.17 layout: a single cl_cancel_req. */
    {"database\tuser\tcl_active\tcl_waiting\tcl_cancel_req\tsv_active\tsv_idle\tsv_used\t"
     "sv_tested\tsv_login\tmaxwait\tmaxwait_us\tpool_mode\n"
     "app\tu\t1\t0\t0\t1\t0\t0\t0\t0\t0\t0\tsession\n",
     8, 0, 1, NULL, "app", "u", 1, 0, 0, 0, 0, 0.0, "session"},
    /* 1.24 layout: load_balance_hosts appended (NULL there). */
    {"database\tuser\tcl_active\tcl_waiting\tcl_active_cancel_req\tcl_waiting_cancel_req\t"
     "sv_active\tsv_active_cancel\tsv_being_canceled\tsv_idle\tsv_used\tsv_tested\tsv_login\t"
     "maxwait\tmaxwait_us\tpool_mode\tload_balance_hosts\n"
     "app\tu\t9\t3\t0\t0\t2\t0\t0\t1\t0\t0\t0\t1\t5\ttransaction\t\\N\n",
     8, 0, 1, NULL, "app", "u", 9, 3, 1, 0, 0, 1.000005, "transaction"},
    /* Columns in any order; only the required ones present. */
    {"maxwait\tsv_idle\tuser\tcl_waiting\tdatabase\tsv_active\tcl_active\n"
     "3\t1\tu\t4\td\t5\t6\n",
     8, 0, 1, NULL, "d", "u", 6, 4, 1, -1, -1, 3.0, ""},
    /* NULL in the optional text column is "". */
    {POOLS_118 "app\tu\t1\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t\\N\n", 8, 0, 1, NULL, "app", "u", 1,
     0, 0, 0, 0, 0.0, ""},
    /* Empty result and admin-only result. */
    {POOLS_118, 8, 0, 0, NULL},
    {POOLS_118 "pgbouncer\tpgbouncer\t1\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tstatement\n", 8, 0, 0,
     NULL},
    /* The admin row is skipped before its cells are read. */
    {POOLS_118 "pgbouncer\tpgbouncer\tx\t\\N\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tstatement\n", 8, 0,
     0, NULL},
    /* A user's database named like the console but not equal to it is kept. */
    {POOLS_118 "pgbouncer2\tu\t1\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tsession\n", 8, 0, 1, NULL,
     "pgbouncer2", "u", 1, 0, 0, 0, 0, 0.0, "session"},
    /* More pools than room: the first max are kept, rc 1. */
    {POOLS_118 "a\tu\t1\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tsession\n"
               "pgbouncer\tpgbouncer\t1\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tstatement\n"
               "b\tu\t2\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tsession\n"
               "c\tu\t3\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tsession\n",
     2, 1, 2, NULL, "a", "u", 1, 0, 0, 0, 0, 0.0, "session"},
    {POOLS_118 "a\tu\t1\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tsession\n", 0, 1, 0, NULL},
    /* A bad row beyond max is still an error. */
    {POOLS_118 "a\tu\t1\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tsession\n"
               "b\tu\tx\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tsession\n",
     1, -1, 0, "row 2 column \"cl_active\""},
    /* Missing required columns are named. */
    {"database\tuser\tcl_active\tsv_active\tsv_idle\tmaxwait\n", 8, -1, 0, "\"cl_waiting\""},
    {"database\tuser\tcl_active\tcl_waiting\tsv_active\tsv_idle\n", 8, -1, 0, "\"maxwait\""},
    {"user\tcl_active\tcl_waiting\tsv_active\tsv_idle\tmaxwait\n", 8, -1, 0, "\"database\""},
    {"database\tuser\tcl_active\tcl_waiting\tsv_active\tmaxwait\n", 8, -1, 0, "\"sv_idle\""},
    {"Database\tuser\tcl_active\tcl_waiting\tsv_active\tsv_idle\tmaxwait\n", 8, -1, 0,
     "\"database\""}, /* names are case-sensitive */
    /* NULL and malformed cells. */
    {POOLS_118 "app\tu\t\\N\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tsession\n", 8, -1, 0,
     "row 1 column \"cl_active\": NULL"},
    {POOLS_118 "\\N\tu\t1\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tsession\n", 8, -1, 0,
     "\"database\": NULL"},
    {POOLS_118 "app\t\\N\t1\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tsession\n", 8, -1, 0,
     "\"user\": NULL"},
    {POOLS_118 "app\tu\t1\tabc\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tsession\n", 8, -1, 0,
     "\"cl_waiting\": not an integer in 0..9223372036854775807: 'abc'"},
    {POOLS_118 "app\tu\t1\t-1\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tsession\n", 8, -1, 0,
     "\"cl_waiting\""},
    {POOLS_118 "app\tu\t1\t\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tsession\n", 8, -1, 0,
     "\"cl_waiting\""},
    {POOLS_118 "app\tu\t1\t1.5\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tsession\n", 8, -1, 0,
     "\"cl_waiting\""},
    {POOLS_118 "app\tu\t1\t 1\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tsession\n", 8, -1, 0,
     "\"cl_waiting\""},
    {POOLS_118 "app\tu\t99999999999999999999\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tsession\n", 8, -1,
     0, "\"cl_active\""},
    {POOLS_118 "app\tu\t1\t0\t0\t0\t0\t0\t0\t0\tx\t0\t0\t0\t0\tsession\n", 8, -1, 0, "\"sv_used\""},
    {POOLS_118 "app\tu\t1\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t\\N\t0\tsession\n", 8, -1, 0,
     "\"maxwait\": NULL"},
    {POOLS_118 "app\tu\t1\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t1000000\tsession\n", 8, -1, 0,
     "\"maxwait_us\""},
    {POOLS_118 "app\tu\t1\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tabc\tsession\n", 8, -1, 0,
     "\"maxwait_us\""},
    /* Text is cleaned to UTF-8 and cut at a character boundary. */
    {POOLS_118 "caf\xc3\xa9\tu\xff\x01x\t1\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tsession\n", 8, 0, 1,
     NULL, "caf\xc3\xa9", "u\xef\xbf\xbd x", 1, 0, 0, 0, 0, 0.0, "session"},
    {POOLS_118 "0123456789012345678901234567890123456789012345678901234567890123456789\tu\t1\t0\t0"
               "\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\ttransaction_pooling_mode\n",
     8, 0, 1, NULL, "012345678901234567890123456789012345678901234567890123456789012", "u", 1, 0, 0,
     0, 0, 0.0, "transaction_poo"},
    {POOLS_118 "01234567890123456789012345678901234567890123456789012345678901\xc3\xa9\tu\t1\t0\t0"
               "\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\tsession\n",
     8, 0, 1, NULL, "01234567890123456789012345678901234567890123456789012345678901", "u", 1, 0, 0,
     0, 0, 0.0, "session"},
    /* A repeated column name: the first one counts. */
    {"database\tuser\tcl_active\tcl_waiting\tsv_active\tsv_idle\tmaxwait\tcl_waiting\n"
     "d\tu\t1\t2\t3\t4\t5\tgarbage\n",
     8, 0, 1, NULL, "d", "u", 1, 2, 4, -1, -1, 5.0, ""},
};

START_TEST(t_pools_table)
{
        struct pgb_pool pools[8];
        struct tab tb;
        char err[PGB_ERR_MAX] = "untouched";
        size_t n = 99;
        int rc;

        ck_assert_uint_le(pool_cases[_i].max, 8);
        tab_parse(&tb, pool_cases[_i].tsv);
        rc = pgb_parse_pools(&tb.t, pool_cases[_i].max ? pools : NULL, pool_cases[_i].max, &n, err,
                             sizeof(err));
        ck_assert_msg(rc == pool_cases[_i].rc, "case %d: rc %d (%s)", _i, rc, err);
        ck_assert_uint_eq(n, pool_cases[_i].n);
        check_err(err, pool_cases[_i].err, _i);
        if (n > 0) {
                ck_assert_str_eq(pools[0].database, pool_cases[_i].db);
                ck_assert_str_eq(pools[0].user, pool_cases[_i].user);
                ck_assert_int_eq(pools[0].cl_active, pool_cases[_i].cl_active);
                ck_assert_int_eq(pools[0].cl_waiting, pool_cases[_i].cl_waiting);
                ck_assert_int_eq(pools[0].sv_idle, pool_cases[_i].sv_idle);
                ck_assert_int_eq(pools[0].sv_used, pool_cases[_i].sv_used);
                ck_assert_int_eq(pools[0].sv_login, pool_cases[_i].sv_login);
                ck_assert_double_eq_tol(pools[0].maxwait_s, pool_cases[_i].maxwait_s, 1e-9);
                ck_assert_str_eq(pools[0].pool_mode, pool_cases[_i].pool_mode);
        }
        tab_free(&tb);
}
END_TEST

/* Real SHOW POOLS, as captured and with its columns reversed. */
START_TEST(t_pools_fixture)
{
        struct pgb_pool pools[4];
        struct tab tb, rev;
        char err[PGB_ERR_MAX];
        size_t n;
        int pass;

        tab_load(&tb, "pgb118_show_pools.tsv");
        tab_reversed(&tb, &rev);
        for (pass = 0; pass < 2; pass++) {
                ck_assert_int_eq(
                    pgb_parse_pools(pass ? &rev.t : &tb.t, pools, 4, &n, err, sizeof(err)), 0);
                ck_assert_uint_eq(n, 1);
                ck_assert_str_eq(pools[0].database, "appdb");
                ck_assert_str_eq(pools[0].user, "app");
                ck_assert_int_eq(pools[0].cl_active, 2);
                ck_assert_int_eq(pools[0].cl_waiting, 0);
                ck_assert_int_eq(pools[0].sv_active, 2);
                ck_assert_int_eq(pools[0].sv_idle, 0);
                ck_assert_int_eq(pools[0].sv_used, 0);
                ck_assert_int_eq(pools[0].sv_login, 0);
                ck_assert(pools[0].maxwait_s == 0.0);
                ck_assert_str_eq(pools[0].pool_mode, "transaction");
        }
        /* No room: nothing stored, truncation reported. */
        ck_assert_int_eq(pgb_parse_pools(&tb.t, NULL, 0, &n, err, sizeof(err)), 1);
        ck_assert_uint_eq(n, 0);
        tab_free(&rev);
        tab_free(&tb);
}
END_TEST

/* Real SHOW POOLS with a client queued behind a pool of size 1. */
START_TEST(t_pools_fixture_waiting)
{
        struct pgb_pool pools[4];
        struct tab tb;
        char err[PGB_ERR_MAX];
        size_t n;

        tab_load(&tb, "pgb118_show_pools_waiting.tsv");
        ck_assert_int_eq(pgb_parse_pools(&tb.t, pools, 4, &n, err, sizeof(err)), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_int_eq(pools[0].cl_waiting, 1);
        ck_assert_double_eq_tol(pools[0].maxwait_s, 2.479657, 1e-9);
        tab_free(&tb);
}
END_TEST

/* Bad arguments and table shapes never crash and always explain. */
START_TEST(t_pools_args)
{
        static const char *const names[] = {"database",  "user",    "cl_active", "cl_waiting",
                                            "sv_active", "sv_idle", "maxwait"};
        struct sqltab t = {1, 7, names, NULL};
        struct pgb_pool p;
        char err[PGB_ERR_MAX], tiny[8];
        size_t n = 5;

        ck_assert_int_eq(pgb_parse_pools(NULL, &p, 1, &n, err, sizeof(err)), -1);
        ck_assert_uint_eq(n, 0);
        ck_assert_str_eq(err, "no result table");
        ck_assert_int_eq(pgb_parse_pools(&t, &p, 1, &n, err, sizeof(err)), -1);
        ck_assert_str_eq(err, "table has no cells");
        t.cells = names; /* any non-NULL pointer; the shape checks fail first */
        t.names = NULL;
        ck_assert_int_eq(pgb_parse_pools(&t, &p, 1, &n, err, sizeof(err)), -1);
        ck_assert_str_eq(err, "table has no column names");
        t.names = names;
        t.nrows = -1;
        ck_assert_int_eq(pgb_parse_pools(&t, &p, 1, &n, err, sizeof(err)), -1);
        ck_assert_ptr_nonnull(strstr(err, "bad table shape"));
        t.nrows = 0;
        t.ncols = 7;
        ck_assert_int_eq(pgb_parse_pools(&t, NULL, 1, &n, err, sizeof(err)), -1);
        ck_assert_int_eq(pgb_parse_pools(&t, &p, 1, NULL, err, sizeof(err)), -1);
        /* No error buffer, or a tiny one: still safe, still NUL-terminated. */
        ck_assert_int_eq(pgb_parse_pools(&t, &p, 1, &n, NULL, 0), 0);
        ck_assert_int_eq(pgb_parse_pools(NULL, &p, 1, &n, NULL, 99), -1);
        ck_assert_int_eq(pgb_parse_pools(NULL, &p, 1, &n, tiny, 0), -1);
        ck_assert_int_eq(pgb_parse_pools(NULL, &p, 1, &n, tiny, sizeof(tiny)), -1);
        ck_assert_str_eq(tiny, "no resu");
        /* Success clears a stale message. */
        ck_assert_int_eq(pgb_parse_pools(&t, &p, 1, &n, err, sizeof(err)), 0);
        ck_assert_str_eq(err, "");
}
END_TEST

/* A hostile cell is quoted short and clean in the error. */
START_TEST(t_pools_err_quote)
{
        static const char tail[] = "\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\t0\ts\n";
        char tsv[4096], err[PGB_ERR_MAX];
        struct pgb_pool p;
        struct tab tb;
        size_t n, o;

        /* cl_waiting holds ESC, then 1000 x. */
        o = (size_t)snprintf(tsv, sizeof(tsv), "%sapp\tu\t1\t\x1b", POOLS_118);
        memset(tsv + o, 'x', 1000);
        memcpy(tsv + o + 1000, tail, sizeof(tail));
        tab_parse(&tb, tsv);
        ck_assert_int_eq(pgb_parse_pools(&tb.t, &p, 1, &n, err, sizeof(err)), -1);
        ck_assert_ptr_nonnull(strstr(err, "\"cl_waiting\""));
        ck_assert_ptr_nonnull(strstr(err, ": ' xxxxxxxxxx"));
        ck_assert_ptr_null(strstr(err, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"));
        ck_assert_uint_lt(strlen(err), sizeof(err));
        ck_assert_ptr_null(strchr(err, '\x1b'));
        tab_free(&tb);
}
END_TEST

/* ---- SHOW CONFIG --------------------------------------------------------- */

START_TEST(t_config_fixture)
{
        struct pgb_config cfg;
        struct tab tb, rev;
        char err[PGB_ERR_MAX];
        int pass;

        tab_load(&tb, "pgb118_show_config.tsv");
        tab_reversed(&tb, &rev);
        for (pass = 0; pass < 2; pass++) {
                ck_assert_int_eq(pgb_parse_config(pass ? &rev.t : &tb.t, &cfg, err, sizeof(err)),
                                 0);
                ck_assert_str_eq(err, "");
                ck_assert_int_eq(cfg.max_client_conn, 200);
                ck_assert_int_eq(cfg.default_pool_size, 30);
                ck_assert_int_eq(cfg.max_db_connections, 40);
                ck_assert_int_eq(cfg.server_login_retry, 1);
                ck_assert_str_eq(cfg.pool_mode, "transaction");
        }
        tab_free(&rev);
        tab_free(&tb);
}
END_TEST

#define CONFIG_HDR "key\tvalue\tdefault\tchangeable\n"

static const struct {
        const char *tsv;
        int rc;
        const char *err;
        long max_client_conn, default_pool_size, max_db_connections, server_login_retry;
        const char *pool_mode;
} config_cases[] = {
    {CONFIG_HDR, 0, NULL, -1, -1, -1, -1, ""},
    {CONFIG_HDR "max_client_conn\t100\t100\tyes\nlisten_port\t6432\t6432\tno\n", 0, NULL, 100, -1,
     -1, -1, ""},
    {CONFIG_HDR "default_pool_size\t20\t20\tyes\ndefault_pool_size\t25\t20\tyes\n", 0, NULL, -1, 25,
     -1, -1, ""},
    {CONFIG_HDR "auth_user\t\\N\t\\N\tyes\npool_mode\tsession\tsession\tyes\n", 0, NULL, -1, -1, -1,
     -1, "session"},
    /* Only key and value matter, wherever they are. */
    {"value\tkey\n0\tmax_db_connections\n", 0, NULL, -1, -1, 0, -1, ""},
    {"changeable\tvalue\textra\tkey\nyes\t15\tz\tserver_login_retry\n", 0, NULL, -1, -1, -1, 15,
     ""},
    {"key\tdefault\tchangeable\n", -1, "\"value\"", -1, -1, -1, -1, ""},
    {"value\tdefault\tchangeable\n", -1, "\"key\"", -1, -1, -1, -1, ""},
    {CONFIG_HDR "max_client_conn\tlots\t100\tyes\n", -1, "\"max_client_conn\"", 0, 0, 0, 0, NULL},
    {CONFIG_HDR "max_client_conn\t-1\t100\tyes\n", -1, "\"max_client_conn\"", 0, 0, 0, 0, NULL},
    {CONFIG_HDR "max_client_conn\t\\N\t100\tyes\n", -1, "row 1 key \"max_client_conn\": NULL", 0, 0,
     0, 0, NULL},
    {CONFIG_HDR "pool_mode\t\\N\tsession\tyes\n", -1, "row 1 key \"pool_mode\": NULL", 0, 0, 0, 0,
     NULL},
    {CONFIG_HDR "\\N\t1\t1\tyes\n", -1, "row 1 column \"key\": NULL", 0, 0, 0, 0, NULL},
};

START_TEST(t_config_table)
{
        struct pgb_config cfg;
        struct tab tb;
        char err[PGB_ERR_MAX];
        int rc;

        tab_parse(&tb, config_cases[_i].tsv);
        rc = pgb_parse_config(&tb.t, &cfg, err, sizeof(err));
        ck_assert_msg(rc == config_cases[_i].rc, "case %d: rc %d (%s)", _i, rc, err);
        check_err(err, config_cases[_i].err, _i);
        if (rc == 0) {
                ck_assert_int_eq(cfg.max_client_conn, config_cases[_i].max_client_conn);
                ck_assert_int_eq(cfg.default_pool_size, config_cases[_i].default_pool_size);
                ck_assert_int_eq(cfg.max_db_connections, config_cases[_i].max_db_connections);
                ck_assert_int_eq(cfg.server_login_retry, config_cases[_i].server_login_retry);
                ck_assert_str_eq(cfg.pool_mode, config_cases[_i].pool_mode);
        }
        tab_free(&tb);
}
END_TEST

START_TEST(t_config_args)
{
        struct pgb_config cfg;
        struct tab tb;
        char err[PGB_ERR_MAX];

        ck_assert_int_eq(pgb_parse_config(NULL, &cfg, err, sizeof(err)), -1);
        ck_assert_int_eq(cfg.max_client_conn, -1);
        tab_parse(&tb, CONFIG_HDR);
        ck_assert_int_eq(pgb_parse_config(&tb.t, NULL, err, sizeof(err)), -1);
        ck_assert_int_eq(pgb_parse_config(&tb.t, &cfg, NULL, 0), 0);
        tab_free(&tb);
}
END_TEST

/* ---- SHOW SERVERS -------------------------------------------------------- */

START_TEST(t_servers_fixture)
{
        struct tab tb, rev;
        char err[PGB_ERR_MAX];
        int pids[4];
        size_t n;

        tab_load(&tb, "pgb118_show_servers.tsv");
        tab_reversed(&tb, &rev);
        ck_assert_int_eq(pgb_parse_servers(&tb.t, pids, 4, &n, err, sizeof(err)), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_int_eq(pids[0], 4728);
        ck_assert_int_eq(pids[1], 4730);
        ck_assert_int_eq(pgb_parse_servers(&rev.t, pids, 4, &n, err, sizeof(err)), 0);
        ck_assert_uint_eq(n, 2);
        ck_assert_int_eq(pids[1], 4730);
        ck_assert_int_eq(pgb_parse_servers(&tb.t, pids, 1, &n, err, sizeof(err)), 1);
        ck_assert_uint_eq(n, 1);
        ck_assert_int_eq(pids[0], 4728);
        ck_assert_int_eq(pgb_parse_servers(&tb.t, NULL, 0, &n, err, sizeof(err)), 1);
        ck_assert_uint_eq(n, 0);
        tab_free(&rev);
        tab_free(&tb);
}
END_TEST

static const struct {
        const char *tsv;
        int rc;
        size_t n;
        const char *err;
        int pid0, pid1;
} server_cases[] = {
    {"type\tremote_pid\n", 0, 0, NULL, 0, 0},
    {"remote_pid\n11\n12\n", 0, 2, NULL, 11, 12},
    /* SHOW SOCKETS-like input: only type S rows; pid 0 is still logging in. */
    {"type\tuser\tremote_pid\nC\tapp\t99\nS\tapp\t0\nS\tapp\t42\n\\N\tapp\t7\nS\tapp\t43\n", 0, 2,
     NULL, 42, 43},
    {"type\tuser\tremote_pid\tload_balance\nS\tapp\t2147483647\tx\n", 0, 1, NULL, INT_MAX, 0},
    {"type\tuser\n", -1, 0, "\"remote_pid\"", 0, 0},
    {"type\tremote_pid\nS\t\\N\n", -1, 0, "\"remote_pid\": NULL", 0, 0},
    {"type\tremote_pid\nS\tabc\n", -1, 0, "\"remote_pid\"", 0, 0},
    {"type\tremote_pid\nS\t-5\n", -1, 0, "\"remote_pid\"", 0, 0},
    {"type\tremote_pid\nS\t2147483648\n", -1, 0, "\"remote_pid\"", 0, 0},
    {"type\tremote_pid\nS\t\n", -1, 0, "\"remote_pid\"", 0, 0},
    {"type\tremote_pid\nC\tgarbage\n", 0, 0, NULL, 0, 0}, /* client rows are never read */
};

START_TEST(t_servers_table)
{
        struct tab tb;
        char err[PGB_ERR_MAX];
        int pids[4] = {0};
        size_t n;
        int rc;

        tab_parse(&tb, server_cases[_i].tsv);
        rc = pgb_parse_servers(&tb.t, pids, 4, &n, err, sizeof(err));
        ck_assert_msg(rc == server_cases[_i].rc, "case %d: rc %d (%s)", _i, rc, err);
        ck_assert_uint_eq(n, server_cases[_i].n);
        check_err(err, server_cases[_i].err, _i);
        if (n > 0)
                ck_assert_int_eq(pids[0], server_cases[_i].pid0);
        if (n > 1)
                ck_assert_int_eq(pids[1], server_cases[_i].pid1);
        tab_free(&tb);
}
END_TEST

START_TEST(t_servers_args)
{
        struct tab tb;
        int pids[1];
        size_t n = 3;

        tab_parse(&tb, "remote_pid\n1\n");
        ck_assert_int_eq(pgb_parse_servers(NULL, pids, 1, &n, NULL, 0), -1);
        ck_assert_uint_eq(n, 0);
        ck_assert_int_eq(pgb_parse_servers(&tb.t, NULL, 1, &n, NULL, 0), -1);
        ck_assert_int_eq(pgb_parse_servers(&tb.t, pids, 1, NULL, NULL, 0), -1);
        tab_free(&tb);
}
END_TEST

/* ---- SHOW LISTS ---------------------------------------------------------- */

START_TEST(t_lists_fixture)
{
        struct pgb_lists l;
        struct tab tb, rev;
        char err[PGB_ERR_MAX];
        int pass;

        tab_load(&tb, "pgb118_show_lists.tsv");
        tab_reversed(&tb, &rev);
        for (pass = 0; pass < 2; pass++) {
                ck_assert_int_eq(pgb_parse_lists(pass ? &rev.t : &tb.t, &l, err, sizeof(err)), 0);
                ck_assert_int_eq(l.free_clients, 47);
                ck_assert_int_eq(l.used_clients, 3);
                ck_assert_int_eq(l.login_clients, 0);
                ck_assert_int_eq(l.free_servers, 48);
                ck_assert_int_eq(l.used_servers, 2);
        }
        tab_free(&rev);
        tab_free(&tb);
}
END_TEST

static const struct {
        const char *tsv;
        int rc;
        const char *err;
        long used_clients, used_servers;
} list_cases[] = {
    {"list\titems\n", 0, NULL, -1, -1},
    {"list\titems\nused_clients\t5\ndns_names\t0\n", 0, NULL, 5, -1},
    {"items\tlist\n9\tused_servers\n", 0, NULL, -1, 9},
    {"list\titems\tnew_col\nused_servers\t1\tx\n", 0, NULL, -1, 1},
    {"list\n", -1, "\"items\"", 0, 0},
    {"items\n", -1, "\"list\"", 0, 0},
    {"list\titems\nused_clients\tmany\n", -1, "\"used_clients\"", 0, 0},
    {"list\titems\nused_clients\t\\N\n", -1, "NULL", 0, 0},
    {"list\titems\n\\N\t3\n", -1, "\"list\": NULL", 0, 0},
    {"list\titems\nused_clients\t-3\n", -1, "\"used_clients\"", 0, 0},
};

START_TEST(t_lists_table)
{
        struct pgb_lists l;
        struct tab tb;
        char err[PGB_ERR_MAX];
        int rc;

        tab_parse(&tb, list_cases[_i].tsv);
        rc = pgb_parse_lists(&tb.t, &l, err, sizeof(err));
        ck_assert_msg(rc == list_cases[_i].rc, "case %d: rc %d (%s)", _i, rc, err);
        check_err(err, list_cases[_i].err, _i);
        if (rc == 0) {
                ck_assert_int_eq(l.used_clients, list_cases[_i].used_clients);
                ck_assert_int_eq(l.used_servers, list_cases[_i].used_servers);
        }
        tab_free(&tb);
}
END_TEST

START_TEST(t_lists_args)
{
        struct pgb_lists l;
        struct tab tb;

        ck_assert_int_eq(pgb_parse_lists(NULL, &l, NULL, 0), -1);
        ck_assert_int_eq(l.free_clients, -1);
        tab_parse(&tb, "list\titems\n");
        ck_assert_int_eq(pgb_parse_lists(&tb.t, NULL, NULL, 0), -1);
        tab_free(&tb);
}
END_TEST

/*
 * Empty tables (no columns at all) are valid shapes: every parser reports
 * the first missing column rather than reading anything.
 */
START_TEST(t_empty_table)
{
        struct sqltab t = {0, 0, NULL, NULL};
        struct pgb_pool p;
        struct pgb_config c;
        struct pgb_lists l;
        char err[PGB_ERR_MAX];
        int pid;
        size_t n;

        ck_assert_int_eq(pgb_parse_pools(&t, &p, 1, &n, err, sizeof(err)), -1);
        ck_assert_str_eq(err, "missing column \"database\"");
        ck_assert_int_eq(pgb_parse_config(&t, &c, err, sizeof(err)), -1);
        ck_assert_str_eq(err, "missing column \"key\"");
        ck_assert_int_eq(pgb_parse_servers(&t, &pid, 1, &n, err, sizeof(err)), -1);
        ck_assert_str_eq(err, "missing column \"remote_pid\"");
        ck_assert_int_eq(pgb_parse_lists(&t, &l, err, sizeof(err)), -1);
        ck_assert_str_eq(err, "missing column \"list\"");
}
END_TEST

/* NULL column names are skipped, not dereferenced. */
START_TEST(t_null_names)
{
        static const char *const names[] = {NULL, "remote_pid"};
        static const char *const cells[] = {"S", "77"};
        struct sqltab t = {1, 2, names, cells};
        int pid = 0;
        size_t n;

        ck_assert_int_eq(pgb_parse_servers(&t, &pid, 1, &n, NULL, 0), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_int_eq(pid, 77);
}
END_TEST

static Suite *pgb_show_suite(void)
{
        Suite *s = suite_create("pgb_show");
        TCase *pools = tcase_create("pools");
        TCase *other = tcase_create("config_servers_lists");

        tcase_add_loop_test(pools, t_pools_table, 0, N(pool_cases));
        tcase_add_test(pools, t_pools_fixture);
        tcase_add_test(pools, t_pools_fixture_waiting);
        tcase_add_test(pools, t_pools_args);
        tcase_add_test(pools, t_pools_err_quote);
        suite_add_tcase(s, pools);

        tcase_add_test(other, t_config_fixture);
        tcase_add_loop_test(other, t_config_table, 0, N(config_cases));
        tcase_add_test(other, t_config_args);
        tcase_add_test(other, t_servers_fixture);
        tcase_add_loop_test(other, t_servers_table, 0, N(server_cases));
        tcase_add_test(other, t_servers_args);
        tcase_add_test(other, t_lists_fixture);
        tcase_add_loop_test(other, t_lists_table, 0, N(list_cases));
        tcase_add_test(other, t_lists_args);
        tcase_add_test(other, t_empty_table);
        tcase_add_test(other, t_null_names);
        suite_add_tcase(s, other);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(pgb_show_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
