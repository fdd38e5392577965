/* The pgbouncer probe: two persistent connections (include/pgconn.h) run
 * side by side in one check.
 *
 *   the pooler:        SET LOCAL statement_timeout; SELECT 1   (the app database)
 *   the admin console: SHOW POOLS, LISTS, [SERVERS, CONFIG]
 *                      (one command per Query, simple protocol only)
 *
 * The pooled query decides pass or fail; the admin console only warns (the
 * pooler may serve while its console refuses us).  Each half's progress is
 * one enum; the check ends when both are DONE, through maybe_finish().
 *
 * SHOW POOLS (clients waiting) and SHOW LISTS (clients in use, those still
 * logging in included) change from one second to the next and are read at
 * every check.  SHOW POOLS must not count the probe's own client as
 * waiting: with the console connected at the start of the check, it is
 * sent before the pooled query, and PgBouncer serves its sockets in the
 * order their data arrived, so the pool is read while the probe's client
 * is idle; the console's commands then run beside the pooled query instead
 * of after it.  Otherwise (the console logs in first) SHOW POOLS waits for
 * the pooled query to end.  SHOW SERVERS (the bypass check's snapshot, a
 * row per server connection) and SHOW CONFIG (pool mode and sizes, some
 * eighty rows that rarely change) are read every PGB_SLOW_EVERY_S, and at
 * once on a new admin connection; between reads their last figures are
 * judged again, so a warning they raise holds at every check.  SHOW
 * DATABASES (a pause) only explains a pooled query that does not answer,
 * so it is read only when the pooled query has not answered within half
 * the timeout.  A round trip that waits for another is a loop turn of its
 * own, and a loop turn is most of what an idle check costs. */
#include "clock.h"
#include "pgb_show.h"
#include "pgconn.h"
#include "log.h"
#include "probe.h"
#include "probe_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum pooler_step { POOLER_IDLE, POOLER_LOGIN, POOLER_QUERY, POOLER_DONE };
enum admin_step { ADMIN_IDLE, ADMIN_LOGIN, ADMIN_SHOW, ADMIN_PARKED, ADMIN_DONE };

static const char *const admin_cmds[] = {"SHOW DATABASES", "SHOW POOLS", "SHOW SERVERS",
                                         "SHOW LISTS", "SHOW CONFIG"};
enum { SHOW_DATABASES, SHOW_POOLS, SHOW_SERVERS, SHOW_LISTS, SHOW_CONFIG, N_SHOWS };
/* Seconds between reads of the slow figures (SHOW SERVERS, CONFIG). */
#define PGB_SLOW_EVERY_S 10.0

static bool show_is_slow(int show)
{
        return show == SHOW_SERVERS || show == SHOW_CONFIG;
}

struct pgb_probe {
        struct probe_env *env;
        struct pgconn *pooler;
        struct pgconn *admin;
        enum pooler_step pooler_step;
        enum admin_step admin_step;
        int show;                  /* the SHOW in flight or next (ADMIN_SHOW, ADMIN_PARKED) */
        unsigned shows_done;       /* this check's SHOWs answered, a bit per SHOW_* */
        bool want_databases;       /* the pooled query is slow: read SHOW DATABASES */
        struct event *slow_pooled; /* half the timeout after the pooled query */
        bool slow_due;             /* this check reads the slow figures too */
        bool pools_first;          /* SHOW POOLS goes before the pooled query */
        bool settings_judged;      /* judge_settings() has run in this check */
        double slow_at;            /* mono_now() of their last complete read, 0 = never */
        struct pgb_config cf;      /* SHOW CONFIG as last read */
        bool cf_ok;
        long used_clients; /* SHOW LISTS as last read, -1 = unknown */
        bool paused;       /* SHOW DATABASES says the app database is paused */
        bool pools_noted;
        char addr[64];
        struct probe_result res;
        /* the latest SHOW SERVERS: PgBouncer's backends, for the bypass check */
        int *server_pids;
        size_t nserver_pids;
        double servers_at; /* wall clock of that snapshot, 0 = none */
        struct pgb_probe *next;
};

/* Live pgbouncer probes, whose SHOW SERVERS tell pooled backends apart. */
static struct pgb_probe *bouncers;

double pgbouncer_servers_snapshot(void)
{
        double snap = 0;
        for (struct pgb_probe *b = bouncers; b != NULL; b = b->next)
                if (b->servers_at > 0 && (snap == 0 || b->servers_at < snap))
                        snap = b->servers_at;
        return snap;
}

