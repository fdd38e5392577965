/* One loop-driven libpq connection (see include/pgconn.h).
 *
 * Between the login (include/pglogin.h) and the close, the connection is
 * the loop's: after every read or write libpq might want, a one-shot event
 * on the current PQsocket, a persistent read event while idle so that the
 * peer's close is seen at once, and event_del before PQfinish (an event
 * left on a closed fd number never fires for the next socket that gets the
 * same number: libraries.md, libpq). */
#include "pgconn.h"
#include "config.h"
#include "clock.h"
#include "log.h"
#include "pglogin.h"
#include "probe.h"
#include "readcap.h"
#include "textutil.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RESULTS 4
/* Seconds a login may take once the server accepted the TCP connection,
 * whatever the check's own timeout (the reconnection target). */
#define PGCONN_LOGIN_MIN 5.0

enum pgconn_state { PGCONN_CLOSED, PGCONN_LOGGING_IN, PGCONN_IDLE, PGCONN_BUSY };

struct pgconn {
        struct event_base *base;
        const char *role;
        char target[128]; /* a copy: the configuration it came from may be replaced */
        pgconn_lost_cb lost;
        void *arg; /* every callback's */
        enum pgconn_state st;
        PGconn *conn;
        struct event *ev;
        struct pglogin *login; /* the login in flight (LOGGING_IN) */
        pgconn_cb cb;
        PGresult *res[MAX_RESULTS];
        int nres;    /* results kept */
        int nseen;   /* results the server sent for this query */
        int nexpect; /* results the query must produce */
        char err[300];
        char sqlstate[6];
        const char *reason;  /* set when we, not the server, judged the failure */
        long long not_after; /* the server certificate's, 0: no TLS */
        double cert_warn_s;  /* from the params: see pgconn_params */
        double login_at;     /* mono_now() when the login was handed over */
};

/* ---- reasons ---- */

