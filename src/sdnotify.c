/* sd_notify(3) without libsystemd: the protocol is one datagram of
 * newline-separated KEY=VALUE lines to an AF_UNIX socket, documented as a
 * stable interface, and a dozen lines of code are cheaper than linking a
 * library of 200 exported functions for it (docs/systemd.md says more). */
#include "sdnotify.h"

#include "health.h"
#include "log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct sdnotify {
        struct event_base *base;
        const struct engine *eng;
        int fd;
        struct sockaddr_un addr;
        socklen_t addrlen;
        struct event *watchdog; /* NULL without WATCHDOG_USEC */
        struct event *status;   /* the once-a-second STATUS= refresh */
        uint64_t status_gen;    /* engine generation of the last STATUS= sent */
        char status_sent[128];
        bool failing; /* the last send failed (logged once until one succeeds) */
        bool stopping;
};

/* Fills `sa` from "/path" or "@abstract"; -1 for anything else (systemd 254
 * also knows "vsock:", which a loopback-only daemon has no use for). */
static int notify_addr(const char *name, struct sockaddr_un *sa, socklen_t *salen)
{
        size_t len = strlen(name);
        if ((name[0] != '/' && name[0] != '@') || len < 2 || len >= sizeof(sa->sun_path))
                return -1;
        memset(sa, 0, sizeof(*sa));
        sa->sun_family = AF_UNIX;
        memcpy(sa->sun_path, name, len);
        /* An abstract name starts with a NUL byte and its length is exact:
         * the trailing NUL of a path would be part of an abstract name. */
        if (name[0] == '@') {
                sa->sun_path[0] = '\0';
                *salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
        } else {
                *salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
        }
        return 0;
}

/* MSG_DONTWAIT on a non-blocking socket: a receiver that does not read
 * (a stopped systemd, a full queue) must not stall the loop. */
static int send_msg(int fd, const struct sockaddr_un *sa, socklen_t salen, const char *msg)
{
        ssize_t w = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT,
                           (const struct sockaddr *)sa, salen);
        return w < 0 ? -1 : 0;
}

int sdnotify_send(const char *socket_name, const char *msg)
{
        struct sockaddr_un sa;
        socklen_t salen;
        if (notify_addr(socket_name, &sa, &salen) != 0) {
                errno = EINVAL;
                return -1;
        }
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -1;
        int rc = send_msg(fd, &sa, salen, msg);
        int saved = errno;
        close(fd);
        errno = saved;
        return rc;
}

void sdnotify_status_line(char *buf, size_t len, size_t ntargets, const size_t count[4])
{
        static const enum status order[] = {ST_PASS, ST_WARN, ST_FAIL, ST_UNKNOWN};
        size_t off = (size_t)snprintf(buf, len, "%zu target%s", ntargets, ntargets == 1 ? "" : "s");
        const char *sep = ": ";
        for (size_t i = 0; i < sizeof(order) / sizeof(order[0]) && off < len; i++) {
                if (count[order[i]] == 0)
                        continue;
                off += (size_t)snprintf(buf + off, len - off, "%s%zu %s", sep, count[order[i]],
                                        status_name(order[i]));
                sep = ", ";
        }
}

static void engine_status(const struct engine *e, char *buf, size_t len)
{
        size_t count[4] = {0, 0, 0, 0};
        size_t n = engine_count(e);
        struct target_view v;
        for (size_t i = 0; i < n; i++) {
                engine_view(e, i, &v);
                if ((unsigned)v.status < 4)
                        count[v.status]++;
        }
        sdnotify_status_line(buf, len, n, count);
}

/* Sends `msg`; logs the first failure of a run of failures only, so a
 * systemd that went away costs one warning, not one a second. */
static void notify(struct sdnotify *n, const char *msg)
{
        if (send_msg(n->fd, &n->addr, n->addrlen, msg) == 0) {
                if (n->failing)
                        log_msg(LOG_INFO, NULL, "sd_notify: sending to NOTIFY_SOCKET works again");
                n->failing = false;
                return;
        }
        if (!n->failing)
                log_msg(LOG_WARN, NULL,
                        "sd_notify: cannot send to NOTIFY_SOCKET: %s (further failures are not "
                        "logged)",
                        strerror(errno));
        n->failing = true;
}

/* Sends `head` followed by the current STATUS= line. */
static void notify_with_status(struct sdnotify *n, const char *head)
{
        char status[sizeof(n->status_sent)];
        engine_status(n->eng, status, sizeof(status));
        char msg[256];
        snprintf(msg, sizeof(msg), "%sSTATUS=%s", head, status);
        notify(n, msg);
        snprintf(n->status_sent, sizeof(n->status_sent), "%s", status);
        n->status_gen = engine_generation(n->eng);
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
        (void)fd;
        (void)what;
        notify(arg, "WATCHDOG=1");
}