bool pgbouncer_pid_pooled(int pid)
{
        for (struct pgb_probe *b = bouncers; b != NULL; b = b->next)
                for (size_t i = 0; i < b->nserver_pids; i++)
                        if (b->server_pids[i] == pid)
                                return true;
        return false;
}

static const struct target_conf *conf(const struct pgb_probe *p)
{
        return p->env->conf;
}

static bool in_check(const struct pgb_probe *p)
{
        return p->pooler_step != POOLER_IDLE || p->admin_step != ADMIN_IDLE;
}

/* Ends the check once both halves are done. */
static void maybe_finish(struct pgb_probe *p)
{
        if (p->pooler_step != POOLER_DONE || p->admin_step != ADMIN_DONE)
                return;
        p->pooler_step = POOLER_IDLE;
        p->admin_step = ADMIN_IDLE;
        evtimer_del(p->slow_pooled);
        /* PgBouncer's certificate, as the pooler connection (the services'
         * way in) received it */
        probe_judge_cert(&p->res, pgconn_cert_not_after(p->pooler), conf(p)->cert_expiry_warn_ms,
                         wall_now());
        struct probe_result r = p->res;
        probe_done(p->env->target, &r);
}

/* ---- the admin console ---- */

static void admin_warn(struct pgb_probe *p, const char *what)
{
        const char *reason = pgconn_reason(p->admin);
        probe_result_worsen(&p->res, ST_WARN,
                            strcmp(reason, "auth_failed") == 0 ? "admin_auth_failed"
                                                               : "admin_unavailable",
                            "%s on the admin console: %s", what, pgconn_error(p->admin));
        if (!pgconn_usable(p->admin))
                pgconn_close(p->admin);
        p->slow_at = 0;
        p->admin_step = ADMIN_DONE;
        maybe_finish(p);
}

/* A PGresult as a plain table for the pure parsers (include/pgb_show.h);
 * the cells point into the result, which outlives the table. */
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

static void copy_str(char *dst, size_t size, const char *src)
{
        size_t n = strnlen(src, size - 1);
        memcpy(dst, src, n);
        dst[n] = '\0';
}

static void judge_databases(struct pgb_probe *p, const PGresult *r)
{
        int cn = PQfnumber(r, "name"), cp = PQfnumber(r, "paused");
        p->paused = false;
        for (int i = 0; cn >= 0 && cp >= 0 && i < PQntuples(r); i++)
                if (strcmp(PQgetvalue(r, i, cn), conf(p)->dbname) == 0 &&
                    strcmp(PQgetvalue(r, i, cp), "1") == 0)
                        p->paused = true;
}

/* Every pool is judged; the first MAX_POOLS are kept for /metrics. */
static void judge_pools(struct pgb_probe *p, const struct sqltab *t)
{
        size_t max = t->nrows > 0 ? (size_t)t->nrows : 1, n = 0;
        struct pgb_pool *pools = calloc(max, sizeof(*pools));
        if (pools == NULL)
                abort();
        char err[PGB_ERR_MAX];
        if (pgb_parse_pools(t, pools, max, &n, err, sizeof(err)) < 0) {
                probe_result_worsen(&p->res, ST_WARN, "admin_unreadable", "SHOW POOLS: %s", err);
                free(pools);
                return;
        }
        const struct target_conf *tc = conf(p);
        double limit = (double)tc->maxwait_warn_ms / 1000.0;
        struct probe_result *r = &p->res;
        if (n > MAX_POOLS && !p->pools_noted) {
                p->pools_noted = true;
                log_msg(LOG_WARN, tc->name,
                        "PgBouncer lists %zu pools: all are judged, the first %d are in /metrics "
                        "and /status",
                        n, MAX_POOLS);
        }
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
        free(pools);
}

static void judge_servers(struct pgb_probe *p, const struct sqltab *t)
{
        size_t max = t->nrows > 0 ? (size_t)t->nrows : 1, n = 0;
        int *pids = calloc(max, sizeof(int));
        if (pids == NULL)
                abort();
        char err[PGB_ERR_MAX];
        if (pgb_parse_servers(t, pids, max, &n, err, sizeof(err)) < 0) {
                free(pids);
                return;
        }
        free(p->server_pids);
        p->server_pids = pids;
        p->nserver_pids = n;
        p->servers_at = wall_now();
}