const char *pgconn_classify(const char *msg, const char *sqlstate)
{
        static const struct {
                const char *needle;
                const char *reason;
        } table[] = {
            {"Connection refused", "connect_refused"},
            /* TLS: the handshake, the server's certificate, or our own
             * files (libpq 15's words; before "does not exist" below) */
            {"server does not support SSL", "tls_failed"},
            {"does not match host name", "tls_failed"},
            {"could not get server's host name from server certificate", "tls_failed"},
            {"root certificate file", "tls_failed"},
            {"could not read certificate file", "tls_failed"},
            {"could not load private key file", "tls_failed"},
            {"certificate present, but not a private key file", "tls_failed"},
            {"has group or world access", "tls_failed"},
            {"could not establish SSL connection", "tls_failed"},
            {"SSL error:", "tls_failed"},
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
            {"malformed SCRAM message", "protocol_error"},
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
            {"login timed out", "timeout"},
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

/* ---- the connection ---- */

static void io_cb(evutil_socket_t fd, short what, void *arg);

static void clear_results(struct pgconn *c)
{
        for (int i = 0; i < c->nres; i++)
                PQclear(c->res[i]);
        c->nres = 0;
        c->nseen = 0;
}

static void unwatch(struct pgconn *c)
{
        if (c->ev != NULL) {
                event_del(c->ev);
                event_free(c->ev);
                c->ev = NULL;
        }
}

/* Closes the libpq connection, if any: the event first (libraries.md),
 * the read budget before its fd number can be reused. */
static void drop(struct pgconn *c)
{
        unwatch(c);
        if (c->conn != NULL) {
                readcap_clear(PQsocket(c->conn));
                PQfinish(c->conn);
        }
        c->conn = NULL;
        c->st = PGCONN_CLOSED;
}

void pgconn_close(struct pgconn *c)
{
        c->cb = NULL;
        if (c->st == PGCONN_LOGGING_IN)
                return; /* the login goes on, unwatched: see pgconn_connect() */
        drop(c);
        clear_results(c);
}

static void set_error(struct pgconn *c, const char *reason, const char *msg)
{
        /* also drops the newline libpq ends its messages with */
        utf8_clean(c->err, sizeof(c->err), msg, strlen(msg));
        c->reason = reason;
}

/* Ends the operation in flight with `ok`; the callback may reuse c. */
static void finish(struct pgconn *c, bool ok)
{
        pgconn_cb cb = c->cb;
        c->cb = NULL;
        if (cb != NULL)
                cb(c, ok, c->arg);
}

static void fail(struct pgconn *c, const char *reason, const char *msg)
{
        set_error(c, reason, msg);
        drop(c);
        finish(c, false);
}

/* Watches the current socket for `what` (always persistent: a long
 * answer takes many reads).  The socket can only change at a login. */
static void watch(struct pgconn *c, short what)
{
        what |= EV_PERSIST;
        if (c->ev != NULL && event_get_events(c->ev) == what)
                return;
        unwatch(c);
        int fd = PQsocket(c->conn);
        if (fd < 0)
                return;
        c->ev = event_new(c->base, fd, what, io_cb, c);
        if (c->ev == NULL || event_add(c->ev, NULL) != 0)
                abort();
}

static void on_notice(void *arg, const char *message)
{
        struct pgconn *c = arg;
        size_t n = strlen(message);
        while (n > 0 && message[n - 1] == '\n')
                n--;
        log_msg(LOG_DEBUG, c->target, "%s says: %.*s", c->role, (int)n, message);
}

/* The peer certificate's notAfter, or 0 (no TLS, no certificate).  Pure
 * CPU on data the handshake already brought: nothing here waits. */
static long long peer_not_after(PGconn *conn)
{
        SSL *ssl = PQsslStruct(conn, "OpenSSL");
        if (ssl == NULL)
                return 0;
        X509 *cert = SSL_get0_peer_certificate(ssl);
        if (cert == NULL)
                return 0;
        struct tm tm;
        if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1)
                return 0;
        return (long long)timegm(&tm);
}

static void logged_in(PGconn *conn, const char *err, void *arg)
{
        struct pgconn *c = arg;
        pglogin_release(c->login);
        c->login = NULL;
        if (conn == NULL) {
                c->st = PGCONN_CLOSED;
                set_error(c, NULL, err);
                finish(c, false);
                return;
        }
        c->conn = conn;
        c->not_after = peer_not_after(conn);
        c->login_at = mono_now();
        PQsetNoticeProcessor(conn, on_notice, c);
        if (PQsetnonblocking(conn, 1) != 0) {
                fail(c, NULL, PQerrorMessage(conn));
                return;
        }
        c->st = PGCONN_IDLE;
        watch(c, EV_READ);
        finish(c, true);
}

void pgconn_connect(struct pgconn *c, const struct pgconn_params *p, pgconn_cb cb)
{
        c->err[0] = c->sqlstate[0] = '\0';
        c->reason = NULL;
        if (c->st == PGCONN_LOGGING_IN) {
                /* A check's deadline came during a login, which went on in
                 * its thread: this check waits for that login rather than
                 * start a second one (a server slow to authenticate, or one
                 * asking for a costly SCRAM, gets one thread at a time). */
                c->cb = cb;
                return;
        }
        pgconn_close(c);
        c->cb = cb;
        c->not_after = 0;
        c->cert_warn_s = p->cert_warn_s;
        char port[16];
        snprintf(port, sizeof(port), "%d", p->port);
        const char *keys[16], *vals[16];
        int n = 0;
#define KV(k, v)                                                                                   \
        do {                                                                                       \
                if ((v) != NULL) {                                                                 \
                        keys[n] = (k);                                                             \
                        vals[n++] = (v);                                                           \
                }                                                                                  \
        } while (0)
        KV("host", p->host);
        KV("hostaddr", p->hostaddr);
        KV("port", port);
        KV("dbname", p->dbname);
        KV("user", p->user);
        KV("password", p->password);
        KV("sslmode", p->sslmode != NULL ? p->sslmode : "prefer");
        KV("sslrootcert", p->sslrootcert);
        KV("sslcert", p->sslcert);
        KV("sslkey", p->sslkey);
        KV("gssencmode", "disable");
        KV("application_name", "hdms-healthd");
#undef KV
        keys[n] = vals[n] = NULL;
        char err[200];
        c->login = pglogin_start(c->base, keys, vals, p->timeout_s,
                                 p->timeout_s > PGCONN_LOGIN_MIN ? p->timeout_s : PGCONN_LOGIN_MIN,
                                 logged_in, c, err, sizeof(err));
        if (c->login == NULL) {
                set_error(c, "internal_error", err);
                finish(c, false);
                return;
        }
        c->st = PGCONN_LOGGING_IN;
}

static bool consume(struct pgconn *c)
{
        if (PQconsumeInput(c->conn) == 0) {
                fail(c, NULL, PQerrorMessage(c->conn));
                return false;
        }
        if (c->st == PGCONN_BUSY && readcap_spent(PQsocket(c->conn))) {
                char msg[160];
                snprintf(msg, sizeof(msg), "%s sent more than %u MiB in answer to one check query",
                         c->role, PGCONN_REPLY_MAX >> 20);
                fail(c, "reply_too_large", msg);
                return false;
        }
        return true;
}

/* The query is complete: judge what came back, then call back. */
static void query_complete(struct pgconn *c)
{
        readcap_clear(PQsocket(c->conn));
        c->st = PGCONN_IDLE;
        watch(c, EV_READ);
        for (int i = 0; i < c->nres; i++) {
                ExecStatusType s = PQresultStatus(c->res[i]);
                if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
                        const char *st = PQresultErrorField(c->res[i], PG_DIAG_SQLSTATE);
                        snprintf(c->sqlstate, sizeof(c->sqlstate), "%s", st != NULL ? st : "");
                        set_error(c, NULL, PQresultErrorMessage(c->res[i]));
                        finish(c, false);
                        return;
                }
        }
        if (c->nseen != c->nexpect) {
                char msg[160];
                snprintf(msg, sizeof(msg), "%s answered with %d result set%s where %d %s expected",
                         c->role, c->nseen, c->nseen == 1 ? "" : "s", c->nexpect,
                         c->nexpect == 1 ? "was" : "were");
                /* the session's state is unknown after that: start clean */
                fail(c, "protocol_error", msg);
                return;
        }
        finish(c, true);
}

