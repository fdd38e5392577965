/* hdms-healthd: argv, event base, signal events, startup and shutdown order. */
#include "cmd_probe.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "notify.h"
#include "notify_http.h"
#include "notify_hub.h"
#include "pglogin.h"
#include "record.h"
#include "render.h"
#include "resolve.h"
#include "sdnotify.h"
#include "target.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char usage_text[] =
    "Usage: hdms-healthd [OPTIONS]                 run the daemon\n"
    "       hdms-healthd --check-config [-c FILE]  validate and print the configuration\n"
    "       hdms-healthd --once [--json] [TARGET...]  one round of checks, then exit\n"
    "       hdms-healthd probe [--cacert FILE] [--insecure] [URL]\n"
    "                                              HTTP(S) GET for container healthchecks\n"
    "\n"
    "Health-check sidecar for PostgreSQL, PgBouncer and Redis: checks each target on\n"
    "timers and answers /livez, /readyz, /startupz, /health/TARGET, /status, /events\n"
    "and /metrics over HTTP.  With state_file (HEALTHD_STATE_FILE) set, its history and\n"
    "event journal survive restarts.\n"
    "\n"
    "Options:\n"
    "  -c, --config FILE        INI configuration file (default: none, the Compose stack)\n"
    "  -l, --listen ADDR:PORT   HTTP listen address (default 127.0.0.1:8080)\n"
    "      --log-format FORMAT  text or json (default text)\n"
    "      --log-level LEVEL    debug, info, warn or error (default info)\n"
    "      --check-config       validate the configuration, print it with secrets\n"
    "                           redacted; exit 0 when valid, 2 when not\n"
    "      --once               run one check of each target (or of the TARGETs named),\n"
    "                           print a report; exit 0 pass/warn, 1 fail, 2 usage error\n"
    "      --json               with --once: print the /status JSON report\n"
    "  -h, --help               show this help\n"
    "  -V, --version            show the version\n"
    "\n"
    "probe [--cacert FILE] [--insecure] [URL]: GET URL (default\n"
    "http://127.0.0.1:PORT/livez, PORT from HEALTHD_LISTEN or 8080; https:// when\n"
    "HEALTHD_TLS_CERT_FILE is set) with a 3 s timeout; exit 0 on 2xx/3xx, 1 otherwise.\n"
    "An https:// URL is verified against --cacert FILE (default: the system's roots).\n"
    "\n"
    "Environment: POSTGRES_*, PGBOUNCER_*, REDIS_*, CELERY_QUEUES feed the default\n"
    "targets; HEALTHD_<KEY> sets any [daemon] key (HEALTHD_LISTEN, HEALTHD_INTERVAL, ...);\n"
    "every secret X may come from the file named by X_FILE.  See hdms-healthd(8).\n"
    "TLS: POSTGRES_SSLMODE, POSTGRES_SSLROOTCERT, PGBOUNCER_SSLMODE, PGBOUNCER_SSLROOTCERT\n"
    "(sslmode, sslrootcert, sslcert, sslkey, cert_expiry_warn per target in the file);\n"
    "HEALTHD_TLS_CERT_FILE and HEALTHD_TLS_KEY_FILE make the endpoint serve HTTPS.\n"
    "Notifications: HEALTHD_ALERTMANAGER_URL and HEALTHD_WEBHOOK_URL (or [notify NAME]\n"
    "sections) post failures and recoveries to an Alertmanager or a webhook.\n"
    "Under systemd (NOTIFY_SOCKET, WATCHDOG_USEC set) it speaks sd_notify: ready,\n"
    "status, reload, watchdog and stopping messages.\n";

/* ---- the running daemon ---- */

/* The signals that the daemon handles as libevent events.  Until those
 * events exist, a SIGHUP or SIGTERM would take its default action and kill
 * the process (a reload sent by a supervisor just after the start, say), so
 * they are blocked from the start of main: one that arrives early waits,
 * pending, and is handled by the loop once the events exist.  Blocked
 * signals are inherited across fork and exec; the daemon starts no other
 * program, and the commands (probe, --check-config, --once) unblock them as
 * soon as they are known. */
