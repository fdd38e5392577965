/* One PostgreSQL-protocol connection driven by the loop, for the postgres
 * and pgbouncer probes (the only users of this header and of libpq).
 *
 * A connection is CLOSED, LOGGING_IN (a worker thread runs the login:
 * include/pglogin.h), IDLE (persistent, its socket watched so that a close
 * by the peer is seen at once) or BUSY (one simple-protocol Query in
 * flight).  connect() and query() each call their callback exactly once,
 * unless pgconn_close() comes first; a close by the peer while IDLE calls
 * the `lost` callback given at creation instead.  Callbacks may close the
 * connection or start the next query.
 *
 * What the server says is never trusted to be what was asked for: a query
 * must return exactly the number of result sets announced; COPY, a reply
 * over PGCONN_REPLY_MAX bytes or a protocol violation fails the query and
 * closes the connection (reason protocol_error or reply_too_large).
 * Notices go to the logger at debug level, never to stderr. */
#ifndef HEALTHD_PGCONN_H
#define HEALTHD_PGCONN_H

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

/* Bytes one query's answer may bring.  The largest legitimate answer is
 * SHOW SERVERS of a big PgBouncer (about 200 bytes a server connection:
 * 16 MiB is some 80,000 of them); a sender past this is not a database. */
#define PGCONN_REPLY_MAX (16u << 20)

/* Seconds a connection whose server certificate is about to expire is
 * kept before the next check logs in again (see cert_warn_s). */
#define PGCONN_CERT_RECHECK_S 60.0

struct pgconn;

typedef void (*pgconn_cb)(struct pgconn *c, bool ok, void *arg);
typedef void (*pgconn_lost_cb)(struct pgconn *c, void *arg);

struct pgconn_params {
        const char *host;     /* the configured name, for TLS and messages */
        const char *hostaddr; /* numeric, resolved by the engine */
        int port;
        const char *dbname, *user, *password, *sslmode;
        /* libpq's TLS files; NULL: libpq's defaults */
        const char *sslrootcert, *sslcert, *sslkey;
        /* cert_expiry_warn in seconds (0: none): while the server
         * certificate is within it, the connection is not reused for more
         * than PGCONN_CERT_RECHECK_S, so that a renewed certificate is seen
         * at the next login instead of whenever the connection drops */
        double cert_warn_s;
        double timeout_s; /* bound of the login */
};

struct target_conf;
/* A target's connection parameters (host, port, TLS, timeouts) with the
 * database and credentials given: the target's own, or the admin
 * console's.  The strings are borrowed from `tc` and `addr`. */
struct pgconn_params pgconn_params_for(const struct target_conf *tc, const char *addr,
                                       const char *dbname, const char *user, const char *password);

/* `role` names the connection in messages ("PostgreSQL", "the pooler",
 * "the admin console"; borrowed for the connection's life); `target`
 * names it in log lines (copied).  `arg` is passed to every callback. */
struct pgconn *pgconn_new(struct event_base *base, const char *role, const char *target,
                          pgconn_lost_cb lost, void *arg);
void pgconn_free(struct pgconn *c);

void pgconn_connect(struct pgconn *c, const struct pgconn_params *p, pgconn_cb cb);
/* One Query message that must produce exactly `nresults` result sets. */
void pgconn_query(struct pgconn *c, const char *sql, int nresults, pgconn_cb cb);
/* Ends whatever is in flight without a callback and closes. */
void pgconn_close(struct pgconn *c);

/* IDLE and good, and not due for a fresh login (cert_warn_s) */
bool pgconn_usable(const struct pgconn *c);

/* The last query's results, valid until the next query or close. */
const PGresult *pgconn_result(const struct pgconn *c, int i);
/* A value as a number; -1 when absent, NULL or not a number. */
long long pgconn_num(const PGresult *r, int row, int col);

/* After a failure: libpq's or our words (valid UTF-8) and a reason code. */
const char *pgconn_error(const struct pgconn *c);
const char *pgconn_reason(const struct pgconn *c);

/* After a failed query: true when the session is sound enough to keep for
 * the next check (the server cancelled the statement at its timeout). */
bool pgconn_kept_after_error(const struct pgconn *c);

/* The server certificate's notAfter (Unix seconds), read once when the
 * login was handed over; 0 when the connection is not over TLS (or not
 * open).  Kept until the next connect. */
long long pgconn_cert_not_after(const struct pgconn *c);

/* PQescapeLiteral on this connection; free with PQfreemem.  NULL when not
 * connected or out of memory. */
char *pgconn_literal(struct pgconn *c, const char *s);

struct probe_result;
/* Lowers `r` to fail with this connection's reason and words: "<doing>
 * <role>: <error>", or "authentication failed (<doing> <role>): <error>"
 * for a refused login ("cannot connect to", "query on", ...). */
void pgconn_fail_result(const struct pgconn *c, struct probe_result *r, const char *doing);
/* The output of a close by the peer: "connection to <role> closed: ...". */
void pgconn_lost_output(const struct pgconn *c, char *buf, size_t len);

/* A reason code from an error message and SQLSTATE (exposed for tests). */
const char *pgconn_classify(const char *msg, const char *sqlstate);

#endif
