/* PostgreSQL and PgBouncer probes on libpq's asynchronous API.
 *
 * struct pgc is one non-blocking libpq connection driven by the loop: a
 * one-shot event on the *current* PQsocket after every PQconnectPoll (the
 * socket can change), event_del before PQfinish (a stale event on a reused
 * fd number never fires), and between checks a read event that notices the
 * peer's close.  libpq is handed `hostaddr` (resolved by the engine) beside
 * `host`, so it never resolves a name itself; connect_timeout is ignored in
 * async mode, so the engine's deadline is the only one.
 *
 * postgres: one connection, one Query message per check.
 * pgbouncer: a connection through the pooler (SET LOCAL statement_timeout;
 * SELECT 1) and one to the admin console (SHOW ..., one command per
 * query, simple protocol only), run side by side. */
#include "pgb_show.h"
#include "probe.h"
#include "textutil.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RESULTS 4
#define MAX_PIDS 4096

struct pg_probe;
struct pgc;

typedef void (*pgc_cb)(struct pgc *c, bool ok);

enum pgc_state { PGC_CLOSED, PGC_CONNECTING, PGC_IDLE, PGC_BUSY };

struct pgc {
        struct pg_probe *owner;
        const char *role; /* "PostgreSQL", "the pooler", "the admin console" */
        PGconn *conn;
        struct event *ev;
        enum pgc_state st;
        pgc_cb cb; /* connect or query done */
        PGresult *res[MAX_RESULTS];
        int nres;
        char err[300];
        char sqlstate[6];
};

struct pg_probe {
        struct probe_env *env;
        bool bouncer;
        struct pgc main;  /* postgres, or pgbouncer through the pooler */
        struct pgc admin; /* pgbouncer admin console */
        bool in_check;
        const char *phase;
        char addr[64];
        struct probe_result res;
        int pending; /* connections whose part of the check is not done */
        int admin_step;
        bool paused;         /* the admin console says the app database is paused */
        bool broken;         /* the check failed on the connection itself, not on its figures */
        bool pooler_pending; /* the query through the pooler has not ended */
        bool admin_parked;   /* SHOW POOLS waits for it, so it does not count itself */
        bool admin_deferred; /* the admin login waits for the pooler's (one login at a time) */
        /* postgres: bypass candidates seen in the previous check */
        int *prev_pids;
        size_t nprev;
        /* pgbouncer: the latest SHOW SERVERS */
        int *server_pids;
        size_t nserver_pids;
        double servers_at; /* wall clock of that snapshot, 0 = none */
        struct pg_probe *next_bouncer;
};

/* Live pgbouncer probes, whose SHOW SERVERS tell pooled backends apart. */
static struct pg_probe *bouncers;

static const struct target_conf *conf(const struct pg_probe *p)
{
        return p->env->conf;
}

static double wall_now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- one async connection ---- */

static void pgc_clear_results(struct pgc *c)
{
        for (int i = 0; i < c->nres; i++)
                PQclear(c->res[i]);
        c->nres = 0;
}

static void pgc_close(struct pgc *c)
{
        if (c->ev != NULL) {
                event_del(c->ev);
                event_free(c->ev);
                c->ev = NULL;
        }
        pgc_clear_results(c);
        if (c->conn != NULL)
                PQfinish(c->conn);
        c->conn = NULL;
        c->st = PGC_CLOSED;
}

static void pgc_set_error(struct pgc *c, const char *msg)
{
        utf8_clean(c->err, sizeof(c->err), msg, strlen(msg));
}

static void pgc_io(evutil_socket_t fd, short what, void *arg);

/* Idle and still good: libpq marks a connection bad (and drops its socket)
 * on a protocol violation even when the query's callback has run. */
static bool pgc_usable(const struct pgc *c)
{
        return c->st == PGC_IDLE && c->conn != NULL && PQstatus(c->conn) == CONNECTION_OK;
}

/* Waits for `what` on the current socket, one shot (or persistent while idle). */
static void pgc_wait(struct pgc *c, short what)
{
        if (c->ev != NULL) {
                event_del(c->ev);
                event_free(c->ev);
                c->ev = NULL;
        }
        int fd = PQsocket(c->conn);
        if (fd < 0)
                return;
        c->ev = event_new(c->owner->env->base, fd, what, pgc_io, c);
        event_add(c->ev, NULL);
}