static sigset_t early_signals(void)
{
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGHUP);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        return set;
}

static void unblock_early_signals(void)
{
        sigset_t set = early_signals();
        sigprocmask(SIG_UNBLOCK, &set, NULL);
}

struct daemon {
        struct event_base *base;
        int stuck_logins; /* login threads still running at the end */
        struct config_overrides ov;
        struct config *cfg;
        struct resolver *res;
        struct engine *eng;
        struct http *http;
        struct record *rec;
        struct notify_hub *hub;
        const char *stop_signal;
        struct sdnotify *sdn; /* NULL unless systemd gave NOTIFY_SOCKET */
        struct event *sig_term, *sig_int, *sig_hup;
};

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
        struct daemon *d = arg;
        (void)what;
        d->stop_signal = sig == SIGTERM ? "SIGTERM" : "SIGINT";
        log_msg(LOG_INFO, NULL, "received %s, stopping", d->stop_signal);
        sdnotify_stopping(d->sdn);
        event_base_loopbreak(d->base);
}

/* Descriptors a configuration may hold at once: a socket per target (two for
 * a pgbouncer target: the pooler and the admin console), every HTTP
 * connection, and a margin for the loop, the listener, DNS and stdio. */
static rlim_t nofile_need(const struct config *cfg, long http_max_connections)
{
        rlim_t n = 32 + (rlim_t)http_max_connections;
        for (size_t i = 0; i < cfg->ntargets; i++)
                n += cfg->targets[i].kind == KIND_PGBOUNCER ? 2 : 1;
        return n;
}

/* The usual soft limit of 1,024 descriptors is too low for a large target set:
 * raise it as far as the configuration needs (up to the hard limit). When even
 * the hard limit is too low, say so and refuse the configuration: otherwise
 * the targets would take the last descriptors and HTTP, the healthcheck
 * itself, could accept no connection. */
static bool fit_nofile(const struct config *cfg, long http_max_connections, char *err,
                       size_t errlen)
{
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
                return true;
        rlim_t need = nofile_need(cfg, http_max_connections);
        if (rl.rlim_cur >= need)
                return true;
        rlim_t was = rl.rlim_cur;
        const char *why = NULL;
        if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need) {
                rl.rlim_cur = need;
                if (setrlimit(RLIMIT_NOFILE, &rl) == 0) {
                        log_msg(LOG_INFO, NULL,
                                "open-file limit raised from %llu to %llu for %zu targets",
                                (unsigned long long)was, (unsigned long long)need, cfg->ntargets);
                        return true;
                }
                why = strerror(errno); /* e.g. above fs.nr_open */
        }
        char hard[32];
        if (rl.rlim_max == RLIM_INFINITY)
                snprintf(hard, sizeof(hard), "unlimited");
        else
                snprintf(hard, sizeof(hard), "%llu", (unsigned long long)rl.rlim_max);
        snprintf(err, errlen,
                 "open-file limit %llu (hard %s) is below the %llu that %zu targets and "
                 "%ld HTTP connections need%s%s; raise it (ulimit -n, systemd LimitNOFILE, "
                 "Compose ulimits: nofile), or lower http_max_connections or the targets",
                 (unsigned long long)was, hard, (unsigned long long)need, cfg->ntargets,
                 http_max_connections, why != NULL ? ", and raising it failed: " : "",
                 why != NULL ? why : "");
        return false;
}

/* One line naming the HTTPS certificate in service and its expiry (never
 * anything of the key but its file's name). */
static void log_tls_pair(const struct http_tls *t, const struct config *cfg, const char *what)
{
        char when[40] = "unknown";
        time_t na = (time_t)http_tls_not_after(t);
        struct tm tm;
        if (na > 0 && gmtime_r(&na, &tm) != NULL)
                strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        log_msg(LOG_INFO, NULL, "%s %s (key %s), valid until %s", what, cfg->tls_cert_file,
                cfg->tls_key_file, when);
}

