/*
 * fuzz_pgb_show: the four PgBouncer SHOW parsers over a table built from
 * arbitrary bytes.
 *
 * Input format: the TSV that psql prints with `-A -F '<TAB>' -P null='\N'`,
 * the same as the unit-test captures in test/unit/data/ (*.tsv), so a capture is
 * a seed as it is: the first line holds the column names, every further
 * line is a row, fields are split on TAB, and a field that is exactly "\N"
 * is SQL NULL (a NULL column name too). A row with fewer fields than
 * columns gets NULL cells; extra fields are dropped. An empty first line
 * means a table of no columns. Bytes after a NUL in a field are still part
 * of the input but invisible to the parsers, as with a C string from libpq.
 *
 * Every name and cell is its own exact-size heap block, so ASan catches a
 * read past any one of them. Each input is fed to all four parsers (each
 * looks up only the columns it needs), with several output sizes, and the
 * contract of pgb_show.h is checked: errors do not depend on max, *n and the
 * return value agree, err is "" on success, one printable UTF-8 line on
 * failure and always NUL-terminated within errlen, text fields are clean.
 */
#include "pgb_show.h"

#include "fuzz_util.h"

#include <limits.h>

#define MAX_COLS 512
#define MAX_ROWS 8192

struct table {
        struct sqltab t;
        char **names;
        char **cells;
        size_t ncells;
};

static char *field_dup(const uint8_t *p, size_t n)
{
        if (n == 2 && p[0] == '\\' && p[1] == 'N')
                return NULL;
        return fuzz_strndup(p, n);
}

/* Splits [p, end) at TAB into at most max fields; returns how many. */
static int split_fields(const uint8_t *p, const uint8_t *end, char **out, int max)
{
        int n = 0;

        for (;;) {
                const uint8_t *tab = memchr(p, '\t', (size_t)(end - p));
                const uint8_t *fe = tab != NULL ? tab : end;

                if (n < max)
                        out[n] = field_dup(p, (size_t)(fe - p));
                n++;
                if (tab == NULL)
                        return n < max ? n : max;
                p = tab + 1;
        }
}

static void table_build(struct table *tb, const uint8_t *data, size_t size)
{
        const uint8_t *end = data + size;
        const uint8_t *nl = memchr(data, '\n', size);
        const uint8_t *hend = nl != NULL ? nl : end;
        int ncols = 0, nrows = 0;

        memset(tb, 0, sizeof(*tb));
        if (hend > data || nl == NULL) {
                ncols = 1;
                for (const uint8_t *p = data; p < hend; p++)
                        ncols += *p == '\t';
                if (ncols > MAX_COLS)
                        ncols = MAX_COLS;
        }
        /* Rows: every line after the header; a final newline ends the last
         * row rather than starting an empty one. */
        for (const uint8_t *p = hend; p < end && nrows < MAX_ROWS;) {
                p++; /* the '\n' ending the previous line */
                if (p >= end)
                        break;
                const uint8_t *e = memchr(p, '\n', (size_t)(end - p));
                nrows++;
                p = e != NULL ? e : end;
        }
        tb->names = ncols > 0 ? calloc((size_t)ncols, sizeof(char *)) : NULL;
        tb->ncells = (size_t)nrows * (size_t)ncols;
        tb->cells = tb->ncells > 0 ? calloc(tb->ncells, sizeof(char *)) : NULL;
        if ((ncols > 0 && tb->names == NULL) || (tb->ncells > 0 && tb->cells == NULL))
                abort();
        if (ncols > 0)
                split_fields(data, hend, tb->names, ncols);
        const uint8_t *p = hend;
        for (int r = 0; r < nrows; r++) {
                p++;
                const uint8_t *e = memchr(p, '\n', (size_t)(end - p));
                if (e == NULL)
                        e = end;
                if (ncols > 0)
                        split_fields(p, e, tb->cells + (size_t)r * (size_t)ncols, ncols);
                p = e;
        }
        tb->t.nrows = nrows;
        tb->t.ncols = ncols;
        tb->t.names = (const char *const *)tb->names;
        tb->t.cells = (const char *const *)tb->cells;
}

static void table_free(struct table *tb)
{
        for (int c = 0; c < tb->t.ncols; c++)
                free(tb->names[c]);
        for (size_t i = 0; i < tb->ncells; i++)
                free(tb->cells[i]);
        free(tb->names);
        free(tb->cells);
}

/* err after a call: "" on success; on failure one non-empty printable
 * UTF-8 line (the header promises a hostile cell cannot corrupt a log). */
static void check_err(const char *err, int rc, const char *what)
{
        size_t n = strnlen(err, PGB_ERR_MAX);

        FUZZ_CHECK(n < PGB_ERR_MAX, "%s: err not NUL-terminated", what);
        if (rc >= 0) {
                FUZZ_CHECK(n == 0, "%s: rc %d but err '%s'", what, rc, err);
                return;
        }
        FUZZ_CHECK(n > 0, "%s: rc -1 without a message", what);
        FUZZ_CHECK(fuzz_utf8_valid(err, n) && fuzz_no_ascii_controls(err, n),
                   "%s: err is not one printable UTF-8 line: '%s'", what, err);
}

