/*
 * pgb_show.h: parse PgBouncer admin-console results (SHOW POOLS, SHOW
 * CONFIG, SHOW SERVERS, SHOW LISTS).
 *
 * The parsers see a plain table, not a PGresult, so they need no libpq and
 * can be unit-tested and fuzzed. The PgBouncer probe fills a struct sqltab
 * from PQnfields/PQfname/PQgetvalue (NULL where PQgetisnull) and keeps the
 * PGresult alive until the call returns; nothing here keeps a pointer into
 * the table after returning.
 *
 * Columns are always found by name, never by position: PgBouncer adds
 * columns between releases (1.18 split cl_cancel_req, 1.24 added
 * load_balance_hosts), and unknown columns are ignored.
 *
 * Errors: each function returns -1 and writes a one-line reason, naming the
 * column (and row) at fault, into err[errlen] when err is not NULL and
 * errlen > 0; err is set to "" on success. Every value in a column that is
 * read must be well-formed: a NULL or non-numeric cell where a number is
 * expected is an error, not a silent zero.
 */
#ifndef HEALTHD_PGB_SHOW_H
#define HEALTHD_PGB_SHOW_H

#include <stddef.h>

#ifndef HEALTHD_MUSTCHECK
#define HEALTHD_MUSTCHECK __attribute__((warn_unused_result))
#endif

/* A suggested size for the err buffers below. */
#define PGB_ERR_MAX 160

/*
 * A result table: ncols column names, and nrows * ncols cells in row-major
 * order (cell (r, c) is cells[r * ncols + c]); a NULL cell is SQL NULL.
 * The table is borrowed, never modified or retained.
 */
struct sqltab {
        int nrows;
        int ncols;
        const char *const *names; /* ncols entries */
        const char *const *cells; /* nrows * ncols entries, NULL = SQL NULL */
};

/*
 * One row of SHOW POOLS. Text fields are cleaned to valid UTF-8 and cut at a
 * character boundary if too long. sv_used and sv_login are -1 when their
 * column is absent; pool_mode is "" when its column is absent or NULL.
 */
struct pgb_pool {
        char database[64];
        char user[64];
        long cl_active, cl_waiting, sv_active, sv_idle, sv_used, sv_login;
        double maxwait_s; /* maxwait + maxwait_us / 1e6 (maxwait_us optional) */
        char pool_mode[16];
};

/*
 * Parse SHOW POOLS into out[0 .. max-1], skipping the admin console's own
 * pseudo-pool (database "pgbouncer"). Required columns: database, user,
 * cl_active, cl_waiting, sv_active, sv_idle, maxwait; optional: sv_used,
 * sv_login, maxwait_us, pool_mode. *n is set to the number of pools stored.
 * Returns 0 when every pool fit, 1 when there were more than max pools (the
 * first max are stored, the rest dropped: the caller should say so rather
 * than report partial totals as complete), -1 on error (*n = 0).
 * out may be NULL only when max is 0.
 */
HEALTHD_MUSTCHECK int pgb_parse_pools(const struct sqltab *t, struct pgb_pool *out, size_t max,
                                      size_t *n, char *err, size_t errlen);

/* Settings read from SHOW CONFIG; -1 (or "") when the key is not listed. */
struct pgb_config {
        long max_client_conn, default_pool_size, max_db_connections, server_login_retry;
        char pool_mode[16];
};

/*
 * Parse SHOW CONFIG rows (key, value, default, changeable), using only the
 * "key" and "value" columns. Rows with other keys are ignored. Returns 0, or
 * -1 when a column is missing, a key cell is NULL, or a wanted key has a
 * NULL or malformed value. *out is fully reset first (when not NULL); after
 * -1 it may be partly filled and should not be used.
 */
HEALTHD_MUSTCHECK int pgb_parse_config(const struct sqltab *t, struct pgb_config *out, char *err,
                                       size_t errlen);

/*
 * Collect the remote_pid of each server connection in SHOW SERVERS: the pid
 * of the PostgreSQL backend serving it (pg_stat_activity.pid). Rows whose
 * optional "type" column is not "S" are skipped (so SHOW SOCKETS output also
 * works), as are pids of 0 (a connection still logging in has no backend
 * key yet). *n, return value and truncation as for pgb_parse_pools.
 * pids may be NULL only when max is 0.
 */
HEALTHD_MUSTCHECK int pgb_parse_servers(const struct sqltab *t, int *pids, size_t max, size_t *n,
                                        char *err, size_t errlen);

/* Counters from SHOW LISTS; -1 when the row is not listed. */
struct pgb_lists {
        long free_clients, used_clients, login_clients, free_servers, used_servers;
};

/*
 * Parse SHOW LISTS rows (list, items). Other lists (databases, pools,
 * dns_*, ...) are ignored. Returns 0, or -1 as for pgb_parse_config.
 * *out is fully reset first (when not NULL).
 */
HEALTHD_MUSTCHECK int pgb_parse_lists(const struct sqltab *t, struct pgb_lists *out, char *err,
                                      size_t errlen);

#endif /* HEALTHD_PGB_SHOW_H */
