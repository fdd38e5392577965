/* PostgreSQL logins in worker threads (see include/pglogin.h).
 *
 * Ownership: a login starts with two references, the caller's and the
 * worker's.  When the worker ends it either closes the connection itself
 * (the login was cancelled, or the daemon is shutting down) or moves its
 * reference to the done list, which the loop drains on the eventfd's
 * wake-up.  `cancelled` is written by the loop only, under the mutex, and
 * read by the worker (atomically while polling, under the mutex when it
 * decides who closes). */
#include "pglogin.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_PARAMS 32
/* How often a worker waiting on the server looks at its cancel flag. */
#define POLL_SLICE_MS 50

struct pglogin {
        atomic_int refs;
        atomic_bool cancelled;
        char *keys[MAX_PARAMS + 1];
        char *vals[MAX_PARAMS + 1];
        double connect_s; /* bound of the TCP connect */
        double login_s;   /* bound of the whole login, once connected */
        PGconn *conn;
        char err[300];
        pglogin_cb done;
        void *arg;
        struct pglogin *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gone = PTHREAD_COND_INITIALIZER;
static int nthreads;
static bool closing;
static struct pglogin *done_head, *done_tail;
static int wake_fd = -1;
static struct event *wake_ev;

static double mono(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void unref(struct pglogin *l)
{
        if (atomic_fetch_sub(&l->refs, 1) != 1)
                return;
        for (int i = 0; l->keys[i] != NULL; i++) {
                free(l->keys[i]);
                free(l->vals[i]);
        }
        free(l);
}

/* libpq's default notice processor writes to stderr; during a login the
 * worker has no logger it may use, and a notice there says nothing a
 * failed or finished login does not. */
static void quiet(void *arg, const char *message)
{
        (void)arg;
        (void)message;
}

static void set_err(struct pglogin *l, const char *msg)
{
        snprintf(l->err, sizeof(l->err), "%s", msg);
}

/* Runs on the worker: drives PQconnectPoll until connected, failed,
 * cancelled or out of time.  Until the TCP connection is made the
 * deadline is the check's own (an address that does not answer is soon
 * tried afresh); after it, the login may take longer than one check: a
 * busy machine's slow PBKDF2 then still ends in a connection that the
 * next check finds ready. */
static void run_login(struct pglogin *l)
{
        double start = mono();
        PGconn *conn =
            PQconnectStartParams((const char *const *)l->keys, (const char *const *)l->vals, 0);
        if (conn == NULL) {
                set_err(l, "out of memory");
                return;
        }
        PQsetNoticeProcessor(conn, quiet, NULL);
        if (PQstatus(conn) == CONNECTION_BAD) {
                set_err(l, PQerrorMessage(conn));
                PQfinish(conn);
                return;
        }
        /* as if the first poll had said WRITING (libpq's documented start) */
        PostgresPollingStatusType st = PGRES_POLLING_WRITING;
        for (;;) {
                if (st == PGRES_POLLING_OK) {
                        l->conn = conn;
                        return;
                }
                if (st == PGRES_POLLING_FAILED) {
                        set_err(l, PQerrorMessage(conn));
                        PQfinish(conn);
                        return;
                }
                double bound = PQstatus(conn) == CONNECTION_STARTED ? l->connect_s : l->login_s;
                double left = start + bound - mono();
                if (atomic_load(&l->cancelled) || left <= 0) {
                        set_err(l, "login timed out");
                        PQfinish(conn);
                        return;
                }
                struct pollfd pfd = {.fd = PQsocket(conn),
                                     .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
                int ms = (int)(left * 1000.0) + 1;
                int n = poll(&pfd, 1, ms < POLL_SLICE_MS ? ms : POLL_SLICE_MS);
                if (n < 0 && errno != EINTR) {
                        set_err(l, strerror(errno));
                        PQfinish(conn);
                        return;
                }
                if (n > 0)
                        st = PQconnectPoll(conn);
        }
}

static void *worker(void *arg)
{
        struct pglogin *l = arg;
        run_login(l);
        PGconn *drop = NULL;
        pthread_mutex_lock(&mu);
        bool handed = false;
        if (atomic_load(&l->cancelled) || closing) {
                drop = l->conn;
                l->conn = NULL;
        } else {
                l->next = NULL;
                if (done_tail != NULL)
                        done_tail->next = l;
                else
                        done_head = l;
                done_tail = l;
                handed = true;
                uint64_t one = 1;
                if (write(wake_fd, &one, sizeof(one)) < 0) {
                        /* the counter cannot overflow here; a failed write
                         * only means the loop is already awake */
                }
        }
        pthread_mutex_unlock(&mu);
        if (drop != NULL)
                PQfinish(drop);
        if (!handed)
                unref(l);
        /* OpenSSL keeps per-thread state (the error queue of a failed
         * handshake) that it frees from a thread-exit destructor, after
         * this function returns: free it now.  The worker is counted out
         * only once nothing of the login is left on this side, so a
         * shutdown that saw the count reach 0 leaves nothing behind. */
        OPENSSL_thread_stop();
        pthread_mutex_lock(&mu);
        nthreads--;
        pthread_cond_broadcast(&gone);
        pthread_mutex_unlock(&mu);
        return NULL;
}

/* On the loop: deliver every finished login. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
        (void)what;
        (void)arg;
        uint64_t n;
        if (read(fd, &n, sizeof(n)) < 0) {
                /* EAGAIN: another wake-up already drained it */
        }
        pthread_mutex_lock(&mu);
        struct pglogin *l = done_head;
        done_head = done_tail = NULL;
        pthread_mutex_unlock(&mu);
        while (l != NULL) {
                struct pglogin *next = l->next;
                PGconn *conn = l->conn;
                l->conn = NULL;
                if (atomic_load(&l->cancelled)) {
                        if (conn != NULL)
                                PQfinish(conn);
                } else {
                        l->done(conn, conn != NULL ? NULL : l->err, l->arg);
                }
                unref(l);
                l = next;
        }
}

static bool setup(struct event_base *base, char *err, size_t errlen)
{
        if (wake_fd >= 0)
                return true;
        wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (wake_fd < 0) {
                snprintf(err, errlen, "eventfd: %s", strerror(errno));
                return false;
        }
        wake_ev = event_new(base, wake_fd, EV_READ | EV_PERSIST, on_wake, NULL);
        if (wake_ev == NULL || event_add(wake_ev, NULL) != 0) {
                snprintf(err, errlen, "cannot watch the login eventfd");
                if (wake_ev != NULL)
                        event_free(wake_ev);
                wake_ev = NULL;
                close(wake_fd);
                wake_fd = -1;
                return false;
        }
        closing = false;
        return true;
}

struct pglogin *pglogin_start(struct event_base *base, const char *const *keys,
                              const char *const *vals, double connect_s, double login_s,
                              pglogin_cb done, void *arg, char *err, size_t errlen)
{
        if (!setup(base, err, errlen))
                return NULL;
        struct pglogin *l = calloc(1, sizeof(*l));
        if (l == NULL)
                abort();
        for (int i = 0; keys[i] != NULL && i < MAX_PARAMS; i++) {
                l->keys[i] = strdup(keys[i]);
                l->vals[i] = strdup(vals[i]);
                if (l->keys[i] == NULL || l->vals[i] == NULL)
                        abort();
        }
        atomic_init(&l->refs, 2);
        atomic_init(&l->cancelled, false);
        l->connect_s = connect_s;
        l->login_s = login_s > connect_s ? login_s : connect_s;
        l->done = done;
        l->arg = arg;

        /* The worker takes no signal: they belong to the loop's thread. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_mutex_lock(&mu);
        nthreads++;
        pthread_mutex_unlock(&mu);
        pthread_t tid;
        int rc = pthread_create(&tid, &attr, worker, l);
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc != 0) {
                pthread_mutex_lock(&mu);
                nthreads--;
                pthread_mutex_unlock(&mu);
                snprintf(err, errlen, "cannot start a login thread: %s", strerror(rc));
                atomic_store(&l->refs, 1);
                unref(l);
                return NULL;
        }
        return l;
}

void pglogin_cancel(struct pglogin *l)
{
        pthread_mutex_lock(&mu);
        atomic_store(&l->cancelled, true);
        pthread_mutex_unlock(&mu);
}

void pglogin_release(struct pglogin *l)
{
        if (l != NULL)
                unref(l);
}

int pglogin_threads(void)
{
        pthread_mutex_lock(&mu);
        int n = nthreads;
        pthread_mutex_unlock(&mu);
        return n;
}

int pglogin_shutdown(double wait_s)
{
        if (wake_fd < 0)
                return 0;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long long ns = (long long)until.tv_nsec + (long long)(wait_s * 1e9);
        until.tv_sec += (time_t)(ns / 1000000000LL);
        until.tv_nsec = (long)(ns % 1000000000LL);
        pthread_mutex_lock(&mu);
        closing = true;
        while (nthreads > 0)
                if (pthread_cond_timedwait(&gone, &mu, &until) == ETIMEDOUT)
                        break;
        int left = nthreads;
        struct pglogin *l = done_head;
        done_head = done_tail = NULL;
        pthread_mutex_unlock(&mu);
        while (l != NULL) {
                struct pglogin *next = l->next;
                if (l->conn != NULL)
                        PQfinish(l->conn);
                l->conn = NULL;
                unref(l);
                l = next;
        }
        event_free(wake_ev);
        wake_ev = NULL;
        /* A worker still computing (a hostile SCRAM iteration count) sees
         * `closing` and closes its own connection; it never writes to the
         * eventfd again, so closing it is safe. */
        close(wake_fd);
        wake_fd = -1;
        return left;
}
