/* The check floor for bench/run.py: the round trips of the five default
 * targets and nothing else.  Once a second, on connections made at start:
 * "SHOW POOLS" then "SHOW LISTS" on PgBouncer's admin console (two round
 * trips one after the other, the first sent ahead of the pooled query, as
 * the daemon's check), "SELECT 1" through PgBouncer and to PostgreSQL, and
 * PING on each Redis connection.  No
 * parsing, no judging, no records: its CPU beside the daemon's, in the same
 * windows, is what this machine charges for the wakeups and loopback round
 * trips alone.
 *
 *   REF_PG=CONNINFO REF_PGBOUNCER=CONNINFO REF_ADMIN=CONNINFO \
 *   ref-client REDIS_PORT NREDIS
 *
 * (the connection strings hold passwords: environment, not argv) */
#include <arpa/inet.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_REDIS 16

struct pgc {
        PGconn *conn;
        struct event *ev;
        const char *const *queries; /* sent one after the other */
        int next;
        int busy; /* a round's queries not all answered yet */
};

static long late; /* ticks that found a round still running (reported at exit) */

static const char *const select1[] = {"SELECT 1", NULL};
static const char *const admin[] = {"SHOW POOLS", "SHOW LISTS", NULL};

static void send_next(struct pgc *c)
{
        const char *q = c->queries[c->next];
        if (q == NULL) {
                c->busy = 0;
                return;
        }
        c->next++;
        /* a few bytes on a fresh socket: sent at once (-1 is the error) */
        if (!PQsendQuery(c->conn, q) || PQflush(c->conn) == -1) {
                fprintf(stderr, "ref-client: %s", PQerrorMessage(c->conn));
                exit(1);
        }
}

static void on_pg(evutil_socket_t fd, short what, void *arg)
{
        struct pgc *c = arg;
        (void)fd;
        (void)what;
        if (!PQconsumeInput(c->conn)) {
                fprintf(stderr, "ref-client: %s", PQerrorMessage(c->conn));
                exit(1);
        }
        while (!PQisBusy(c->conn)) {
                PGresult *r = PQgetResult(c->conn);
                if (r == NULL) {
                        send_next(c); /* the query is over: the next one */
                        break;
                }
                if (PQresultStatus(r) != PGRES_TUPLES_OK) {
                        fprintf(stderr, "ref-client: %s", PQresultErrorMessage(r));
                        exit(1);
                }
                PQclear(r);
        }
}

static void on_redis(evutil_socket_t fd, short what, void *arg)
{
        char buf[256];
        (void)what;
        (void)arg;
        if (read(fd, buf, sizeof(buf)) <= 0) {
                fputs("ref-client: Redis closed the connection\n", stderr);
                exit(1);
        }
}

static struct pgc pgs[3];
static int redis_fds[MAX_REDIS];
static int nredis;

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
        static const char ping[] = "*1\r\n$4\r\nPING\r\n";
        (void)fd;
        (void)what;
        (void)arg;
        for (int i = 2; i >= 0; i--) { /* the admin console first */
                if (pgs[i].busy) {     /* a slow server: this round skipped */
                        late++;
                        continue;
                }
                pgs[i].busy = 1;
                pgs[i].next = 0;
                send_next(&pgs[i]);
        }
        for (int i = 0; i < nredis; i++)
                if (write(redis_fds[i], ping, sizeof(ping) - 1) != (ssize_t)sizeof(ping) - 1) {
                        fputs("ref-client: write to Redis failed\n", stderr);
                        exit(1);
                }
}

static void on_term(evutil_socket_t sig, short what, void *arg)
{
        (void)sig;
        (void)what;
        event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
        const char *conninfo[3] = {getenv("REF_PG"), getenv("REF_PGBOUNCER"), getenv("REF_ADMIN")};
        if (argc != 3 || !conninfo[0] || !conninfo[1] || !conninfo[2]) {
                fputs("usage: REF_PG=... REF_PGBOUNCER=... REF_ADMIN=... ref-client REDIS_PORT "
                      "NREDIS\n",
                      stderr);
                return 2;
        }
        nredis = atoi(argv[2]);
        int port = atoi(argv[1]);
        if (nredis < 0 || nredis > MAX_REDIS || port <= 0 || port > 65535)
                return 2;
        signal(SIGPIPE, SIG_IGN); /* a closed Redis: an error message, not a silent death */
        struct event_config *ec = event_config_new();
        if (ec == NULL)
                return 1;
        event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
        struct event_base *base = event_base_new_with_config(ec);
        event_config_free(ec);
        if (base == NULL)
                return 1;
        for (int i = 0; i < 3; i++) {
                struct pgc *c = &pgs[i];
                c->conn = PQconnectdb(conninfo[i]);
                if (PQstatus(c->conn) != CONNECTION_OK) {
                        fprintf(stderr, "ref-client: %s", PQerrorMessage(c->conn));
                        return 1;
                }
                PQsetnonblocking(c->conn, 1);
                c->queries = i == 2 ? admin : select1;
                c->next = 0;
                c->ev = event_new(base, PQsocket(c->conn), EV_READ | EV_PERSIST, on_pg, c);
                event_add(c->ev, NULL);
        }
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        struct event *revs[MAX_REDIS];
        for (int i = 0; i < nredis; i++) {
                redis_fds[i] = socket(AF_INET, SOCK_STREAM, 0);
                if (redis_fds[i] < 0 ||
                    connect(redis_fds[i], (struct sockaddr *)&sa, sizeof(sa)) != 0) {
                        perror("ref-client: Redis");
                        return 1;
                }
                revs[i] = event_new(base, redis_fds[i], EV_READ | EV_PERSIST, on_redis, NULL);
                event_add(revs[i], NULL);
        }
        struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
        struct timeval one = {1, 0};
        event_add(tick, &one);
        struct event *term = evsignal_new(base, SIGTERM, on_term, base);
        event_add(term, NULL);
        event_base_dispatch(base);
        if (late > 0)
                fprintf(stderr, "ref-client: %ld rounds found a query still running\n", late);
        for (int i = 0; i < nredis; i++) {
                event_free(revs[i]);
                close(redis_fds[i]);
        }
        for (int i = 0; i < 3; i++) {
                event_free(pgs[i].ev);
                PQfinish(pgs[i].conn);
        }
        event_free(tick);
        event_free(term);
        event_base_free(base);
        return 0;
}