/* Every check result bumps the generation; only then can the line change. */
static void on_status(evutil_socket_t fd, short what, void *arg)
{
        struct sdnotify *n = arg;
        (void)fd;
        (void)what;
        uint64_t gen = engine_generation(n->eng);
        if (gen == n->status_gen)
                return;
        n->status_gen = gen;
        char status[sizeof(n->status_sent)];
        engine_status(n->eng, status, sizeof(status));
        if (strcmp(status, n->status_sent) == 0)
                return;
        char msg[sizeof(status) + 8];
        snprintf(msg, sizeof(msg), "STATUS=%s", status);
        notify(n, msg);
        memcpy(n->status_sent, status, sizeof(status));
}

/* WATCHDOG_USEC in microseconds, or 0 when unset, invalid, or meant for
 * another process (WATCHDOG_PID names the main process of the unit). */
static uint64_t watchdog_usec(void)
{
        const char *s = getenv("WATCHDOG_USEC");
        if (s == NULL || *s == '\0')
                return 0;
        char *end;
        errno = 0;
        unsigned long long us = strtoull(s, &end, 10);
        if (errno != 0 || *end != '\0' || us == 0) {
                log_msg(LOG_WARN, NULL, "sd_notify: ignoring WATCHDOG_USEC=%s: not a number", s);
                return 0;
        }
        const char *pid = getenv("WATCHDOG_PID");
        if (pid != NULL && *pid != '\0') {
                long p = strtol(pid, &end, 10);
                if (*end != '\0' || p != (long)getpid())
                        return 0;
        }
        return (uint64_t)us;
}

struct sdnotify *sdnotify_new(struct event_base *base, const struct engine *eng)
{
        const char *name = getenv("NOTIFY_SOCKET");
        if (name == NULL || *name == '\0')
                return NULL;
        struct sdnotify *n = calloc(1, sizeof(*n));
        if (n == NULL)
                abort();
        n->base = base;
        n->eng = eng;
        n->fd = -1;
        if (notify_addr(name, &n->addr, &n->addrlen) != 0) {
                log_msg(LOG_WARN, NULL,
                        "sd_notify: ignoring NOTIFY_SOCKET: not a socket path or @abstract name");
                free(n);
                return NULL;
        }
        n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (n->fd < 0) {
                log_msg(LOG_WARN, NULL, "sd_notify: socket: %s", strerror(errno));
                free(n);
                return NULL;
        }
        uint64_t us = watchdog_usec();
        if (us > 0) {
                uint64_t half = us / 2;
                struct timeval tv = {.tv_sec = (time_t)(half / 1000000),
                                     .tv_usec = (suseconds_t)(half % 1000000)};
                n->watchdog = event_new(base, -1, EV_PERSIST, on_watchdog, n);
                if (n->watchdog == NULL || event_add(n->watchdog, &tv) != 0)
                        abort();
                log_msg(LOG_INFO, NULL, "sd_notify: watchdog every %.3f s (WATCHDOG_USEC=%llu)",
                        (double)half / 1e6, (unsigned long long)us);
        }
        struct timeval sec = {.tv_sec = 1, .tv_usec = 0};
        n->status = event_new(base, -1, EV_PERSIST, on_status, n);
        if (n->status == NULL || event_add(n->status, &sec) != 0)
                abort();
        return n;
}

void sdnotify_free(struct sdnotify *n)
{
        if (n == NULL)
                return;
        if (n->status != NULL)
                event_free(n->status);
        if (n->watchdog != NULL)
                event_free(n->watchdog);
        close(n->fd);
        free(n);
}

void sdnotify_ready(struct sdnotify *n)
{
        if (n != NULL && !n->stopping)
                notify_with_status(n, "READY=1\n");
}

void sdnotify_reloading(struct sdnotify *n)
{
        if (n == NULL || n->stopping)
                return;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        char msg[128];
        snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
                 (unsigned long long)ts.tv_sec * 1000000ULL +
                     (unsigned long long)ts.tv_nsec / 1000ULL);
        notify(n, msg);
        snprintf(n->status_sent, sizeof(n->status_sent), "reloading");
}

/* The timers stop here: after STOPPING=1, systemd waits for the exit and a
 * late WATCHDOG=1 or STATUS= line would only be noise. */
void sdnotify_stopping(struct sdnotify *n)
{
        if (n == NULL || n->stopping)
                return;
        n->stopping = true;
        if (n->watchdog != NULL)
                event_del(n->watchdog);
        event_del(n->status);
        notify(n, "STOPPING=1\nSTATUS=stopping");
}
