/* The HTTP front: libmicrohttpd in external-epoll mode, driven by the
 * libevent loop (no second thread).  Answers come from cached renders of
 * the engine's state; a request never causes database I/O. */
#ifndef HEALTHD_HTTP_H
#define HEALTHD_HTTP_H

#include "config.h"
#include "target.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

enum route {
        ROUTE_NOT_FOUND,
        ROUTE_LIVEZ,
        ROUTE_READYZ,
        ROUTE_STARTUPZ,
        ROUTE_HEALTH_TARGET,
        ROUTE_STATUS,
        ROUTE_METRICS,
        ROUTE_EVENTS,
};

/* Pure routing: maps a path (no query) to a route; for /health/{target}
 * copies the target name into `target` (empty when it does not fit). */
enum route http_route(const char *path, char *target, size_t tlen);

struct http;

/* A certificate chain and its private key for HTTPS, loaded from PEM files
 * and checked to belong together.  The key's bytes are wiped after
 * parsing and never appear in a message. */
struct http_tls;

/* NULL with the reason in err (the file named, never its content). */
struct http_tls *http_tls_load(const char *cert_file, const char *key_file, char *err,
                               size_t errlen);
void http_tls_free(struct http_tls *t);
/* The first certificate's notAfter (Unix seconds). */
long long http_tls_not_after(const struct http_tls *t);

/* With cfg->tls_cert_file set, serves HTTPS only (SPEC 13). */
struct http *http_new(struct event_base *base, const struct config *cfg, struct engine *eng,
                      char *err, size_t errlen);
/* After a reload: the new config (token) and engine state.  Listen address
 * and limits need a restart. */
void http_update(struct http *h, const struct config *cfg);
/* The record behind /events and the state metrics (SPEC 11); may be NULL. */
struct record;
void http_set_record(struct http *h, struct record *r);
/* The notifiers shown in /status and /metrics (SPEC 12). */
struct notify_hub;
void http_set_notify(struct http *h, struct notify_hub *hub);
/* True when the listener speaks HTTPS. */
bool http_tls_on(const struct http *h);
/* Serves `t` (taken over) to every new TLS handshake from now on, without
 * re-binding the port; connections already open keep theirs, and the old
 * pair is freed once none is left. */
void http_tls_use(struct http *h, struct http_tls *t);
void http_free(struct http *h);

#endif