static void on_reload(evutil_socket_t sig, short what, void *arg)
{
        struct daemon *d = arg;
        (void)sig;
        (void)what;
        char err[1024];
        struct config *n = config_load(&d->ov, environ, err, sizeof(err));
        if (n == NULL) {
                log_msg(LOG_ERROR, NULL, "reload refused, the old configuration stays: %s", err);
                return;
        }
        if (strcmp(n->listen_host, d->cfg->listen_host) != 0 ||
            n->listen_port != d->cfg->listen_port ||
            n->http_max_connections != d->cfg->http_max_connections ||
            n->http_max_connections_per_ip != d->cfg->http_max_connections_per_ip ||
            n->http_memory_limit != d->cfg->http_memory_limit ||
            n->http_connection_timeout_ms != d->cfg->http_connection_timeout_ms)
                log_msg(LOG_WARN, NULL,
                        "reload: listen address and HTTP limits change only on restart");
        /* with the HTTP limit in force: it changes only on restart */
        if (!fit_nofile(n, d->cfg->http_max_connections, err, sizeof(err))) {
                log_msg(LOG_ERROR, NULL, "reload refused, the old configuration stays: %s", err);
                config_free(n);
                return;
        }
        /* SIGHUP re-reads the HTTPS pair (a renewed certificate keeps its
         * path); a pair that does not load refuses the whole reload, and the
         * old one keeps serving. */
        struct http_tls *pair = NULL;
        if ((n->tls_cert_file != NULL) != http_tls_on(d->http))
                log_msg(LOG_WARN, NULL, "reload: HTTPS is turned %s only on restart",
                        http_tls_on(d->http) ? "off" : "on");
        else if (n->tls_cert_file != NULL &&
                 (pair = http_tls_load(n->tls_cert_file, n->tls_key_file, err, sizeof(err))) ==
                     NULL) {
                log_msg(LOG_ERROR, NULL, "reload refused, the old configuration stays: %s", err);
                config_free(n);
                return;
        }
        /* the first notifier: libcurl loaded (late, so that a reload
         * refused for another reason does not load it) */
        if (n->nnotifiers > 0 && !nhttp_load(err, sizeof(err))) {
                log_msg(LOG_ERROR, NULL, "reload refused, the old configuration stays: %s", err);
                http_tls_free(pair);
                config_free(n);
                return;
        }
        /* Last of the steps that can refuse: nothing is half-applied. */
        bool ns_changed =
            (n->nameservers == NULL) != (d->cfg->nameservers == NULL) ||
            (n->nameservers != NULL && strcmp(n->nameservers, d->cfg->nameservers) != 0);
        if (ns_changed && resolver_set_nameservers(d->res, n->nameservers, err, sizeof(err)) != 0) {
                log_msg(LOG_ERROR, NULL, "reload refused, the old configuration stays: %s", err);
                http_tls_free(pair);
                config_free(n);
                return;
        }
        if (pair != NULL) {
                log_tls_pair(pair, n, "reload: HTTPS now serves");
                http_tls_use(d->http, pair);
        }
        if (ns_changed)
                log_msg(LOG_INFO, NULL, "reload: new lookups go to nameservers %s",
                        n->nameservers != NULL ? n->nameservers : "of /etc/resolv.conf");
        log_setup(n->log_format, n->log_level);
        record_before_reload(d->rec);
        engine_reload(d->eng, n);
        record_after_reload(d->rec, n);
        notify_hub_reload(d->hub, n, d->eng);
        http_update(d->http, n);
        config_free(d->cfg);
        d->cfg = n;
        log_msg(LOG_INFO, NULL, "configuration reloaded: %zu targets", n->ntargets);
}

/* systemd learns that a reload began and when it ended, whether the new
 * configuration was taken or refused (the old one then stays in force). */
static void on_hup(evutil_socket_t sig, short what, void *arg)
{
        struct daemon *d = arg;
        sdnotify_reloading(d->sdn);
        on_reload(sig, what, arg);
        sdnotify_ready(d->sdn);
}