static void pgc_fail(struct pgc *c, const char *msg)
{
        pgc_set_error(c, msg);
        pgc_close(c);
        pgc_cb cb = c->cb;
        c->cb = NULL;
        if (cb != NULL)
                cb(c, false);
}

static void pgc_poll_connect(struct pgc *c)
{
        switch (PQconnectPoll(c->conn)) {
        case PGRES_POLLING_READING:
                pgc_wait(c, EV_READ);
                return;
        case PGRES_POLLING_WRITING:
                pgc_wait(c, EV_WRITE);
                return;
        case PGRES_POLLING_OK: {
                c->st = PGC_IDLE;
                PQsetnonblocking(c->conn, 1);
                pgc_wait(c, EV_READ | EV_PERSIST);
                pgc_cb cb = c->cb;
                c->cb = NULL;
                if (cb != NULL)
                        cb(c, true);
                return;
        }
        case PGRES_POLLING_FAILED:
        default:
                pgc_fail(c, PQerrorMessage(c->conn));
                return;
        }
}

/* Reads what arrived; when the query is complete, calls back. */
static void pgc_read_results(struct pgc *c)
{
        if (PQconsumeInput(c->conn) == 0) {
                pgc_fail(c, PQerrorMessage(c->conn));
                return;
        }
        while (!PQisBusy(c->conn)) {
                PGresult *r = PQgetResult(c->conn);
                if (r == NULL) {
                        c->st = PGC_IDLE;
                        pgc_wait(c, EV_READ | EV_PERSIST);
                        bool ok = true;
                        for (int i = 0; i < c->nres; i++) {
                                ExecStatusType s = PQresultStatus(c->res[i]);
                                if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
                                        const char *st =
                                            PQresultErrorField(c->res[i], PG_DIAG_SQLSTATE);
                                        snprintf(c->sqlstate, sizeof(c->sqlstate), "%s",
                                                 st != NULL ? st : "");
                                        pgc_set_error(c, PQresultErrorMessage(c->res[i]));
                                        ok = false;
                                        break;
                                }
                        }
                        pgc_cb cb = c->cb;
                        c->cb = NULL;
                        if (cb != NULL)
                                cb(c, ok);
                        return;
                }
                if (c->nres < MAX_RESULTS)
                        c->res[c->nres++] = r;
                else
                        PQclear(r);
        }
        if (PQstatus(c->conn) == CONNECTION_BAD)
                pgc_fail(c, PQerrorMessage(c->conn));
}

static void pgc_lost(struct pgc *c);

static void pgc_io(evutil_socket_t fd, short what, void *arg)
{
        struct pgc *c = arg;
        (void)fd;
        switch (c->st) {
        case PGC_CONNECTING:
                pgc_poll_connect(c);
                return;
        case PGC_BUSY:
                if (what & EV_WRITE) {
                        int f = PQflush(c->conn);
                        if (f < 0) {
                                pgc_fail(c, PQerrorMessage(c->conn));
                                return;
                        }
                        if (f == 1) {
                                pgc_wait(c, EV_READ | EV_WRITE);
                                return;
                        }
                        pgc_wait(c, EV_READ);
                }
                if (what & EV_READ) {
                        pgc_read_results(c);
                        return;
                }
                return;
        case PGC_IDLE:
                /* between checks: a close by the peer, or a notice */
                if (PQconsumeInput(c->conn) == 0 || PQstatus(c->conn) == CONNECTION_BAD) {
                        pgc_set_error(c, PQerrorMessage(c->conn));
                        pgc_close(c);
                        pgc_lost(c);
                        return;
                }
                for (PGnotify *n = PQnotifies(c->conn); n != NULL; n = PQnotifies(c->conn))
                        PQfreemem(n);
                return;
        case PGC_CLOSED:
                return;
        }
}

static void pgc_connect(struct pgc *c, const char *addr, const char *dbname, const char *user,
                        const char *password, pgc_cb cb)
{
        const struct target_conf *tc = conf(c->owner);
        char port[16];
        snprintf(port, sizeof(port), "%d", tc->port);
        const char *keys[12], *vals[12];
        int n = 0;
#define KV(k, v)                                                                                   \
        do {                                                                                       \
                if ((v) != NULL) {                                                                 \
                        keys[n] = (k);                                                             \
                        vals[n++] = (v);                                                           \
                }                                                                                  \
        } while (0)
        KV("host", tc->host);
        KV("hostaddr", addr);
        KV("port", port);
        KV("dbname", dbname);
        KV("user", user);
        KV("password", password);
        KV("sslmode", tc->sslmode != NULL ? tc->sslmode : "prefer");
        KV("gssencmode", "disable");
        KV("application_name", "hdms-healthd");
#undef KV
        keys[n] = vals[n] = NULL;
        c->cb = cb;
        c->err[0] = c->sqlstate[0] = '\0';
        c->conn = PQconnectStartParams(keys, vals, 0);
        if (c->conn == NULL) {
                pgc_fail(c, "out of memory");
                return;
        }
        if (PQstatus(c->conn) == CONNECTION_BAD) {
                pgc_fail(c, PQerrorMessage(c->conn));
                return;
        }
        c->st = PGC_CONNECTING;
        pgc_wait(c, EV_WRITE); /* as if the first poll said WRITING */
}

