/* PostgreSQL logins off the loop.
 *
 * libpq runs the whole login inside PQconnectPoll: the TLS handshake and
 * SCRAM's PBKDF2, whose iteration count the server chooses (an honest
 * login costs 4-11 ms of CPU; a hostile server can ask for minutes).  So a
 * login runs in a short-lived worker thread of its own, which drives
 * PQconnectPoll with poll() and its own deadline, and hands the connected
 * PGconn back to the loop; from then on the connection belongs to the loop
 * alone (libpq allows a PGconn to move between threads as long as one
 * thread uses it at a time).
 *
 * The loop learns of a finished login through one eventfd watched by the
 * event base; `done` runs on the loop, exactly once, unless the login was
 * cancelled first.  A cancelled login is finished by whichever side holds
 * it: the worker (PQfinish) when it is still running, the loop otherwise.
 * A worker stuck in CPU work (PBKDF2) cannot be stopped: it burns its own
 * thread, never the loop. */
#ifndef HEALTHD_PGLOGIN_H
#define HEALTHD_PGLOGIN_H

#include <event2/event.h>
#include <libpq-fe.h>
#include <stdbool.h>

struct pglogin;

/* `conn` is connected (CONNECTION_OK) on success and belongs to the callee;
 * NULL on failure, with libpq's message in `err`. */
typedef void (*pglogin_cb)(PGconn *conn, const char *err, void *arg);

/* Starts a login with libpq's keyword/value arrays (copied; NULL-terminated,
 * `hostaddr` set so that libpq resolves nothing).  The TCP connect may take
 * `connect_s`, the whole login `login_s`.  The returned handle is the
 * caller's reference: drop it with pglogin_release() (after `done` ran, or
 * after pglogin_cancel()).  NULL when no thread could be started; `err`
 * then says why. */
struct pglogin *pglogin_start(struct event_base *base, const char *const *keys,
                              const char *const *vals, double connect_s, double login_s,
                              pglogin_cb done, void *arg, char *err, size_t errlen);
/* No callback after this; the connection, if any, is closed. */
void pglogin_cancel(struct pglogin *l);
void pglogin_release(struct pglogin *l);
/* Number of worker threads alive now (for tests and the shutdown). */
int pglogin_threads(void);
/* At shutdown, after every login was cancelled: waits up to `wait_s` for
 * the workers, then frees the loop's side (event, eventfd).  Returns the
 * number of workers still running (each closes its own connection if it
 * ever ends). */
int pglogin_shutdown(double wait_s);

#endif
