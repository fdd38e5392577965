/* Asynchronous name resolution on the loop (libevent evdns).  Numeric
 * addresses are answered at once without a query; names go to the
 * nameservers given (or those of /etc/resolv.conf), after /etc/hosts.
 * The caller owns the deadline: a lookup ends only by its callback or by
 * resolve_cancel(). */
#ifndef HEALTHD_RESOLVE_H
#define HEALTHD_RESOLVE_H

#include <event2/event.h>
#include <stddef.h>

struct resolver;
struct resolve_req;

/* err == 0: addr is a numeric address.  Otherwise msg says why. */
typedef void (*resolve_cb)(void *arg, int err, const char *addr, const char *msg);

/* nameservers: NULL for /etc/resolv.conf, else "ip[:port],ip[:port]". */
struct resolver *resolver_new(struct event_base *base, const char *nameservers, char *err,
                              size_t errlen);
/* Sends later lookups to other nameservers (a reload).  Lookups already
 * sent finish on the old ones.  Returns 0, or -1 with err (the resolver is
 * unchanged then). */
int resolver_set_nameservers(struct resolver *r, const char *nameservers, char *err, size_t errlen);
void resolver_free(struct resolver *r);

/* Starts a lookup.  May call cb before it returns (numeric or cached
 * answers), in which case it returns NULL. */
struct resolve_req *resolve_start(struct resolver *r, const char *host, resolve_cb cb, void *arg);
/* Cancels a lookup whose callback has not run; the callback never runs. */
void resolve_cancel(struct resolve_req *req);

#endif
