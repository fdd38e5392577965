/*
 * pgb_show.c: PgBouncer admin-console result parsing (see pgb_show.h).
 *
 * Each parser first resolves the columns it needs by name, then walks the
 * rows. Two shapes occur: SHOW POOLS and SHOW SERVERS are one record per
 * row; SHOW CONFIG and SHOW LISTS are (name, value) rows, handled by one
 * table-driven key/value walker. Error messages quote at most a short,
 * UTF-8-cleaned prefix of the offending cell, so a hostile value cannot
 * flood or corrupt a log line.
 */
#include "pgb_show.h"
#include "textutil.h"

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Name of SHOW POOLS' pseudo-database for the admin console itself. */
#define PGB_ADMIN_DB "pgbouncer"

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Write a message into the caller's buffer, if any (always NUL-terminated). */
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
        va_list ap;

        if (err == NULL || errlen == 0)
                return;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
}

static void err_clear(char *err, size_t errlen)
{
        if (err != NULL && errlen > 0)
                err[0] = '\0';
}

/* Check the table's shape so that every cell index below is in bounds. */
static int tab_check(const struct sqltab *t, char *err, size_t errlen)
{
        if (t == NULL) {
                seterr(err, errlen, "no result table");
                return -1;
        }
        if (t->nrows < 0 || t->ncols < 0) {
                seterr(err, errlen, "bad table shape (%d rows, %d columns)", t->nrows, t->ncols);
                return -1;
        }
        if (t->ncols > 0 && t->names == NULL) {
                seterr(err, errlen, "table has no column names");
                return -1;
        }
        if (t->nrows > 0 && t->ncols > 0) {
                if ((size_t)t->nrows > SIZE_MAX / (size_t)t->ncols) {
                        seterr(err, errlen, "table too large");
                        return -1;
                }
                if (t->cells == NULL) {
                        seterr(err, errlen, "table has no cells");
                        return -1;
                }
        }
        return 0;
}

/* Index of the first column called name, or -1. */
static int col_find(const struct sqltab *t, const char *name)
{
        int c;

        for (c = 0; c < t->ncols; c++) {
                if (t->names[c] != NULL && strcmp(t->names[c], name) == 0)
                        return c;
        }
        return -1;
}

/* Find a column that must exist; on failure, err names it. */
static int col_require(const struct sqltab *t, const char *name, int *idx, char *err, size_t errlen)
{
        *idx = col_find(t, name);
        if (*idx < 0) {
                seterr(err, errlen, "missing column \"%s\"", name);
                return -1;
        }
        return 0;
}

static const char *cell(const struct sqltab *t, int r, int c)
{
        return t->cells[(size_t)r * (size_t)t->ncols + (size_t)c];
}

/* Cleaned, short copy of a cell for quoting in an error message. */
static const char *quote_cell(char *buf, size_t size, const char *s)
{
        utf8_clean(buf, size, s, strnlen(s, 4 * size));
        return buf;
}

/*
 * Read cell (r, c) as an integer in [min, max]. A NULL or malformed cell is
 * an error. Messages number rows from 1 and name the value as what "name"
 * (what is "column" for record tables, "key" for (name, value) tables).
 */
static int cell_long(const struct sqltab *t, int r, int c, const char *what, const char *name,
                     long min, long max, long *out, char *err, size_t errlen)
{
        const char *s = cell(t, r, c);

        if (s == NULL) {
                seterr(err, errlen, "row %d %s \"%s\": NULL", r + 1, what, name);
                return -1;
        }
        if (parse_int_range(s, min, max, out) != 0) {
                char q[32];

                seterr(err, errlen, "row %d %s \"%s\": not an integer in %ld..%ld: '%s'", r + 1,
                       what, name, min, max, quote_cell(q, sizeof(q), s));
                return -1;
        }
        return 0;
}

/* Copy a text cell, cleaned to UTF-8; NULL becomes "". */
static void cell_text(char *dst, size_t size, const char *s)
{
        utf8_clean(dst, size, s, s != NULL ? strlen(s) : 0);
}

/* ---- SHOW POOLS ---------------------------------------------------------- */

enum col_kind { COL_TEXT, COL_LONG };

/* A SHOW POOLS column stored directly into struct pgb_pool. */
struct pool_col {
        const char *name;
        bool required;
        enum col_kind kind;
        size_t off;
        size_t size; /* COL_TEXT only */
};