static void pgc_query(struct pgc *c, const char *sql, pgc_cb cb)
{
        pgc_clear_results(c);
        c->cb = cb;
        c->err[0] = c->sqlstate[0] = '\0';
        if (PQsendQuery(c->conn, sql) == 0) {
                pgc_fail(c, PQerrorMessage(c->conn));
                return;
        }
        c->st = PGC_BUSY;
        int f = PQflush(c->conn);
        if (f < 0) {
                pgc_fail(c, PQerrorMessage(c->conn));
                return;
        }
        pgc_wait(c, f == 1 ? (EV_READ | EV_WRITE) : EV_READ);
}

/* A PGresult as a plain table for the pure parsers.  cells point into the
 * result, so the table lives no longer than it. */
struct tab {
        struct sqltab t;
        const char **names;
        const char **cells;
};

static void tab_from(struct tab *tb, const PGresult *r)
{
        int rows = PQntuples(r), cols = PQnfields(r);
        tb->names = calloc((size_t)cols + 1, sizeof(char *));
        tb->cells = calloc((size_t)rows * (size_t)cols + 1, sizeof(char *));
        if (tb->names == NULL || tb->cells == NULL)
                abort();
        for (int j = 0; j < cols; j++)
                tb->names[j] = PQfname(r, j);
        for (int i = 0; i < rows; i++)
                for (int j = 0; j < cols; j++)
                        tb->cells[i * cols + j] = PQgetisnull(r, i, j) ? NULL : PQgetvalue(r, i, j);
        tb->t.nrows = rows;
        tb->t.ncols = cols;
        tb->t.names = tb->names;
        tb->t.cells = tb->cells;
}

static void tab_free(struct tab *tb)
{
        free(tb->names);
        free(tb->cells);
}

/* ---- reasons ---- */

/* A reason code from an error message (and SQLSTATE when there is one). */
static const char *classify(const char *msg, const char *sqlstate)
{
        static const struct {
                const char *needle;
                const char *reason;
        } table[] = {
            {"Connection refused", "connect_refused"},
            /* libpq's words for an answer that is not PostgreSQL's protocol */
            {"invalid response to SSL negotiation", "protocol_error"},
            {"invalid response to GSSAPI negotiation", "protocol_error"},
            {"expected authentication request from server", "protocol_error"},
            {"unexpected message from server", "protocol_error"},
            {"unexpected response from server", "protocol_error"},
            {"lost synchronization with server", "protocol_error"},
            {"message contents do not agree with length", "protocol_error"},
            {"arrived from server while idle", "protocol_error"},
            {"invalid message format", "protocol_error"},
            {"insufficient data in", "protocol_error"},
            {"extraneous data in", "protocol_error"},
            {"without prior row description", "protocol_error"},
            {"password authentication failed", "auth_failed"},
            {"SASL authentication failed", "auth_failed"},
            {"no password supplied", "auth_failed"},
            {"auth failed", "auth_failed"},
            {"no such user", "auth_failed"},
            {"not allowed", "auth_failed"},
            {"is not permitted to log in", "auth_failed"},
            {"permission denied for database", "auth_failed"},
            {"no pg_hba.conf entry", "auth_failed"},
            {"pg_hba.conf rejects", "auth_failed"},
            {"too many clients", "connections_exhausted"},
            {"remaining connection slots are reserved", "connections_exhausted"},
            {"no more connections allowed", "connections_exhausted"},
            {"the database system is starting up", "starting_up"},
            {"the database system is in recovery mode", "starting_up"},
            {"the database system is shutting down", "shutting_down"},
            {"server login has been failing", "database_down"},
            {"pgbouncer cannot connect to server", "database_down"},
            {"server conn crashed", "database_down"},
            {"no such database", "database_missing"},
            {"does not exist", "database_missing"},
            {"statement timeout", "timeout"},
            {"Connection reset", "connection_lost"},
            {"server closed the connection", "connection_lost"},
            {"no connection to the server", "connection_lost"},
            {"could not connect", "connect_failed"},
        };
        if (sqlstate != NULL && sqlstate[0] != '\0') {
                if (strcmp(sqlstate, "28P01") == 0 || strcmp(sqlstate, "28000") == 0)
                        return "auth_failed";
                if (strcmp(sqlstate, "53300") == 0)
                        return "connections_exhausted";
                if (strcmp(sqlstate, "57P03") == 0)
                        return "starting_up";
                if (strcmp(sqlstate, "57014") == 0)
                        return "timeout";
                if (strcmp(sqlstate, "3D000") == 0)
                        return "database_missing";
                if (strncmp(sqlstate, "57P0", 4) == 0)
                        return "shutting_down";
        }
        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
                if (strstr(msg, table[i].needle) != NULL)
                        return table[i].reason;
        return "server_error";
}

