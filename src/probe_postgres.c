/* The postgres probe: one persistent connection (include/pgconn.h), one
 * Query message per check:
 *
 *   SET LOCAL statement_timeout; SELECT the figures; SELECT the backends
 *   of the application role
 *
 * three result sets in one round trip.  SET LOCAL holds only for this
 * implicit transaction, so nothing leaks into the session. */
#include "clock.h"
#include "pgconn.h"
#include "probe.h"
#include "probe_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the check in flight waits for. */
enum pg_step { PG_IDLE, PG_LOGIN, PG_QUERY };

struct pg_probe {
        struct probe_env *env;
        struct pgconn *conn;
        enum pg_step step;
        char addr[64];
        struct probe_result res;
        /* bypass candidates seen in the previous check */
        int *prev_pids;
        size_t nprev;
};

static const struct target_conf *conf(const struct pg_probe *p)
{
        return p->env->conf;
}

/* Every check ends here; the certificate of the connection (read once at
 * its login) is judged on every check, as days pass on a long-lived one. */
static void finish(struct pg_probe *p)
{
        p->step = PG_IDLE;
        probe_judge_cert(&p->res, pgconn_cert_not_after(p->conn), conf(p)->cert_expiry_warn_ms,
                         wall_now());
        struct probe_result r = p->res;
        probe_done(p->env->target, &r);
}

/* The check failed: the next one starts with a new session, unless this
 * one is known to be sound (pgconn_kept_after_error). */
static void fail_on(struct pg_probe *p, const char *doing)
{
        pgconn_fail_result(p->conn, &p->res, doing);
        if (!pgconn_kept_after_error(p->conn))
                pgconn_close(p->conn);
        finish(p);
}

static bool pid_in(const int *pids, size_t n, int pid)
{
        for (size_t i = 0; i < n; i++)
                if (pids[i] == pid)
                        return true;
        return false;
}

/* The bypass count: backends of app_user that are not PgBouncer's server
 * connections.  A backend counts only if it started before the oldest
 * SHOW SERVERS snapshot and was a candidate in the previous check too, so
 * a server connection PgBouncer opened since its snapshot is not blamed. */
static void judge_bypass(struct pg_probe *p, const PGresult *r)
{
        double snap = pgbouncer_servers_snapshot();
        int rows = PQntuples(r);
        int *cand = calloc((size_t)rows + 1, sizeof(int));
        if (cand == NULL)
                abort();
        size_t ncand = 0;
        long long bypass = 0;
        char addrs[200] = "";
        for (int i = 0; i < rows && snap > 0; i++) {
                int pid = (int)pgconn_num(r, i, 0);
                double started = PQgetisnull(r, i, 2) ? 0 : strtod(PQgetvalue(r, i, 2), NULL);
                if (pgbouncer_pid_pooled(pid) || started >= snap)
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

static void query_done(struct pgconn *c, bool ok, void *arg)
{
        struct pg_probe *p = arg;
        (void)c;
        if (!ok) {
                fail_on(p, "query on");
                return;
        }
        /* results: SET, the figures, the app role's backends */
        const PGresult *f = pgconn_result(p->conn, 1);
        if (PQntuples(f) != 1 || PQnfields(f) < 9 || pgconn_num(f, 0, 0) != 1) {
                probe_result_worsen(&p->res, ST_FAIL, "protocol_error",
                                    "the check query returned an unexpected result");
                pgconn_close(p->conn);
                finish(p);
                return;
        }
        struct probe_result *r = &p->res;
        const struct target_conf *tc = conf(p);
        snprintf(r->server_version, sizeof(r->server_version), "%s", PQgetvalue(f, 0, 1));
        snprintf(r->server_id, sizeof(r->server_id), "%s", PQgetvalue(f, 0, 2));
        long long used = pgconn_num(f, 0, 3), max = pgconn_num(f, 0, 4),
                  reserved = pgconn_num(f, 0, 5);
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
        if (tc->app_user != NULL)
                judge_bypass(p, pgconn_result(p->conn, 2));
        finish(p);
}

static void run_query(struct pg_probe *p)
{
        const struct target_conf *tc = conf(p);
        char *app = tc->app_user != NULL ? pgconn_literal(p->conn, tc->app_user) : NULL;
        char sql[2048];
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
        p->step = PG_QUERY;
        pgconn_query(p->conn, sql, 3, query_done);
}

static void connected(struct pgconn *c, bool ok, void *arg)
{
        struct pg_probe *p = arg;
        (void)c;
        if (!ok) {
                fail_on(p, "cannot connect to");
                return;
        }
        run_query(p);
}

static void lost(struct pgconn *c, void *arg)
{
        struct pg_probe *p = arg;
        char msg[400];
        pgconn_lost_output(c, msg, sizeof(msg));
        probe_lost(p->env->target, "connection_lost", msg);
}

static void *create(struct probe_env *env)
{
        struct pg_probe *p = calloc(1, sizeof(*p));
        if (p == NULL)
                abort();
        p->env = env;
        p->conn = pgconn_new(env->base, "PostgreSQL", env->conf->name, lost, p);
        return p;
}

static void start(void *vp, const char *addr)
{
        struct pg_probe *p = vp;
        const struct target_conf *tc = conf(p);
        probe_result_init(&p->res);
        if (addr != NULL)
                snprintf(p->addr, sizeof(p->addr), "%s", addr);
        if (pgconn_usable(p->conn)) {
                run_query(p);
                return;
        }
        p->step = PG_LOGIN;
        struct pgconn_params cp =
            pgconn_params_for(tc, p->addr, tc->dbname, tc->user, tc->password);
        pgconn_connect(p->conn, &cp, connected);
}

static bool connected_now(void *vp)
{
        struct pg_probe *p = vp;
        return pgconn_usable(p->conn) && p->addr[0] != '\0';
}

static const char *phase(void *vp)
{
        struct pg_probe *p = vp;
        switch (p->step) {
        case PG_LOGIN:
                return "logging in";
        case PG_QUERY:
                return "waiting for the check query";
        case PG_IDLE:
                break;
        }
        return "idle";
}

static void abort_check(void *vp)
{
        struct pg_probe *p = vp;
        p->step = PG_IDLE;
        pgconn_close(p->conn);
}

static void destroy(void *vp)
{
        struct pg_probe *p = vp;
        if (p == NULL)
                return;
        pgconn_free(p->conn);
        free(p->prev_pids);
        free(p);
}

const struct probe_ops probe_postgres_ops = {
    .create = create,
    .start = start,
    .connected = connected_now,
    .phase = phase,
    .abort = abort_check,
    .destroy = destroy,
};
