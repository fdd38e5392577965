#include "resolve.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct resolver {
        struct evdns_base *dns;
};

struct resolve_req {
        struct evdns_getaddrinfo_request *req;
        resolve_cb cb;
        void *arg;
        char host[256];
};

struct resolver *resolver_new(struct event_base *base, const char *nameservers, char *err,
                              size_t errlen)
{
        struct resolver *r = calloc(1, sizeof(*r));
        if (r == NULL)
                abort();
        /* No EVDNS_BASE_INITIALIZE_NAMESERVERS with DISABLE_WHEN_INACTIVE:
         * libevent 2.1.12 applies the latter too late (libevent#1488). */
        r->dns = evdns_base_new(base, 0);
        if (r->dns == NULL) {
                snprintf(err, errlen, "cannot create a DNS resolver");
                free(r);
                return NULL;
        }
        if (nameservers != NULL && nameservers[0] != '\0') {
                char *list = strdup(nameservers);
                char *save = NULL;
                for (char *tok = strtok_r(list, ", ", &save); tok != NULL;
                     tok = strtok_r(NULL, ", ", &save)) {
                        if (evdns_base_nameserver_ip_add(r->dns, tok) != 0) {
                                snprintf(err, errlen,
                                         "nameservers: '%s' is not a numeric ip[:port]", tok);
                                free(list);
                                resolver_free(r);
                                return NULL;
                        }
                }
                free(list);
                evdns_base_load_hosts(r->dns, NULL);
        } else {
                /* A missing or empty resolv.conf is not fatal: /etc/hosts
                 * and numeric addresses still work. */
                evdns_base_resolv_conf_parse(r->dns, DNS_OPTIONS_ALL, "/etc/resolv.conf");
                evdns_base_load_hosts(r->dns, NULL);
        }
        /* Retransmit within a check's deadline; the caller's timer ends it. */
        evdns_base_set_option(r->dns, "timeout:", "0.5");
        evdns_base_set_option(r->dns, "attempts:", "2");
        return r;
}

void resolver_free(struct resolver *r)
{
        if (r == NULL)
                return;
        evdns_base_free(r->dns, 1);
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
        free(q);
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
        struct evdns_getaddrinfo_request *req =
            evdns_getaddrinfo(r->dns, host, NULL, &hints, on_addrinfo, q);
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