/* err buffers shorter than the message: written within errlen, terminated. */
static void check_short_err(const struct sqltab *t)
{
        char small[8];
        size_t n = 0;

        for (size_t errlen = 1; errlen <= 5; errlen += 4) {
                memset(small, 'Z', sizeof(small));
                struct pgb_config c;
                int rc = pgb_parse_config(t, &c, small, errlen);
                (void)rc;
                FUZZ_CHECK(memchr(small, '\0', errlen) != NULL, "errlen %zu: not terminated",
                           errlen);
                for (size_t i = errlen; i < sizeof(small); i++)
                        FUZZ_CHECK(small[i] == 'Z', "errlen %zu: wrote byte %zu", errlen, i);
                rc = pgb_parse_servers(t, NULL, 0, &n, small, errlen);
                (void)rc;
                for (size_t i = errlen; i < sizeof(small); i++)
                        FUZZ_CHECK(small[i] == 'Z', "servers errlen %zu: wrote byte %zu", errlen,
                                   i);
        }
        /* No err buffer at all is allowed. */
        struct pgb_lists l;
        int rc = pgb_parse_lists(t, &l, NULL, 0);
        (void)rc;
        rc = pgb_parse_pools(t, NULL, 0, &n, NULL, 0);
        (void)rc;
}

static void fuzz_pools(const struct sqltab *t)
{
        enum { MAX = 4 };
        struct pgb_pool pools[MAX];
        char err0[PGB_ERR_MAX], err[PGB_ERR_MAX];
        size_t n0 = 99, n = 99;

        int rc0 = pgb_parse_pools(t, NULL, 0, &n0, err0, sizeof(err0));
        int rc = pgb_parse_pools(t, pools, MAX, &n, err, sizeof(err));
        check_err(err0, rc0, "pools max 0");
        check_err(err, rc, "pools");
        FUZZ_CHECK(rc >= -1 && rc <= 1 && rc0 >= -1 && rc0 <= 1, "rc %d, rc0 %d", rc, rc0);
        FUZZ_CHECK(n0 == 0, "max 0 stored %zu", n0);
        FUZZ_CHECK(n <= MAX, "stored %zu of max %d", n, MAX);
        /* "Every row is validated, even past max, so errors never depend on max." */
        FUZZ_CHECK((rc == -1) == (rc0 == -1) && (rc != -1 || strcmp(err, err0) == 0),
                   "max changes the verdict: %d '%s' vs %d '%s'", rc, err, rc0, err0);
        if (rc == -1) {
                FUZZ_CHECK(n == 0, "-1 with *n = %zu", n);
                return;
        }
        FUZZ_CHECK(rc0 == (n > 0 ? 1 : 0), "max 0 returned %d but %zu pools exist", rc0, n);
        FUZZ_CHECK(rc == 0 || n == MAX, "truncated (1) with only %zu stored", n);
        for (size_t i = 0; i < n; i++) {
                const struct pgb_pool *p = &pools[i];
                FUZZ_CHECK(fuzz_clean_field(p->database, sizeof(p->database)), "database");
                FUZZ_CHECK(fuzz_clean_field(p->user, sizeof(p->user)), "user");
                FUZZ_CHECK(fuzz_clean_field(p->pool_mode, sizeof(p->pool_mode)), "pool_mode");
                FUZZ_CHECK(p->cl_active >= 0 && p->cl_waiting >= 0 && p->sv_active >= 0 &&
                               p->sv_idle >= 0 && p->sv_used >= -1 && p->sv_login >= -1,
                           "negative counter in pool %zu", i);
                FUZZ_CHECK(p->maxwait_s >= 0.0, "maxwait %g", p->maxwait_s);
        }
}

static void fuzz_servers(const struct sqltab *t)
{
        enum { MAX = 4 };
        int pids[MAX];
        char err0[PGB_ERR_MAX], err[PGB_ERR_MAX];
        size_t n0 = 99, n = 99;

        int rc0 = pgb_parse_servers(t, NULL, 0, &n0, err0, sizeof(err0));
        int rc = pgb_parse_servers(t, pids, MAX, &n, err, sizeof(err));
        check_err(err0, rc0, "servers max 0");
        check_err(err, rc, "servers");
        FUZZ_CHECK(n0 == 0 && n <= MAX, "n0 %zu, n %zu", n0, n);
        FUZZ_CHECK((rc == -1) == (rc0 == -1) && (rc != -1 || strcmp(err, err0) == 0),
                   "max changes the verdict: %d '%s' vs %d '%s'", rc, err, rc0, err0);
        if (rc == -1) {
                FUZZ_CHECK(n == 0, "-1 with *n = %zu", n);
                return;
        }
        FUZZ_CHECK(rc0 == (n > 0 ? 1 : 0), "max 0 returned %d but %zu pids exist", rc0, n);
        FUZZ_CHECK(rc == 0 || n == MAX, "truncated (1) with only %zu stored", n);
        for (size_t i = 0; i < n; i++)
                FUZZ_CHECK(pids[i] > 0, "pid %d stored", pids[i]);
}