static void on_status(void *arg, const struct notify_event *ev)
{
        notify_hub_status(arg, ev);
}

static int run_daemon(struct daemon *d)
{
        char err[512];
        /* PRECISE_TIMER: libevent 2.1 otherwise times events with
         * CLOCK_MONOTONIC_COARSE (4 ms steps here), so every timer fires up
         * to a tick late and the loop lag it measures is mostly that tick.
         * EPOLL_USE_CHANGELIST: a read event re-armed in its own callback
         * (hiredis, libpq) costs no epoll_ctl pair; safe as no fd is dup()ed. */
        struct event_config *ec = event_config_new();
        if (ec != NULL) {
                event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER |
                                              EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
                d->base = event_base_new_with_config(ec);
                event_config_free(ec);
        }
        if (d->base == NULL) {
                fprintf(stderr, "hdms-healthd: cannot create the event loop\n");
                return 1;
        }
        d->res = resolver_new(d->base, d->cfg->nameservers, err, sizeof(err));
        if (d->res == NULL) {
                fprintf(stderr, "hdms-healthd: %s\n", err);
                return 2;
        }
        if (!fit_nofile(d->cfg, d->cfg->http_max_connections, err, sizeof(err))) {
                fprintf(stderr, "hdms-healthd: %s\n", err);
                return 1;
        }
        d->eng = engine_new(d->base, d->res, d->cfg);
        /* before HTTP serves and before any check runs: restored history is
         * in place for the first answer and the first result */
        d->rec = record_new(d->base, d->cfg, d->eng);
        /* after the record: it restores what the state file kept of them */
        d->hub = notify_hub_new(d->base, d->cfg);
        record_set_notify(d->rec, d->hub);
        engine_set_status_listener(d->eng, on_status, d->hub);
        d->http = http_new(d->base, d->cfg, d->eng, err, sizeof(err));
        if (d->http == NULL) {
                fprintf(stderr, "hdms-healthd: %s\n", err);
                return 1;
        }
        http_set_record(d->http, d->rec);
        http_set_notify(d->http, d->hub);
        d->sig_term = evsignal_new(d->base, SIGTERM, on_stop, d);
        d->sig_int = evsignal_new(d->base, SIGINT, on_stop, d);
        d->sig_hup = evsignal_new(d->base, SIGHUP, on_hup, d);
        event_add(d->sig_term, NULL);
        event_add(d->sig_int, NULL);
        event_add(d->sig_hup, NULL);
        /* A signal that came early is delivered now, to libevent's handler. */
        unblock_early_signals();
        log_msg(LOG_INFO, NULL, "hdms-healthd %s listening on %s:%d%s, %zu targets",
                HEALTHD_VERSION, d->cfg->listen_host, d->cfg->listen_port,
                http_tls_on(d->http) ? " (HTTPS)" : "", d->cfg->ntargets);
        /* The listener is up: connections wait in its backlog until the loop runs. */
        d->sdn = sdnotify_new(d->base, d->eng);
        sdnotify_ready(d->sdn);
        event_base_dispatch(d->base);
        record_stop(d->rec, d->stop_signal != NULL ? d->stop_signal : "none");
        return 0;
}

static void daemon_free(struct daemon *d)
{
        /* Once its event is gone a signal has its default action again: a
         * second SIGTERM (an impatient supervisor) would kill the daemon in
         * the middle of its cleanup.  The stop is under way: hold them
         * (login threads block every signal, so none is delivered). */
        sigset_t set = early_signals();
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        /* reverse order of creation */
        if (d->sig_hup != NULL)
                event_free(d->sig_hup);
        if (d->sig_int != NULL)
                event_free(d->sig_int);
        if (d->sig_term != NULL)
                event_free(d->sig_term);
        sdnotify_free(d->sdn);
        http_free(d->http);
        record_free(d->rec); /* waits for the last state write */
        if (d->eng != NULL)
                engine_set_status_listener(d->eng, NULL, NULL);
        notify_hub_free(d->hub);
        engine_free(d->eng);
        /* the probes cancelled their logins; their threads end within a
         * poll slice unless one is deep in a hostile SCRAM computation */
        d->stuck_logins = pglogin_shutdown(2.0);
        if (d->stuck_logins > 0)
                log_msg(LOG_WARN, NULL,
                        "%d login thread%s still computing (a server asked for a costly "
                        "authentication); exiting without %s",
                        d->stuck_logins, d->stuck_logins == 1 ? " is" : "s are",
                        d->stuck_logins == 1 ? "it" : "them");
        resolver_free(d->res);
        if (d->base != NULL)
                event_base_free(d->base);
        config_free(d->cfg);
        libevent_global_shutdown();
}

