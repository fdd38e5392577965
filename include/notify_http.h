/* Outbound HTTP POSTs on the daemon's libevent loop: libcurl's multi socket
 * interface (the pattern of curl's hiperfifo example).  The only file that
 * includes curl.  Nothing here blocks: name resolution runs in libcurl's
 * resolver thread, sockets and timers are libevent events.
 *
 * HTTPS is verified against the system's CA bundle, or `ca_file`; proxies
 * come from the environment (http_proxy, https_proxy, no_proxy) as libcurl
 * reads them. */
#ifndef HEALTHD_NOTIFY_HTTP_H
#define HEALTHD_NOTIFY_HTTP_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct nhttp;
struct nhttp_req;

/* Called once per request that was not cancelled: `status` is the HTTP
 * status, or 0 with `error` (libcurl's text, which holds no URL) when no
 * response came.  The request is freed after the call returns; a new one
 * may be started from inside. */
typedef void (*nhttp_done_fn)(void *arg, long status, const char *error);

/* The library nhttp_load() opens: libcurl's soname on Debian 12. */
#define NHTTP_LIBCURL "libcurl.so.4"

/* Loads libcurl (dlopen) and initialises it, once: false with `error` when
 * it is missing, older than 7.87 or not built thread-safe (it may be loaded
 * beside the login threads).  Every other verb needs it loaded; the
 * daemon calls it when a configuration names a notifier, so a daemon
 * without notifiers never maps libcurl. */
bool nhttp_load(char *error, size_t errlen);
/* curl_global_cleanup, when loaded. */
void nhttp_global_cleanup(void);

struct nhttp *nhttp_new(struct event_base *base);
/* Cancels every request still running (no callbacks). */
void nhttp_free(struct nhttp *h);

struct nhttp_post {
        const char *url;
        const char *bearer_token; /* NULL: none */
        const char *ca_file;      /* NULL: the system's bundle */
        const char *body;         /* copied */
        size_t body_len;
        int64_t timeout_ms; /* the whole request, connection included */
};

/* Starts a POST of application/json; NULL when libcurl refused it (then
 * `error` says why and no callback comes). */
struct nhttp_req *nhttp_post(struct nhttp *h, const struct nhttp_post *p, nhttp_done_fn fn,
                             void *arg, char *error, size_t errlen);
/* Stops a request; its callback will not be called. */
void nhttp_cancel(struct nhttp_req *r);

/* "threaded", "c-ares" or "blocking": how this libcurl resolves names. */
const char *nhttp_resolver(void);

#endif