/* Table rows: the column's name is the member's name. */
// clang-format off
#define PTEXT(n, req) {#n, req, COL_TEXT, offsetof(struct pgb_pool, n), sizeof(((struct pgb_pool *)0)->n)}
#define PLONG(n, req) {#n, req, COL_LONG, offsetof(struct pgb_pool, n), 0}
// clang-format on

static const struct pool_col pool_cols[] = {
    PTEXT(database, true),   PTEXT(user, true),      PLONG(cl_active, true),
    PLONG(cl_waiting, true), PLONG(sv_active, true), PLONG(sv_idle, true),
    PLONG(sv_used, false),   PLONG(sv_login, false), PTEXT(pool_mode, false),
};

#define NPOOL_COLS (sizeof(pool_cols) / sizeof(pool_cols[0]))

/* Fill *p from row r; idx[] holds the column of each pool_cols entry or -1. */
static int pool_row(const struct sqltab *t, int r, const int *idx, int c_wait, int c_wait_us,
                    struct pgb_pool *p, char *err, size_t errlen)
{
        long wait_s, wait_us = 0;
        size_t k;

        memset(p, 0, sizeof(*p));
        for (k = 0; k < NPOOL_COLS; k++) {
                const struct pool_col *pc = &pool_cols[k];
                char *field = (char *)p + pc->off;

                if (pc->kind == COL_TEXT) {
                        if (idx[k] < 0)
                                continue; /* optional text column: stays "" */
                        if (pc->required && cell(t, r, idx[k]) == NULL) {
                                seterr(err, errlen, "row %d column \"%s\": NULL", r + 1, pc->name);
                                return -1;
                        }
                        cell_text(field, pc->size, cell(t, r, idx[k]));
                } else if (idx[k] < 0) {
                        *(long *)(void *)field = -1;
                } else if (cell_long(t, r, idx[k], "column", pc->name, 0, LONG_MAX,
                                     (long *)(void *)field, err, errlen) != 0) {
                        return -1;
                }
        }
        if (cell_long(t, r, c_wait, "column", "maxwait", 0, LONG_MAX, &wait_s, err, errlen) != 0)
                return -1;
        if (c_wait_us >= 0 && cell_long(t, r, c_wait_us, "column", "maxwait_us", 0, 999999,
                                        &wait_us, err, errlen) != 0)
                return -1;
        p->maxwait_s = (double)wait_s + (double)wait_us / 1e6;
        return 0;
}

int pgb_parse_pools(const struct sqltab *t, struct pgb_pool *out, size_t max, size_t *n, char *err,
                    size_t errlen)
{
        int idx[NPOOL_COLS], c_wait, c_wait_us, c_db, r;
        size_t k, stored = 0;
        bool dropped = false;

        if (n != NULL)
                *n = 0;
        err_clear(err, errlen);
        if (n == NULL || (out == NULL && max > 0)) {
                seterr(err, errlen, "no output buffer");
                return -1;
        }
        if (tab_check(t, err, errlen) != 0)
                return -1;
        for (k = 0; k < NPOOL_COLS; k++) {
                idx[k] = col_find(t, pool_cols[k].name);
                if (idx[k] < 0 && pool_cols[k].required) {
                        seterr(err, errlen, "missing column \"%s\"", pool_cols[k].name);
                        return -1;
                }
        }
        if (col_require(t, "maxwait", &c_wait, err, errlen) != 0)
                return -1;
        c_wait_us = col_find(t, "maxwait_us");
        c_db = col_find(t, "database"); /* present: it is required */

        /* Every row is validated, even past max, so errors never depend on max. */
        for (r = 0; r < t->nrows; r++) {
                struct pgb_pool p;
                const char *db = cell(t, r, c_db);

                if (db != NULL && strcmp(db, PGB_ADMIN_DB) == 0)
                        continue;
                if (pool_row(t, r, idx, c_wait, c_wait_us, &p, err, errlen) != 0)
                        return -1;
                if (stored < max)
                        out[stored++] = p;
                else
                        dropped = true;
        }
        *n = stored;
        return dropped ? 1 : 0;
}

/* ---- SHOW CONFIG / SHOW LISTS: (name, value) rows ------------------------ */

struct kv_spec {
        const char *key;
        enum col_kind kind;
        size_t off;
        size_t size; /* COL_TEXT only */
};

/*
 * Walk rows of (keycol, valcol), storing each value whose key is in spec
 * into base + off. Fields must already hold their "absent" values.
 */
