#include "resolve.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One evdns base and its nameservers.  A reload with other nameservers
 * makes a new one current; the old one is retired, answers the lookups
 * already sent through it, and is freed once none is left.  Not at once:
 * after our callback, evdns may still run a deferred callback of the same
 * lookup that reads the base (the cancel of the AAAA query when the A
 * answer came alone, or of the second query of a cancelled lookup), so a
 * retired base is freed only after it has been idle for REAP_DELAY, many
 * loop turns later. */
struct dns_gen {
        struct evdns_base *dns;
        int inflight; /* lookups whose callback has not run */
        struct dns_gen *next_retired;
};

struct resolver {
        struct event_base *base;
        struct dns_gen *cur;
        struct dns_gen *retired;
        struct event *reap; /* frees retired generations that are idle */
};

struct resolve_req {
        struct evdns_getaddrinfo_request *req;
        struct resolver *r;
        struct dns_gen *gen;
        resolve_cb cb;
        void *arg;
        char host[256];
};

static void gen_free(struct dns_gen *g)
{
        if (g == NULL)
                return;
        evdns_base_free(g->dns, 1);
        free(g);
}

static struct dns_gen *gen_new(struct event_base *base, const char *nameservers, char *err,
                               size_t errlen)
{
        struct dns_gen *g = calloc(1, sizeof(*g));
        if (g == NULL)
                abort();
        /* No EVDNS_BASE_INITIALIZE_NAMESERVERS with DISABLE_WHEN_INACTIVE:
         * libevent 2.1.12 applies the latter too late (libevent#1488). */
        g->dns = evdns_base_new(base, 0);
        if (g->dns == NULL) {
                snprintf(err, errlen, "cannot create a DNS resolver");
                free(g);
                return NULL;
        }
        if (nameservers != NULL && nameservers[0] != '\0') {
                char *list = strdup(nameservers);
                if (list == NULL)
                        abort();
                char *save = NULL;
                for (char *tok = strtok_r(list, ", ", &save); tok != NULL;
                     tok = strtok_r(NULL, ", ", &save)) {
                        if (evdns_base_nameserver_ip_add(g->dns, tok) != 0) {
                                snprintf(err, errlen,
                                         "nameservers: '%s' is not a numeric ip[:port]", tok);
                                free(list);
                                gen_free(g);
                                return NULL;
                        }
                }
                free(list);
                evdns_base_load_hosts(g->dns, NULL);
        } else {
                /* A missing or empty resolv.conf is not fatal: /etc/hosts
                 * and numeric addresses still work. */
                evdns_base_resolv_conf_parse(g->dns, DNS_OPTIONS_ALL, "/etc/resolv.conf");
                evdns_base_load_hosts(g->dns, NULL);
        }
        /* Retransmit within a check's deadline; the caller's timer ends it. */
        evdns_base_set_option(g->dns, "timeout:", "0.5");
        evdns_base_set_option(g->dns, "attempts:", "2");
        return g;
}

/* Frees the retired generations with no lookup left. */
static void on_reap(evutil_socket_t fd, short what, void *arg)
{
        struct resolver *r = arg;
        (void)fd;
        (void)what;
        struct dns_gen **pp = &r->retired;
        while (*pp != NULL) {
                struct dns_gen *g = *pp;
                if (g->inflight == 0) {
                        *pp = g->next_retired;
                        gen_free(g);
                } else {
                        pp = &g->next_retired;
                }
        }
}

#define REAP_DELAY_MS 1000

static void schedule_reap(struct resolver *r)
{
        struct timeval delay = {REAP_DELAY_MS / 1000, (REAP_DELAY_MS % 1000) * 1000};
        evtimer_add(r->reap, &delay);
}