static void fail_from(struct pg_probe *p, struct pgc *c, const char *doing)
{
        p->broken = true;
        const char *reason = classify(c->err, c->sqlstate);
        if (strcmp(reason, "auth_failed") == 0)
                probe_result_worsen(&p->res, ST_FAIL, reason, "authentication failed (%s %s): %s",
                                    doing, c->role, c->err);
        else
                probe_result_worsen(&p->res, ST_FAIL, reason, "%s %s: %s", doing, c->role, c->err);
}

/* ---- check flow shared by both kinds ---- */

static void part_done(struct pg_probe *p)
{
        if (--p->pending > 0 || !p->in_check)
                return;
        p->in_check = false;
        p->phase = "idle";
        if (p->res.status == ST_FAIL && p->broken) {
                /* start clean next time: a failed session may be unusable.
                 * The admin console's connection, if it is still open, did
                 * its part: keep it (every new login costs a SCRAM
                 * exchange, a few ms of CPU in the loop). */
                pgc_close(&p->main);
        }
        if (p->admin.st != PGC_CLOSED && !pgc_usable(&p->admin))
                pgc_close(&p->admin);
        struct probe_result r = p->res;
        probe_done(p->env->target, &r);
}

/* ---- postgres ---- */

static long long num(const PGresult *r, int row, int col)
{
        if (row >= PQntuples(r) || col >= PQnfields(r) || PQgetisnull(r, row, col))
                return -1;
        return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static bool pid_in(const int *pids, size_t n, int pid)
{
        for (size_t i = 0; i < n; i++)
                if (pids[i] == pid)
                        return true;
        return false;
}

/* The bypass count: backends of app_user that are not PgBouncer's server
 * connections.  A backend counts only if it started before the latest
 * SHOW SERVERS snapshot and was a candidate in the previous check too, so
 * a server connection PgBouncer opened since its snapshot is not blamed. */
static void judge_bypass(struct pg_probe *p, const PGresult *r)
{
        double snap = 0;
        for (struct pg_probe *b = bouncers; b != NULL; b = b->next_bouncer)
                if (b->servers_at > 0 && (snap == 0 || b->servers_at < snap))
                        snap = b->servers_at;
        int rows = PQntuples(r);
        int *cand = calloc((size_t)rows + 1, sizeof(int));
        if (cand == NULL)
                abort();
        size_t ncand = 0;
        long long bypass = 0;
        char addrs[200] = "";
        for (int i = 0; i < rows && snap > 0; i++) {
                int pid = (int)num(r, i, 0);
                double started = PQgetisnull(r, i, 2) ? 0 : strtod(PQgetvalue(r, i, 2), NULL);
                bool pooled = false;
                for (struct pg_probe *b = bouncers; b != NULL; b = b->next_bouncer)
                        if (pid_in(b->server_pids, b->nserver_pids, pid))
                                pooled = true;
                if (pooled || started >= snap)
                        continue;
                cand[ncand++] = pid;
                if (!pid_in(p->prev_pids, p->nprev, pid))
                        continue;
                bypass++;
                const char *addr = PQgetisnull(r, i, 1) ? "local socket" : PQgetvalue(r, i, 1);
                if (strstr(addrs, addr) == NULL && strlen(addrs) + strlen(addr) + 3 < sizeof(addrs))
                        snprintf(addrs + strlen(addrs), sizeof(addrs) - strlen(addrs), "%s%s",
                                 addrs[0] ? ", " : "", addr);
        }
        free(p->prev_pids);
        p->prev_pids = cand;
        p->nprev = ncand;
        if (snap == 0) {
                p->res.bypass = -1; /* no PgBouncer snapshot: cannot tell */
                return;
        }
        p->res.bypass = bypass;
        if (bypass > 0)
                probe_result_worsen(&p->res, ST_WARN, "pooler_bypass",
                                    "%lld backend%s of role %s bypass PgBouncer, from %s", bypass,
                                    bypass == 1 ? "" : "s", conf(p)->app_user, addrs);
}

static void pg_query_done(struct pgc *c, bool ok)
{
        struct pg_probe *p = c->owner;
        if (!ok) {
                fail_from(p, c, "query on");
                part_done(p);
                return;
        }
        /* results: SET, the figures, the app role's backends */
        const PGresult *f = c->nres >= 2 ? c->res[1] : NULL;
        if (f == NULL || PQntuples(f) != 1 || PQnfields(f) < 9 || num(f, 0, 0) != 1) {
                p->broken = true;
                probe_result_worsen(&p->res, ST_FAIL, "protocol_error",
                                    "the check query returned an unexpected result");
                part_done(p);
                return;
        }
        struct probe_result *r = &p->res;
        const struct target_conf *tc = conf(p);
        snprintf(r->server_version, sizeof(r->server_version), "%s", PQgetvalue(f, 0, 1));
        snprintf(r->server_id, sizeof(r->server_id), "%s", PQgetvalue(f, 0, 2));
        long long used = num(f, 0, 3), max = num(f, 0, 4), reserved = num(f, 0, 5);
        r->connections = used;
        r->max_connections = max;
        r->in_recovery = strcmp(PQgetvalue(f, 0, 6), "t") == 0;
        long long usable = max - (reserved > 0 ? reserved : 0);
        r->usable_connections = usable;
        if (usable > 0 && used >= usable)
                probe_result_worsen(r, ST_FAIL, "connections_exhausted",
                                    "%lld of %lld usable connections in use: new clients are "
                                    "refused",
                                    used, usable);
        else if (usable > 0 && (double)used > tc->connections_warn * (double)usable)
                probe_result_worsen(r, ST_WARN, "connections_high",
                                    "%lld of %lld usable connections in use (warn above %.0f%%)",
                                    used, usable, tc->connections_warn * 100.0);
        if (r->in_recovery && tc->expect_primary)
                probe_result_worsen(r, ST_WARN, "in_recovery",
                                    "the server is in recovery (a standby) but a primary was "
                                    "expected");
        if (c->nres >= 3 && tc->app_user != NULL)
                judge_bypass(p, c->res[2]);
        pgc_clear_results(c);
        part_done(p);
}

static void pg_run_query(struct pg_probe *p)
{
        const struct target_conf *tc = conf(p);
        char *app = tc->app_user != NULL
                        ? PQescapeLiteral(p->main.conn, tc->app_user, strlen(tc->app_user))
                        : NULL;
        char sql[2048];
        /* One Query message, one round trip.  SET LOCAL holds only for this
         * implicit transaction. */
        snprintf(sql, sizeof(sql),
                 "SET LOCAL statement_timeout = '%lldms';"
                 "SELECT 1, current_setting('server_version'),"
                 " extract(epoch from pg_postmaster_start_time())::text,"
                 " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),"
                 " current_setting('max_connections')::int,"
                 " current_setting('superuser_reserved_connections')::int"
                 "   + coalesce(nullif(current_setting('reserved_connections', true), '')::int, 0),"
                 " pg_is_in_recovery(), pg_backend_pid(), now();"
                 "SELECT pid, host(client_addr), extract(epoch from backend_start)"
                 " FROM pg_stat_activity WHERE backend_type = 'client backend'"
                 " AND pid <> pg_backend_pid() AND usename = %s",
                 (long long)tc->timeout_ms, app != NULL ? app : "NULL");
        if (app != NULL)
                PQfreemem(app);
        p->phase = "waiting for the check query";
        pgc_query(&p->main, sql, pg_query_done);
}

/* ---- pgbouncer ---- */

static const char *const admin_cmds[] = {"SHOW DATABASES", "SHOW POOLS", "SHOW SERVERS",
                                         "SHOW LISTS", "SHOW CONFIG"};
#define N_ADMIN ((int)(sizeof(admin_cmds) / sizeof(admin_cmds[0])))

static void copy_str(char *dst, size_t size, const char *src)
{
        size_t n = strnlen(src, size - 1);
        memcpy(dst, src, n);
        dst[n] = '\0';
}

static void judge_pools(struct pg_probe *p, const struct sqltab *t)
{
        struct pgb_pool pools[64];
        size_t n = 0;
        char err[PGB_ERR_MAX];
        if (pgb_parse_pools(t, pools, 64, &n, err, sizeof(err)) < 0) {
                probe_result_worsen(&p->res, ST_WARN, "admin_unreadable", "SHOW POOLS: %s", err);
                return;
        }
        const struct target_conf *tc = conf(p);
        double limit = (double)tc->maxwait_warn_ms / 1000.0;
        struct probe_result *r = &p->res;
        for (size_t i = 0; i < n; i++) {
                const struct pgb_pool *pl = &pools[i];
                if (r->npools < MAX_POOLS) {
                        struct pool_wait *w = &r->pools[r->npools++];
                        copy_str(w->database, sizeof(w->database), pl->database);
                        copy_str(w->user, sizeof(w->user), pl->user);
                        w->waiting = pl->cl_waiting;
                        w->maxwait_s = pl->maxwait_s;
                }
                if (pl->cl_waiting > 0 && pl->maxwait_s > limit)
                        probe_result_worsen(r, ST_WARN, "clients_waiting",
                                            "pool %s/%s: %ld client%s waiting, the longest "
                                            "%.1fs (warn above %.1fs)",
                                            pl->database, pl->user, pl->cl_waiting,
                                            pl->cl_waiting == 1 ? "" : "s", pl->maxwait_s, limit);
        }
}

static void judge_config(struct pg_probe *p, const struct sqltab *t, long used_clients)
{
        struct pgb_config cf;
        char err[PGB_ERR_MAX];
        if (pgb_parse_config(t, &cf, err, sizeof(err)) < 0) {
                probe_result_worsen(&p->res, ST_WARN, "admin_unreadable", "SHOW CONFIG: %s", err);
                return;
        }
        const struct target_conf *tc = conf(p);
        struct probe_result *r = &p->res;
        r->max_client_conn = cf.max_client_conn;
        if (cf.pool_mode[0] != '\0' && strcmp(cf.pool_mode, "transaction") != 0)
                probe_result_worsen(r, ST_WARN, "pool_mode",
                                    "pool_mode is %s, the services expect transaction",
                                    cf.pool_mode);
        if (cf.default_pool_size >= 0 &&
            (cf.default_pool_size < tc->pool_size_min || cf.default_pool_size > tc->pool_size_max))
                probe_result_worsen(r, ST_WARN, "pool_size",
                                    "default_pool_size %ld is outside %ld-%ld",
                                    cf.default_pool_size, tc->pool_size_min, tc->pool_size_max);
        if (cf.max_client_conn > 0 && used_clients >= 0 &&
            (double)used_clients > tc->clients_warn * (double)cf.max_client_conn)
                probe_result_worsen(r, ST_WARN, "clients_headroom",
                                    "%ld clients of max_client_conn %ld", used_clients,
                                    cf.max_client_conn);
}

static void admin_next(struct pg_probe *p);

static void admin_done(struct pgc *c, bool ok)
{
        struct pg_probe *p = c->owner;
        if (!ok) {
                /* the pooler may still serve; the admin side is a warning */
                const char *reason = classify(c->err, c->sqlstate);
                probe_result_worsen(
                    &p->res, ST_WARN,
                    strcmp(reason, "auth_failed") == 0 ? "admin_auth_failed" : "admin_unavailable",
                    "%s on the admin console: %s", admin_cmds[p->admin_step], c->err);
                part_done(p);
                return;
        }
        const PGresult *r = c->nres > 0 ? c->res[0] : NULL;
        struct tab tb;
        if (r != NULL) {
                tab_from(&tb, r);
                switch (p->admin_step) {
                case 0: { /* SHOW DATABASES: is the app database paused? */
                        int cn = PQfnumber(r, "name"), cp = PQfnumber(r, "paused");
                        p->paused = false;
                        for (int i = 0; cn >= 0 && cp >= 0 && i < PQntuples(r); i++)
                                if (strcmp(PQgetvalue(r, i, cn), conf(p)->dbname) == 0 &&
                                    strcmp(PQgetvalue(r, i, cp), "1") == 0)
                                        p->paused = true;
                        break;
                }
                case 1:
                        judge_pools(p, &tb.t);
                        break;
                case 2: {
                        size_t n = 0;
                        int *pids = calloc(MAX_PIDS, sizeof(int));
                        if (pids == NULL)
                                abort();
                        char err[PGB_ERR_MAX];
                        if (pgb_parse_servers(&tb.t, pids, MAX_PIDS, &n, err, sizeof(err)) >= 0) {
                                free(p->server_pids);
                                p->server_pids = pids;
                                p->nserver_pids = n;
                                p->servers_at = wall_now();
                        } else {
                                free(pids);
                        }
                        break;
                }
                case 3: {
                        struct pgb_lists l;
                        char err[PGB_ERR_MAX];
                        p->res.clients =
                            pgb_parse_lists(&tb.t, &l, err, sizeof(err)) == 0 ? l.used_clients : -1;
                        break;
                }
                case 4:
                        judge_config(p, &tb.t, p->res.clients);
                        break;
                }
                tab_free(&tb);
        }
        pgc_clear_results(c);
        p->admin_step++;
        if (p->admin_step == 1 && p->pooler_pending) {
                p->admin_parked = true; /* resumed by pooler_finished() */
                return;
        }
        admin_next(p);
}

static void admin_next(struct pg_probe *p)
{
        if (p->admin_step >= N_ADMIN || !p->in_check) {
                part_done(p);
                return;
        }
        pgc_query(&p->admin, admin_cmds[p->admin_step], admin_done);
}

static void admin_connected(struct pgc *c, bool ok)
{
        struct pg_probe *p = c->owner;
        if (!ok) {
                const char *reason = classify(c->err, c->sqlstate);
                probe_result_worsen(&p->res, ST_WARN,
                                    strcmp(reason, "auth_failed") == 0 ? "admin_auth_failed"
                                                                       : "admin_unavailable",
                                    "cannot use the admin console: %s", c->err);
                part_done(p);
                return;
        }
        p->admin_step = 0;
        admin_next(p);
}

/* The pooled query ended (or never started): the admin console may go on. */
static void pooler_finished(struct pg_probe *p)
{
        p->pooler_pending = false;
        if (p->admin_parked && p->in_check) {
                p->admin_parked = false;
                admin_next(p);
        }
}

static void pooler_query_done(struct pgc *c, bool ok)
{
        struct pg_probe *p = c->owner;
        if (!ok)
                fail_from(p, c, "query through");
        else if (c->nres < 2 || PQntuples(c->res[1]) != 1 || num(c->res[1], 0, 0) != 1) {
                p->broken = true;
                probe_result_worsen(&p->res, ST_FAIL, "protocol_error",
                                    "SELECT 1 through the pooler returned something else");
        }
        pgc_clear_results(c);
        part_done(p);
        pooler_finished(p);
}

static void pooler_run_query(struct pg_probe *p)
{
        char sql[128];
        snprintf(sql, sizeof(sql), "SET LOCAL statement_timeout = '%lldms'; SELECT 1",
                 (long long)conf(p)->timeout_ms);
        p->phase = "waiting for SELECT 1 through the pooler";
        pgc_query(&p->main, sql, pooler_query_done);
}

/* ---- both kinds ---- */

static void admin_start(struct pg_probe *p)
{
        const struct target_conf *tc = conf(p);
        if (pgc_usable(&p->admin)) {
                admin_connected(&p->admin, true);
                return;
        }
        pgc_close(&p->admin);
        pgc_connect(&p->admin, p->addr, "pgbouncer", tc->admin_user, tc->admin_password,
                    admin_connected);
}

static void main_connected(struct pgc *c, bool ok)
{
        struct pg_probe *p = c->owner;
        if (p->admin_deferred && p->in_check) {
                /* the pooler's login is over: now the admin console's */
                p->admin_deferred = false;
                admin_start(p);
                if (!p->in_check)
                        return;
        }
        if (!ok) {
                fail_from(p, c, "cannot connect to");
                part_done(p);
                if (p->bouncer)
                        pooler_finished(p);
                return;
        }
        if (p->bouncer)
                pooler_run_query(p);
        else
                pg_run_query(p);
}

static void pgc_lost(struct pgc *c)
{
        struct pg_probe *p = c->owner;
        if (c == &p->admin)
                return; /* the next check reconnects; the pooler connection decides */
        char msg[400];
        snprintf(msg, sizeof(msg), "connection to %s closed: %s", c->role,
                 c->err[0] ? c->err : "closed by the server");
        pgc_close(&p->admin);
        probe_lost(p->env->target, "connection_lost", msg);
}

static void *pp_create_kind(struct probe_env *env, bool bouncer)
{
        struct pg_probe *p = calloc(1, sizeof(*p));
        if (p == NULL)
                abort();
        p->env = env;
        p->bouncer = bouncer;
        p->main.owner = p->admin.owner = p;
        p->main.role = bouncer ? "the pooler" : "PostgreSQL";
        p->admin.role = "the admin console";
        p->phase = "idle";
        if (bouncer) {
                p->next_bouncer = bouncers;
                bouncers = p;
        }
        return p;
}

static void *pp_create_pg(struct probe_env *env)
{
        return pp_create_kind(env, false);
}

static void *pp_create_pgb(struct probe_env *env)
{
        return pp_create_kind(env, true);
}

static void pp_start(void *vp, const char *addr)
{
        struct pg_probe *p = vp;
        const struct target_conf *tc = conf(p);
        probe_result_init(&p->res);
        p->in_check = true;
        p->paused = false;
        p->broken = false;
        p->pooler_pending = p->bouncer;
        p->admin_parked = false;
        p->admin_deferred = false;
        if (addr != NULL)
                snprintf(p->addr, sizeof(p->addr), "%s", addr);
        p->pending = p->bouncer ? 2 : 1;
        if (pgc_usable(&p->main)) {
                if (p->bouncer)
                        pooler_run_query(p);
                else
                        pg_run_query(p);
        } else {
                p->phase = "connecting";
                pgc_close(&p->main);
                pgc_connect(&p->main, p->addr, tc->dbname, tc->user, tc->password, main_connected);
        }
        if (!p->bouncer || !p->in_check)
                return;
        if (!pgc_usable(&p->admin) && p->main.st == PGC_CONNECTING) {
                /* two SCRAM logins in the same loop turn would hold the loop
                 * twice as long: the admin console logs in after the pooler */
                p->admin_deferred = true;
                return;
        }
        admin_start(p);
}

static bool pp_connected(void *vp)
{
        struct pg_probe *p = vp;
        return p->main.st == PGC_IDLE && p->addr[0] != '\0';
}

static const char *pp_phase(void *vp)
{
        struct pg_probe *p = vp;
        if (p->bouncer && p->paused)
                return "waiting for SELECT 1 through the pooler (the admin console says the "
                       "database is paused)";
        return p->phase;
}

static const char *pp_timeout_reason(void *vp)
{
        struct pg_probe *p = vp;
        return p->bouncer && p->paused ? "pooler_paused" : "timeout";
}

/* Ends the check in flight without a callback and closes its connections;
 * `keep_admin` keeps an idle, working admin console connection. */
static void pp_close_all(struct pg_probe *p, bool keep_admin)
{
        p->in_check = false;
        p->phase = "idle";
        p->admin_deferred = false;
        p->main.cb = p->admin.cb = NULL;
        pgc_close(&p->main);
        if (!keep_admin)
                pgc_close(&p->admin);
}

/* The deadline: the check's connections are closed, except an admin
 * console connection that is idle (its part done, or parked until the
 * pooler answers): it works, and keeping it saves a login per retry. */
static void pp_abort(void *vp)
{
        struct pg_probe *p = vp;
        pp_close_all(p, p->bouncer && pgc_usable(&p->admin));
}

static void pp_destroy(void *vp)
{
        struct pg_probe *p = vp;
        if (p == NULL)
                return;
        pp_close_all(p, false);
        for (struct pg_probe **pp = &bouncers; *pp != NULL; pp = &(*pp)->next_bouncer)
                if (*pp == p) {
                        *pp = p->next_bouncer;
                        break;
                }
        free(p->prev_pids);
        free(p->server_pids);
        free(p);
}

const struct probe_ops probe_postgres_ops = {
    .create = pp_create_pg,
    .start = pp_start,
    .connected = pp_connected,
    .phase = pp_phase,
    .timeout_reason = pp_timeout_reason,
    .abort = pp_abort,
    .destroy = pp_destroy,
};

const struct probe_ops probe_pgbouncer_ops = {
    .create = pp_create_pgb,
    .start = pp_start,
    .connected = pp_connected,
    .phase = pp_phase,
    .timeout_reason = pp_timeout_reason,
    .abort = pp_abort,
    .destroy = pp_destroy,
};