static int parse_kv(const struct sqltab *t, const char *keycol, const char *valcol,
                    const struct kv_spec *spec, size_t nspec, void *base, char *err, size_t errlen)
{
        int ck, cv, r;

        if (tab_check(t, err, errlen) != 0 || col_require(t, keycol, &ck, err, errlen) != 0 ||
            col_require(t, valcol, &cv, err, errlen) != 0)
                return -1;
        for (r = 0; r < t->nrows; r++) {
                const char *key = cell(t, r, ck);
                size_t k;

                if (key == NULL) {
                        seterr(err, errlen, "row %d column \"%s\": NULL", r + 1, keycol);
                        return -1;
                }
                for (k = 0; k < nspec; k++) {
                        char *field = (char *)base + spec[k].off;
                        const char *v = cell(t, r, cv);

                        if (strcmp(key, spec[k].key) != 0)
                                continue;
                        if (spec[k].kind == COL_LONG) {
                                if (cell_long(t, r, cv, "key", spec[k].key, 0, LONG_MAX,
                                              (long *)(void *)field, err, errlen) != 0)
                                        return -1;
                        } else if (v == NULL) {
                                seterr(err, errlen, "row %d key \"%s\": NULL", r + 1, key);
                                return -1;
                        } else {
                                cell_text(field, spec[k].size, v);
                        }
                        break;
                }
        }
        return 0;
}

// clang-format off
#define CLONG(n) {#n, COL_LONG, offsetof(struct pgb_config, n), 0}
// clang-format on

static const struct kv_spec config_keys[] = {
    CLONG(max_client_conn),
    CLONG(default_pool_size),
    CLONG(max_db_connections),
    CLONG(server_login_retry),
    {"pool_mode", COL_TEXT, offsetof(struct pgb_config, pool_mode),
     sizeof(((struct pgb_config *)0)->pool_mode)},
};

int pgb_parse_config(const struct sqltab *t, struct pgb_config *out, char *err, size_t errlen)
{
        err_clear(err, errlen);
        if (out == NULL) {
                seterr(err, errlen, "no output buffer");
                return -1;
        }
        out->max_client_conn = out->default_pool_size = -1;
        out->max_db_connections = out->server_login_retry = -1;
        out->pool_mode[0] = '\0';
        return parse_kv(t, "key", "value", config_keys,
                        sizeof(config_keys) / sizeof(config_keys[0]), out, err, errlen);
}

// clang-format off
#define LCOUNT(n) {#n, COL_LONG, offsetof(struct pgb_lists, n), 0}
// clang-format on

static const struct kv_spec list_keys[] = {
    LCOUNT(free_clients), LCOUNT(used_clients), LCOUNT(login_clients),
    LCOUNT(free_servers), LCOUNT(used_servers),
};

int pgb_parse_lists(const struct sqltab *t, struct pgb_lists *out, char *err, size_t errlen)
{
        err_clear(err, errlen);
        if (out == NULL) {
                seterr(err, errlen, "no output buffer");
                return -1;
        }
        out->free_clients = out->used_clients = out->login_clients = -1;
        out->free_servers = out->used_servers = -1;
        return parse_kv(t, "list", "items", list_keys, sizeof(list_keys) / sizeof(list_keys[0]),
                        out, err, errlen);
}

/* ---- SHOW SERVERS -------------------------------------------------------- */

int pgb_parse_servers(const struct sqltab *t, int *pids, size_t max, size_t *n, char *err,
                      size_t errlen)
{
        int c_pid, c_type, r;
        size_t stored = 0;
        bool dropped = false;

        if (n != NULL)
                *n = 0;
        err_clear(err, errlen);
        if (n == NULL || (pids == NULL && max > 0)) {
                seterr(err, errlen, "no output buffer");
                return -1;
        }
        if (tab_check(t, err, errlen) != 0 ||
            col_require(t, "remote_pid", &c_pid, err, errlen) != 0)
                return -1;
        c_type = col_find(t, "type");
        for (r = 0; r < t->nrows; r++) {
                long pid;

                if (c_type >= 0) {
                        const char *type = cell(t, r, c_type);

                        if (type == NULL || strcmp(type, "S") != 0)
                                continue;
                }
                if (cell_long(t, r, c_pid, "column", "remote_pid", 0, INT_MAX, &pid, err, errlen) !=
                    0)
                        return -1;
                if (pid == 0)
                        continue;
                if (stored < max)
                        pids[stored++] = (int)pid;
                else
                        dropped = true;
        }
        *n = stored;
        return dropped ? 1 : 0;
}