static void read_config(struct pgb_probe *p, const struct sqltab *t)
{
        char err[PGB_ERR_MAX];
        p->cf_ok = pgb_parse_config(t, &p->cf, err, sizeof(err)) == 0;
        if (!p->cf_ok) {
                probe_result_worsen(&p->res, ST_WARN, "admin_unreadable", "SHOW CONFIG: %s", err);
                p->slow_at = 0; /* read it again at the next check */
        }
}

/* The settings and the clients in use, from the latest SHOW CONFIG and
 * SHOW LISTS (this check's or an earlier one's). */
static void judge_settings(struct pgb_probe *p)
{
        const struct target_conf *tc = conf(p);
        struct probe_result *r = &p->res;
        r->clients = p->used_clients;
        if (!p->cf_ok)
                return;
        const struct pgb_config *cf = &p->cf;
        r->max_client_conn = cf->max_client_conn;
        if (cf->pool_mode[0] != '\0' && strcmp(cf->pool_mode, "transaction") != 0)
                probe_result_worsen(r, ST_WARN, "pool_mode",
                                    "pool_mode is %s, the services expect transaction",
                                    cf->pool_mode);
        if (cf->default_pool_size >= 0 && (cf->default_pool_size < tc->pool_size_min ||
                                           cf->default_pool_size > tc->pool_size_max))
                probe_result_worsen(r, ST_WARN, "pool_size",
                                    "default_pool_size %ld is outside %ld-%ld",
                                    cf->default_pool_size, tc->pool_size_min, tc->pool_size_max);
        if (cf->max_client_conn > 0 && p->used_clients >= 0 &&
            (double)p->used_clients > tc->clients_warn * (double)cf->max_client_conn)
                probe_result_worsen(r, ST_WARN, "clients_headroom",
                                    "%ld clients of max_client_conn %ld", p->used_clients,
                                    cf->max_client_conn);
}

static void admin_run(struct pgb_probe *p);

static void show_done(struct pgconn *c, bool ok, void *arg)
{
        struct pgb_probe *p = arg;
        if (!ok) {
                admin_warn(p, admin_cmds[p->show]);
                return;
        }
        const PGresult *r = pgconn_result(c, 0);
        struct tab tb;
        tab_from(&tb, r);
        switch (p->show) {
        case SHOW_DATABASES:
                judge_databases(p, r);
                break;
        case SHOW_POOLS:
                judge_pools(p, &tb.t);
                break;
        case SHOW_SERVERS:
                judge_servers(p, &tb.t);
                break;
        case SHOW_LISTS: {
                struct pgb_lists l;
                char err[PGB_ERR_MAX];
                p->used_clients =
                    pgb_parse_lists(&tb.t, &l, err, sizeof(err)) == 0 ? l.used_clients : -1;
                break;
        }
        case SHOW_CONFIG:
                read_config(p, &tb.t);
                break;
        }
        tab_free(&tb);
        p->shows_done |= 1u << p->show;
        admin_run(p);
}

/* The next SHOW of this check, or -1 to park until the pooled query ends,
 * or N_SHOWS when the console's part is done. */
static int next_show(const struct pgb_probe *p)
{
        static const int order[] = {SHOW_LISTS, SHOW_SERVERS, SHOW_CONFIG};
        if (p->pools_first && !(p->shows_done & (1u << SHOW_POOLS)))
                return SHOW_POOLS;
        if (p->want_databases && !(p->shows_done & (1u << SHOW_DATABASES)))
                return SHOW_DATABASES;
        for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
                if (!(p->shows_done & (1u << order[i])) && (!show_is_slow(order[i]) || p->slow_due))
                        return order[i];
        if (p->shows_done & (1u << SHOW_POOLS))
                return N_SHOWS;
        return p->pooler_step == POOLER_DONE ? SHOW_POOLS : -1;
}

static void admin_run(struct pgb_probe *p)
{
        int show = next_show(p);
        if (show < 0) {
                p->show = SHOW_POOLS;
                p->admin_step = ADMIN_PARKED; /* resumed by pooler_done() or on_slow_pooled() */
                return;
        }
        if (show >= N_SHOWS) {
                if (p->slow_due && p->cf_ok)
                        p->slow_at = mono_now();
                if (!p->settings_judged)
                        judge_settings(p);
                p->settings_judged = true;
                p->admin_step = ADMIN_DONE;
                maybe_finish(p);
                return;
        }
        p->show = show;
        p->admin_step = ADMIN_SHOW;
        pgconn_query(p->admin, admin_cmds[show], 1, show_done);
}