struct resolver *resolver_new(struct event_base *base, const char *nameservers, char *err,
                              size_t errlen)
{
        struct resolver *r = calloc(1, sizeof(*r));
        if (r == NULL)
                abort();
        r->base = base;
        r->reap = evtimer_new(base, on_reap, r);
        r->cur = gen_new(base, nameservers, err, errlen);
        if (r->reap == NULL || r->cur == NULL) {
                if (r->reap == NULL)
                        snprintf(err, errlen, "cannot create a DNS resolver");
                resolver_free(r);
                return NULL;
        }
        return r;
}

int resolver_set_nameservers(struct resolver *r, const char *nameservers, char *err, size_t errlen)
{
        struct dns_gen *g = gen_new(r->base, nameservers, err, errlen);
        if (g == NULL)
                return -1;
        r->cur->next_retired = r->retired;
        r->retired = r->cur;
        r->cur = g;
        schedule_reap(r);
        return 0;
}

void resolver_free(struct resolver *r)
{
        if (r == NULL)
                return;
        /* Every lookup has been cancelled by now (the engine goes first),
         * but evdns delivers a cancel through a deferred callback, which
         * only a turn of the loop runs: without these turns a lookup in
         * flight at shutdown is never freed.  Then no callback can still
         * need a retired generation. */
        for (int i = 0; i < 4; i++)
                event_base_loop(r->base, EVLOOP_NONBLOCK);
        while (r->retired != NULL) {
                struct dns_gen *g = r->retired;
                r->retired = g->next_retired;
                gen_free(g);
        }
        gen_free(r->cur);
        if (r->reap != NULL)
                event_free(r->reap);
        free(r);
}

static void on_addrinfo(int result, struct evutil_addrinfo *res, void *arg)
{
        struct resolve_req *q = arg;
        char buf[INET6_ADDRSTRLEN] = "";
        if (result == 0 && res != NULL) {
                const void *a =
                    res->ai_family == AF_INET6
                        ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                        : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
                evutil_inet_ntop(res->ai_family, a, buf, sizeof(buf));
        }
        if (res != NULL)
                evutil_freeaddrinfo(res);
        resolve_cb cb = q->cb;
        void *cbarg = q->arg;
        char host[256];
        snprintf(host, sizeof(host), "%s", q->host);
        struct dns_gen *gen = q->gen;
        struct resolver *r = q->r;
        free(q);
        if (--gen->inflight == 0 && gen != r->cur)
                schedule_reap(r);
        if (result == EVUTIL_EAI_CANCEL)
                return;
        if (result != 0 || buf[0] == '\0') {
                char msg[400];
                snprintf(msg, sizeof(msg), "cannot resolve '%s': %s", host,
                         result != 0 ? evutil_gai_strerror(result) : "no address");
                cb(cbarg, result != 0 ? result : -1, NULL, msg);
                return;
        }
        cb(cbarg, 0, buf, NULL);
}

struct resolve_req *resolve_start(struct resolver *r, const char *host, resolve_cb cb, void *arg)
{
        struct in6_addr a6;
        struct in_addr a4;
        if (inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1) {
                cb(arg, 0, host, NULL);
                return NULL;
        }
        struct resolve_req *q = calloc(1, sizeof(*q));
        if (q == NULL)
                abort();
        q->r = r;
        q->gen = r->cur;
        q->cb = cb;
        q->arg = arg;
        snprintf(q->host, sizeof(q->host), "%s", host);
        struct evutil_addrinfo hints;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_protocol = IPPROTO_TCP;
        /* May call on_addrinfo at once (hosts file, cache) and return NULL;
         * q is freed by then. */
        r->cur->inflight++;
        struct evdns_getaddrinfo_request *req =
            evdns_getaddrinfo(r->cur->dns, host, NULL, &hints, on_addrinfo, q);
        if (req == NULL)
                return NULL;
        q->req = req;
        return q;
}

void resolve_cancel(struct resolve_req *q)
{
        if (q == NULL)
                return;
        /* on_addrinfo runs with EVUTIL_EAI_CANCEL and frees q. */
        evdns_getaddrinfo_cancel(q->req);
}