static void fuzz_config(const struct sqltab *t)
{
        struct pgb_config a, b;
        char err[PGB_ERR_MAX];

        int rc = pgb_parse_config(t, &a, err, sizeof(err));
        check_err(err, rc, "config");
        FUZZ_CHECK(rc == 0 || rc == -1, "rc %d", rc);
        if (rc != 0)
                return;
        FUZZ_CHECK(a.max_client_conn >= -1 && a.default_pool_size >= -1 &&
                       a.max_db_connections >= -1 && a.server_login_retry >= -1,
                   "negative setting");
        FUZZ_CHECK(fuzz_clean_field(a.pool_mode, sizeof(a.pool_mode)), "pool_mode");
        /* "*out is fully reset first". */
        memset(&b, 0xa5, sizeof(b));
        FUZZ_CHECK(pgb_parse_config(t, &b, err, sizeof(err)) == 0, "second parse failed");
        FUZZ_CHECK(a.max_client_conn == b.max_client_conn &&
                       a.default_pool_size == b.default_pool_size &&
                       a.max_db_connections == b.max_db_connections &&
                       a.server_login_retry == b.server_login_retry &&
                       strcmp(a.pool_mode, b.pool_mode) == 0,
                   "result depends on *out's old contents");
        FUZZ_CHECK(pgb_parse_config(t, NULL, err, sizeof(err)) == -1, "NULL out accepted");
}

static void fuzz_lists(const struct sqltab *t)
{
        struct pgb_lists a, b;
        char err[PGB_ERR_MAX];

        int rc = pgb_parse_lists(t, &a, err, sizeof(err));
        check_err(err, rc, "lists");
        FUZZ_CHECK(rc == 0 || rc == -1, "rc %d", rc);
        if (rc != 0)
                return;
        FUZZ_CHECK(a.free_clients >= -1 && a.used_clients >= -1 && a.login_clients >= -1 &&
                       a.free_servers >= -1 && a.used_servers >= -1,
                   "negative counter");
        memset(&b, 0xa5, sizeof(b));
        FUZZ_CHECK(pgb_parse_lists(t, &b, err, sizeof(err)) == 0, "second parse failed");
        FUZZ_CHECK(memcmp(&a, &b, sizeof(a)) == 0, "result depends on *out's old contents");
}

/* The documented refusals of a malformed call: -1 and a message, never a
 * crash. The shape errors take the fuzzed names, so they vary a little. */
static void check_bad_calls(const struct sqltab *good)
{
        const char *const name = "x";
        struct sqltab bad[] = {
            {.nrows = -1, .ncols = good->ncols, .names = good->names, .cells = good->cells},
            {.nrows = 0, .ncols = -1, .names = good->names},
            {.nrows = 0, .ncols = 1, .names = NULL},
            {.nrows = 1, .ncols = 1, .names = &name, .cells = NULL},
        };
        const struct sqltab *tabs[] = {NULL, &bad[0], &bad[1], &bad[2], &bad[3]};
        char err[PGB_ERR_MAX];
        size_t n = 99;
        int pid;
        struct pgb_pool pool;
        struct pgb_config c;
        struct pgb_lists l;

        for (size_t i = 0; i < sizeof(tabs) / sizeof(tabs[0]); i++) {
                FUZZ_CHECK(pgb_parse_pools(tabs[i], &pool, 1, &n, err, sizeof(err)) == -1 &&
                               n == 0 && err[0] != '\0',
                           "pools accepted bad table %zu", i);
                FUZZ_CHECK(pgb_parse_servers(tabs[i], &pid, 1, &n, err, sizeof(err)) == -1 &&
                               err[0] != '\0',
                           "servers accepted bad table %zu", i);
                FUZZ_CHECK(pgb_parse_config(tabs[i], &c, err, sizeof(err)) == -1 && err[0] != '\0',
                           "config accepted bad table %zu", i);
                FUZZ_CHECK(pgb_parse_lists(tabs[i], &l, err, sizeof(err)) == -1 && err[0] != '\0',
                           "lists accepted bad table %zu", i);
        }
        FUZZ_CHECK(pgb_parse_pools(good, NULL, 1, &n, err, sizeof(err)) == -1 &&
                       pgb_parse_pools(good, &pool, 1, NULL, err, sizeof(err)) == -1 &&
                       pgb_parse_servers(good, NULL, 1, &n, err, sizeof(err)) == -1 &&
                       pgb_parse_servers(good, &pid, 1, NULL, err, sizeof(err)) == -1 &&
                       pgb_parse_lists(good, NULL, err, sizeof(err)) == -1,
                   "a missing output buffer was accepted");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct table tb;

        table_build(&tb, data, size);
        fuzz_pools(&tb.t);
        fuzz_servers(&tb.t);
        fuzz_config(&tb.t);
        fuzz_lists(&tb.t);
        check_short_err(&tb.t);
        check_bad_calls(&tb.t);
        table_free(&tb);
        return 0;
}