/* The pooled query has not answered within half the timeout: whether the
 * database is paused tells the timeout that may follow (pooler_paused). */
static void on_slow_pooled(evutil_socket_t fd, short what, void *arg)
{
        struct pgb_probe *p = arg;
        (void)fd;
        (void)what;
        if (p->pooler_step != POOLER_QUERY)
                return;
        p->want_databases = true;
        if (p->admin_step == ADMIN_PARKED)
                admin_run(p);
        else if (p->admin_step == ADMIN_DONE && p->settings_judged && pgconn_usable(p->admin))
                admin_run(p); /* SHOW POOLS went first, and its part ended well */
        /* a SHOW in flight or a login: admin_run() asks for it next */
}

static void admin_connected(struct pgconn *c, bool ok, void *arg)
{
        struct pgb_probe *p = arg;
        (void)c;
        if (!ok) {
                admin_warn(p, "cannot log in");
                return;
        }
        admin_run(p);
}

/* Called before the pooled half starts: a connected console sends SHOW
 * POOLS now, ahead of the pooled query (see the top of this file). */
static void admin_start(struct pgb_probe *p)
{
        const struct target_conf *tc = conf(p);
        p->shows_done = 0;
        p->want_databases = false;
        p->settings_judged = false;
        p->pools_first = pgconn_usable(p->admin);
        p->show = p->pools_first ? SHOW_POOLS : SHOW_LISTS;
        if (p->pools_first) {
                p->slow_due = p->slow_at == 0 || mono_now() - p->slow_at >= PGB_SLOW_EVERY_S;
                admin_run(p);
                return;
        }
        p->slow_due = true; /* a new console connection: read everything */
        p->admin_step = ADMIN_LOGIN;
        struct pgconn_params cp =
            pgconn_params_for(tc, p->addr, "pgbouncer", tc->admin_user, tc->admin_password);
        pgconn_connect(p->admin, &cp, admin_connected);
}

/* ---- the pooler ---- */

/* The pooled half has ended; a parked admin console goes on. */
static void pooler_done(struct pgb_probe *p)
{
        p->pooler_step = POOLER_DONE;
        evtimer_del(p->slow_pooled);
        if (p->admin_step == ADMIN_PARKED)
                admin_run(p);
        else
                maybe_finish(p);
}

static void pooler_fail(struct pgb_probe *p, const char *doing)
{
        pgconn_fail_result(p->pooler, &p->res, doing);
        /* a failed session may be unusable: the next check starts clean,
         * unless it is known to be sound */
        if (!pgconn_kept_after_error(p->pooler))
                pgconn_close(p->pooler);
        pooler_done(p);
}

static void select_done(struct pgconn *c, bool ok, void *arg)
{
        struct pgb_probe *p = arg;
        if (!ok) {
                pooler_fail(p, "query through");
                return;
        }
        const PGresult *r = pgconn_result(c, 1);
        if (PQntuples(r) != 1 || pgconn_num(r, 0, 0) != 1) {
                probe_result_worsen(&p->res, ST_FAIL, "protocol_error",
                                    "SELECT 1 through the pooler returned something else");
                pgconn_close(p->pooler);
        }
        pooler_done(p);
}

static void pooler_query(struct pgb_probe *p)
{
        char sql[128];
        snprintf(sql, sizeof(sql), "SET LOCAL statement_timeout = '%lldms'; SELECT 1",
                 (long long)conf(p)->timeout_ms);
        p->pooler_step = POOLER_QUERY;
        int64_t half = conf(p)->timeout_ms / 2;
        struct timeval tv = {.tv_sec = (time_t)(half / 1000),
                             .tv_usec = (suseconds_t)(half % 1000 * 1000)};
        evtimer_add(p->slow_pooled, &tv);
        pgconn_query(p->pooler, sql, 2, select_done);
}

static void pooler_connected(struct pgconn *c, bool ok, void *arg)
{
        struct pgb_probe *p = arg;
        (void)c;
        if (!ok) {
                pooler_fail(p, "cannot connect to");
                return;
        }
        pooler_query(p);
}

/* A close by the peer of an idle connection.  The admin console's only
 * matters to the next check.  The pooler's is an outage; when it comes
 * while the admin half of a check is still in flight, the check ends now
 * with it (it would otherwise wait for its deadline). */
