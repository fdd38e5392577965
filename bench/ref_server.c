/* The HTTP floor for bench/run.py: a trivial libmicrohttpd server driven from
 * a libevent loop exactly as hdms-healthd drives its own (MHD_USE_EPOLL,
 * MHD's epoll fd watched by libevent, a timer from MHD_get_timeout; the same
 * connection limits, memory limit and timeout; GET answered on the second
 * call so the connection is kept), answering every request with a fixed
 * 29-byte JSON body and the daemon's headers. wrk against it, beside wrk
 * against /readyz, shows what the machine gives at that moment.
 *
 *   ref-server PORT [MEMORY_LIMIT]
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct MHD_Daemon *mhd;
static struct event *timer;
static const char body[] = "{\"status\":\"pass\",\"checks\":{}}";

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
        static int seen;
        (void)cls;
        (void)url;
        (void)method;
        (void)version;
        (void)upload_data;
        if (*con_cls == NULL) {
                *con_cls = &seen;
                return MHD_YES;
        }
        *upload_data_size = 0;
        struct MHD_Response *r = MHD_create_response_from_buffer(
            sizeof(body) - 1, (void *)(size_t)body, MHD_RESPMEM_MUST_COPY);
        if (r == NULL)
                return MHD_NO;
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/health+json");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'none'; style-src 'unsafe-inline'; img-src data:");
        enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
}

static void rearm(void)
{
        MHD_UNSIGNED_LONG_LONG ms;
        if (MHD_get_timeout(mhd, &ms) == MHD_YES) {
                struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
                                     .tv_usec = (suseconds_t)(ms % 1000) * 1000};
                evtimer_add(timer, &tv);
        } else {
                evtimer_del(timer);
        }
}

static void on_mhd(evutil_socket_t fd, short what, void *arg)
{
        (void)fd;
        (void)what;
        (void)arg;
        MHD_run(mhd);
        rearm();
}

static void on_term(evutil_socket_t fd, short what, void *arg)
{
        (void)fd;
        (void)what;
        event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
        if (argc < 2) {
                fprintf(stderr, "usage: ref-server PORT [MEMORY_LIMIT]\n");
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        int port = atoi(argv[1]);
        size_t memory = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 256 * 1024;
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof(sa));
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        struct event_base *base = event_base_new();
        mhd = MHD_start_daemon(
            MHD_USE_EPOLL, (uint16_t)port, NULL, NULL, answer, NULL, MHD_OPTION_SOCK_ADDR, &sa,
            MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_CONNECTION_LIMIT, 256u,
            MHD_OPTION_PER_IP_CONNECTION_LIMIT, 32u, MHD_OPTION_CONNECTION_MEMORY_LIMIT, memory,
            MHD_OPTION_SIGPIPE_HANDLED_BY_APP, (int)1, MHD_OPTION_END);
        if (base == NULL || mhd == NULL) {
                fprintf(stderr, "ref-server: cannot listen on 127.0.0.1:%d\n", port);
                return 1;
        }
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_EPOLL_FD);
        struct event *ev = event_new(base, info->epoll_fd, EV_READ | EV_PERSIST, on_mhd, NULL);
        struct event *term = evsignal_new(base, SIGTERM, on_term, base);
        timer = evtimer_new(base, on_mhd, NULL);
        event_add(ev, NULL);
        event_add(term, NULL);
        rearm();
        event_base_dispatch(base);
        event_free(ev);
        event_free(term);
        event_free(timer);
        MHD_stop_daemon(mhd);
        event_base_free(base);
        return 0;
}