/* ---- --once ---- */

static void once_done(void *arg)
{
        event_base_loopbreak(arg);
}

static int run_once(struct daemon *d, bool json)
{
        char err[512];
        d->base = event_base_new();
        d->res = resolver_new(d->base, d->cfg->nameservers, err, sizeof(err));
        if (d->res == NULL) {
                fprintf(stderr, "hdms-healthd: %s\n", err);
                return 2;
        }
        if (!fit_nofile(d->cfg, 0, err, sizeof(err))) { /* no HTTP */
                fprintf(stderr, "hdms-healthd: %s\n", err);
                return 2;
        }
        d->eng = engine_new(d->base, d->res, d->cfg);
        engine_once(d->eng, once_done, d->base);
        event_base_dispatch(d->base);

        size_t n = engine_count(d->eng);
        struct target_view *v = calloc(n + 1, sizeof(*v));
        if (v == NULL)
                abort();
        for (size_t i = 0; i < n; i++)
                engine_view(d->eng, i, &v[i]);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        struct render_ctx rc = {.version = HEALTHD_VERSION,
                                .now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9,
                                .uptime = engine_uptime(d->eng),
                                .detail = true,
                                .mono = mono_now(),
                                .startup_target_ms = d->cfg->startup_target_ms,
                                .reconnect_target_ms = d->cfg->reconnect_target_ms};
        enum status agg = render_aggregate(v, n);
        if (json) {
                enum status st;
                char *s = render_status_json(v, n, &rc, &st);
                if (s != NULL)
                        printf("%s\n", s);
                free(s);
        } else {
                for (size_t i = 0; i < n; i++) {
                        const struct probe_result *r = v[i].last;
                        printf("%-20s %-9s %-5s %7.1fms", v[i].name, v[i].kind,
                               status_name(v[i].status), v[i].last_duration * 1000.0);
                        if (r != NULL && r->reason[0] != '\0')
                                printf("  %s: %s", r->reason, r->output);
                        putchar('\n');
                }
                printf("overall: %s\n", status_name(agg));
        }
        free(v);
        return agg == ST_FAIL ? 1 : 0;
}

/* ---- main ---- */