static void pooler_lost(struct pgconn *c, void *arg)
{
        struct pgb_probe *p = arg;
        char msg[400];
        pgconn_lost_output(c, msg, sizeof(msg));
        pgconn_close(p->admin);
        if (in_check(p)) {
                probe_result_worsen(&p->res, ST_FAIL, "connection_lost", "%s", msg);
                p->pooler_step = POOLER_DONE;
                p->admin_step = ADMIN_DONE;
                maybe_finish(p);
                return;
        }
        probe_lost(p->env->target, "connection_lost", msg);
}

static void admin_lost(struct pgconn *c, void *arg)
{
        (void)c;
        (void)arg;
}

/* ---- the probe ---- */

static void *create(struct probe_env *env)
{
        struct pgb_probe *p = calloc(1, sizeof(*p));
        if (p == NULL)
                abort();
        p->env = env;
        p->pooler = pgconn_new(env->base, "the pooler", env->conf->name, pooler_lost, p);
        p->admin = pgconn_new(env->base, "the admin console", env->conf->name, admin_lost, p);
        p->slow_pooled = evtimer_new(env->base, on_slow_pooled, p);
        if (p->slow_pooled == NULL)
                abort();
        p->used_clients = -1;
        p->next = bouncers;
        bouncers = p;
        return p;
}

static void start(void *vp, const char *addr)
{
        struct pgb_probe *p = vp;
        const struct target_conf *tc = conf(p);
        probe_result_init(&p->res);
        p->paused = false;
        if (addr != NULL)
                snprintf(p->addr, sizeof(p->addr), "%s", addr);
        /* both halves count as under way before either can call back, so
         * that a pooled half failing at once does not end the check; the
         * console first, so that its SHOW POOLS is ahead of the pooled
         * query */
        p->pooler_step = POOLER_LOGIN;
        p->admin_step = ADMIN_LOGIN;
        admin_start(p);
        if (pgconn_usable(p->pooler)) {
                pooler_query(p);
        } else {
                struct pgconn_params cp =
                    pgconn_params_for(tc, p->addr, tc->dbname, tc->user, tc->password);
                pgconn_connect(p->pooler, &cp, pooler_connected);
        }
}

static bool connected_now(void *vp)
{
        struct pgb_probe *p = vp;
        return pgconn_usable(p->pooler) && p->addr[0] != '\0';
}

static const char *phase(void *vp)
{
        struct pgb_probe *p = vp;
        static char buf[160];
        switch (p->pooler_step) {
        case POOLER_LOGIN:
                return "logging in to the pooler";
        case POOLER_QUERY:
                if (p->paused)
                        return "waiting for SELECT 1 through the pooler (the admin console says "
                               "the database is paused)";
                return "waiting for SELECT 1 through the pooler";
        case POOLER_IDLE:
        case POOLER_DONE:
                break;
        }
        switch (p->admin_step) {
        case ADMIN_LOGIN:
                return "logging in to the admin console";
        case ADMIN_SHOW:
        case ADMIN_PARKED:
                snprintf(buf, sizeof(buf), "waiting for %s on the admin console",
                         admin_cmds[p->show < N_SHOWS ? p->show : N_SHOWS - 1]);
                return buf;
        case ADMIN_IDLE:
        case ADMIN_DONE:
                break;
        }
        return "idle";
}

static const char *timeout_reason(void *vp)
{
        struct pgb_probe *p = vp;
        return p->pooler_step == POOLER_QUERY && p->paused ? "pooler_paused" : "timeout";
}

/* The deadline: the check's connections are closed, except an admin
 * console connection that is idle (its part done, or parked until the
 * pooler answers): it works, and keeping it saves a login per retry. */
static void abort_check(void *vp)
{
        struct pgb_probe *p = vp;
        p->pooler_step = POOLER_IDLE;
        p->admin_step = ADMIN_IDLE;
        evtimer_del(p->slow_pooled);
        pgconn_close(p->pooler);
        if (!pgconn_usable(p->admin))
                pgconn_close(p->admin);
}

static void destroy(void *vp)
{
        struct pgb_probe *p = vp;
        if (p == NULL)
                return;
        for (struct pgb_probe **pp = &bouncers; *pp != NULL; pp = &(*pp)->next)
                if (*pp == p) {
                        *pp = p->next;
                        break;
                }
        event_free(p->slow_pooled);
        pgconn_free(p->pooler);
        pgconn_free(p->admin);
        free(p->server_pids);
        free(p);
}

const struct probe_ops probe_pgbouncer_ops = {
    .create = create,
    .start = start,
    .connected = connected_now,
    .phase = phase,
    .timeout_reason = timeout_reason,
    .abort = abort_check,
    .destroy = destroy,
};