/* Takes every result that is complete; stops at the first that is not. */
static void read_results(struct pgconn *c)
{
        if (!consume(c))
                return;
        while (!PQisBusy(c->conn)) {
                PGresult *r = PQgetResult(c->conn);
                if (r == NULL) {
                        query_complete(c);
                        return;
                }
                ExecStatusType s = PQresultStatus(r);
                if (s == PGRES_COPY_OUT || s == PGRES_COPY_IN || s == PGRES_COPY_BOTH) {
                        /* libpq now hands out this result for ever and will
                         * not leave COPY without our help: the connection is
                         * of no more use to a health check. */
                        PQclear(r);
                        char msg[160];
                        snprintf(msg, sizeof(msg), "%s started a COPY (%s) in answer to the check",
                                 c->role, PQresStatus(s));
                        fail(c, "protocol_error", msg);
                        return;
                }
                c->nseen++;
                if (c->nres < MAX_RESULTS && c->nseen <= c->nexpect)
                        c->res[c->nres++] = r;
                else
                        PQclear(r);
        }
        if (PQstatus(c->conn) == CONNECTION_BAD)
                fail(c, NULL, PQerrorMessage(c->conn));
}

static void io_cb(evutil_socket_t fd, short what, void *arg)
{
        struct pgconn *c = arg;
        (void)fd;
        switch (c->st) {
        case PGCONN_BUSY:
                if (what & EV_WRITE) {
                        int f = PQflush(c->conn);
                        if (f < 0) {
                                fail(c, NULL, PQerrorMessage(c->conn));
                                return;
                        }
                        watch(c, f == 1 ? (EV_READ | EV_WRITE) : EV_READ);
                }
                if (what & EV_READ)
                        read_results(c);
                return;
        case PGCONN_IDLE:
                /* between queries: a close by the peer, a notice, a
                 * notification, or bytes nobody asked for */
                if (PQconsumeInput(c->conn) == 0 || PQstatus(c->conn) == CONNECTION_BAD) {
                        set_error(c, NULL, PQerrorMessage(c->conn));
                        pgconn_close(c);
                        if (c->lost != NULL)
                                c->lost(c, c->arg);
                        return;
                }
                for (PGnotify *n = PQnotifies(c->conn); n != NULL; n = PQnotifies(c->conn))
                        PQfreemem(n);
                return;
        case PGCONN_LOGGING_IN:
        case PGCONN_CLOSED:
                return;
        }
}

void pgconn_query(struct pgconn *c, const char *sql, int nresults, pgconn_cb cb)
{
        clear_results(c);
        c->cb = cb;
        c->nexpect = nresults;
        c->err[0] = c->sqlstate[0] = '\0';
        c->reason = NULL;
        if (c->st != PGCONN_IDLE || PQsendQuery(c->conn, sql) == 0) {
                fail(c, NULL, c->conn != NULL ? PQerrorMessage(c->conn) : "not connected");
                return;
        }
        c->st = PGCONN_BUSY;
        readcap_set(PQsocket(c->conn), PGCONN_REPLY_MAX);
        int f = PQflush(c->conn);
        if (f < 0) {
                fail(c, NULL, PQerrorMessage(c->conn));
                return;
        }
        watch(c, f == 1 ? (EV_READ | EV_WRITE) : EV_READ);
}

