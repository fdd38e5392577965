/* The HTTP front: libmicrohttpd in external-epoll mode, driven by the
 * libevent loop (no second thread).  Answers come from cached renders of
 * the engine's state; a request never causes database I/O. */
#ifndef HEALTHD_HTTP_H
#define HEALTHD_HTTP_H

#include "config.h"
#include "target.h"

#include <event2/event.h>
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

struct http *http_new(struct event_base *base, const struct config *cfg, struct engine *eng,
                      char *err, size_t errlen);
/* After a reload: the new config (token) and engine state.  Listen address
 * and limits need a restart. */
void http_update(struct http *h, const struct config *cfg);
/* The record behind /events and the state metrics (SPEC 11); may be NULL. */
struct record;
void http_set_record(struct http *h, struct record *r);
void http_free(struct http *h);

#endif