int main(int argc, char **argv)
{
        /* First: see early_signals().  (Before ignoring SIGPIPE, so a test
         * that waits for SIGPIPE's disposition knows these are blocked.) */
        sigset_t early = early_signals();
        sigprocmask(SIG_BLOCK, &early, NULL);

        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_IGN;
        sigaction(SIGPIPE, &sa, NULL);

        /* One malloc arena: glibc gives each login thread its own (64 MiB
         * reserved, ~80 KiB touched and kept), for threads that live a few
         * milliseconds and allocate little.  The operator's
         * MALLOC_ARENA_MAX (or GLIBC_TUNABLES' glibc.malloc.arena_max)
         * wins. */
        const char *tun = getenv("GLIBC_TUNABLES");
        if (getenv("MALLOC_ARENA_MAX") == NULL &&
            (tun == NULL || strstr(tun, "glibc.malloc.arena_max") == NULL))
                mallopt(M_ARENA_MAX, 1);

        if (argc > 1 && strcmp(argv[1], "probe") == 0) {
                unblock_early_signals();
                return cmd_probe(argc - 1, argv + 1);
        }

        enum { OPT_LOG_FORMAT = 256, OPT_LOG_LEVEL, OPT_CHECK, OPT_ONCE, OPT_JSON };
        static const struct option opts[] = {
            {"config", required_argument, NULL, 'c'},
            {"listen", required_argument, NULL, 'l'},
            {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
            {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
            {"check-config", no_argument, NULL, OPT_CHECK},
            {"once", no_argument, NULL, OPT_ONCE},
            {"json", no_argument, NULL, OPT_JSON},
            {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, 'V'},
            {NULL, 0, NULL, 0},
        };
        struct daemon d;
        memset(&d, 0, sizeof(d));
        bool check = false, once = false, json = false;
        int c;
        while ((c = getopt_long(argc, argv, "c:l:hV", opts, NULL)) != -1) {
                switch (c) {
                case 'c':
                        d.ov.file = optarg;
                        break;
                case 'l':
                        d.ov.listen = optarg;
                        break;
                case OPT_LOG_FORMAT:
                        d.ov.log_format = optarg;
                        break;
                case OPT_LOG_LEVEL:
                        d.ov.log_level = optarg;
                        break;
                case OPT_CHECK:
                        check = true;
                        break;
                case OPT_ONCE:
                        once = true;
                        break;
                case OPT_JSON:
                        json = true;
                        break;
                case 'h':
                        fputs(usage_text, stdout);
                        return 0;
                case 'V':
                        printf("hdms-healthd %s\n", HEALTHD_VERSION);
                        return 0;
                default:
                        fputs("Try 'hdms-healthd --help'.\n", stderr);
                        return 2;
                }
        }
        if ((optind < argc && !once) || (json && !once) || (check && once)) {
                fprintf(stderr, "hdms-healthd: %s\nTry 'hdms-healthd --help'.\n",
                        json && !once   ? "--json goes with --once"
                        : check && once ? "--check-config and --once exclude each other"
                                        : "unexpected argument");
                return 2;
        }

        /* Commands, not the daemon: SIGTERM and SIGINT stop them at once. */
        if (check || once)
                unblock_early_signals();
        char err[1024];
        d.cfg = config_load(&d.ov, environ, err, sizeof(err));
        if (d.cfg == NULL) {
                fprintf(stderr, "hdms-healthd: configuration error: %s\n", err);
                return 2;
        }
        /* --once sends no notification */
        if (!once && d.cfg->nnotifiers > 0 && !nhttp_load(err, sizeof(err))) {
                fprintf(stderr, "hdms-healthd: configuration error: %s\n", err);
                config_free(d.cfg);
                return 2;
        }
        log_setup(d.cfg->log_format, d.cfg->log_level);
        if (check && d.cfg->tls_cert_file != NULL) {
                /* the pair must load and belong together, as at start */
                struct http_tls *t =
                    http_tls_load(d.cfg->tls_cert_file, d.cfg->tls_key_file, err, sizeof(err));
                if (t == NULL) {
                        fprintf(stderr, "hdms-healthd: configuration error: %s\n", err);
                        config_free(d.cfg);
                        return 2;
                }
                http_tls_free(t);
        }
        if (check) {
                config_print(d.cfg, stdout);
                config_free(d.cfg);
                return 0;
        }
        int rc;
        if (once) {
                if (optind < argc) {
                        for (int i = optind; i < argc; i++)
                                if (config_find_target(d.cfg, argv[i]) == NULL) {
                                        fprintf(stderr, "hdms-healthd: no target named '%s'\n",
                                                argv[i]);
                                        config_free(d.cfg);
                                        return 2;
                                }
                        config_keep_targets(d.cfg, (const char *const *)(argv + optind),
                                            (size_t)(argc - optind));
                }
                rc = run_once(&d, json);
        } else {
                rc = run_daemon(&d);
                if (rc == 0)
                        log_msg(LOG_INFO, NULL, "stopped");
        }
        daemon_free(&d);
        nhttp_global_cleanup();
        if (d.stuck_logins > 0) {
                /* what such a thread holds cannot be freed while it runs,
                 * and exit() would wait for nothing better: leave at once */
                fflush(NULL);
                _exit(rc);
        }
        return rc;
}