struct pgconn *pgconn_new(struct event_base *base, const char *role, const char *target,
                          pgconn_lost_cb lost, void *arg)
{
        struct pgconn *c = calloc(1, sizeof(*c));
        if (c == NULL)
                abort();
        c->base = base;
        c->role = role;
        snprintf(c->target, sizeof(c->target), "%s", target);
        c->lost = lost;
        c->arg = arg;
        return c;
}

void pgconn_free(struct pgconn *c)
{
        if (c == NULL)
                return;
        if (c->login != NULL) {
                pglogin_cancel(c->login);
                pglogin_release(c->login);
                c->login = NULL;
                c->st = PGCONN_CLOSED;
        }
        pgconn_close(c);
        free(c);
}

bool pgconn_usable(const struct pgconn *c)
{
        /* libpq marks a connection bad (and drops its socket) on a protocol
         * violation even when the query's callback has run */
        if (c->st != PGCONN_IDLE || c->conn == NULL || PQstatus(c->conn) != CONNECTION_OK)
                return false;
        /* a certificate near its end is read again now and then: once the
         * server has a renewed one, the warning ends within a minute */
        if (c->not_after > 0 && c->cert_warn_s > 0 &&
            wall_now() >= (double)c->not_after - c->cert_warn_s &&
            mono_now() - c->login_at >= PGCONN_CERT_RECHECK_S)
                return false;
        return true;
}

const PGresult *pgconn_result(const struct pgconn *c, int i)
{
        return i >= 0 && i < c->nres ? c->res[i] : NULL;
}

long long pgconn_num(const PGresult *r, int row, int col)
{
        if (r == NULL || row >= PQntuples(r) || col >= PQnfields(r) || PQgetisnull(r, row, col))
                return -1;
        const char *s = PQgetvalue(r, row, col);
        char *end;
        long long v = strtoll(s, &end, 10);
        return end == s ? -1 : v;
}

const char *pgconn_error(const struct pgconn *c)
{
        return c->err;
}

const char *pgconn_reason(const struct pgconn *c)
{
        return c->reason != NULL ? c->reason : pgconn_classify(c->err, c->sqlstate);
}

struct pgconn_params pgconn_params_for(const struct target_conf *tc, const char *addr,
                                       const char *dbname, const char *user, const char *password)
{
        return (struct pgconn_params){.host = tc->host,
                                      .hostaddr = addr,
                                      .port = tc->port,
                                      .dbname = dbname,
                                      .user = user,
                                      .password = password,
                                      .sslmode = tc->sslmode,
                                      .sslrootcert = tc->sslrootcert,
                                      .sslcert = tc->sslcert,
                                      .sslkey = tc->sslkey,
                                      .cert_warn_s = (double)tc->cert_expiry_warn_ms / 1000.0,
                                      .timeout_s = (double)tc->timeout_ms / 1000.0};
}

void pgconn_fail_result(const struct pgconn *c, struct probe_result *r, const char *doing)
{
        const char *reason = pgconn_reason(c);
        if (strcmp(reason, "auth_failed") == 0)
                probe_result_worsen(r, ST_FAIL, reason, "authentication failed (%s %s): %s", doing,
                                    c->role, c->err);
        else
                probe_result_worsen(r, ST_FAIL, reason, "%s %s: %s", doing, c->role, c->err);
}

void pgconn_lost_output(const struct pgconn *c, char *buf, size_t len)
{
        snprintf(buf, len, "connection to %s closed: %s", c->role,
                 c->err[0] ? c->err : "closed by the server");
}

bool pgconn_kept_after_error(const struct pgconn *c)
{
        /* 57014: the server cancelled the statement (our statement_timeout);
         * the implicit transaction is gone, the session sound.  A new login
         * would cost more than the check, on a server already slow. */
        return pgconn_usable(c) && strcmp(c->sqlstate, "57014") == 0;
}

long long pgconn_cert_not_after(const struct pgconn *c)
{
        return c->not_after;
}

char *pgconn_literal(struct pgconn *c, const char *s)
{
        return c->conn != NULL ? PQescapeLiteral(c->conn, s, strlen(s)) : NULL;
}
