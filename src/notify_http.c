/* libcurl's multi socket interface on the libevent loop (notify_http.h).
 *
 * libcurl tells us which sockets to watch (socket_cb) and when to call it
 * back (timer_cb); the loop calls curl_multi_socket_action when a socket is
 * ready or the timer fires, then collects finished transfers.  The timer
 * callback only arms a libevent timer: CURLMOPT_TIMERFUNCTION's man page
 * (7.88.1) warns against calling libcurl from inside it.
 *
 * libcurl is loaded (dlopen) when the first notifier is configured, not at
 * start: it and the libraries only it brings (nghttp2, ssh2, rtmp, psl,
 * brotli, zstd, ...) cost about 110 KiB of private memory in relocated
 * pages and global state, a twentieth of an idle daemon, for a feature
 * most configurations leave off.  Every call goes through `C`. */
#include "notify_http.h"
#include "log.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A response body is not read, only counted: a receiver that sends more
 * than this is cut off (the status already came). */
#define RESPONSE_MAX (64 * 1024)

struct nhttp {
        struct event_base *base;
        CURLM *multi;
        struct event *timer;
        struct nhttp_req *reqs; /* running, for nhttp_free */
        int running;
};

struct nhttp_req {
        struct nhttp *h;
        CURL *easy;
        struct curl_slist *headers;
        nhttp_done_fn fn;
        void *arg;
        size_t received;
        struct nhttp_req *next, *prev;
};

/* One watched socket. */
struct sock {
        struct event *ev;
        struct nhttp *h;
        curl_socket_t fd;
};

/* libcurl's functions, from the library loaded by nhttp_load(). */
static struct {
        void *so;
        CURLcode (*global_init)(long);
        void (*global_cleanup)(void);
        curl_version_info_data *(*version_info)(CURLversion);
        CURLM *(*multi_init)(void);
        CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
        CURLMcode (*multi_cleanup)(CURLM *);
        CURLMcode (*multi_add_handle)(CURLM *, CURL *);
        CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
        CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
        CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
        CURLMsg *(*multi_info_read)(CURLM *, int *);
        const char *(*multi_strerror)(CURLMcode);
        CURL *(*easy_init)(void);
        CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
        CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
        void (*easy_cleanup)(CURL *);
        const char *(*easy_strerror)(CURLcode);
        struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
        void (*slist_free_all)(struct curl_slist *);
} C;

#define SYM(f)                                                                                     \
        {                                                                                          \
                "curl_" #f, &C.f                                                                   \
        }
static const struct {
        const char *name;
        void *slot; /* a function pointer in C */
} syms[] = {
    SYM(global_init),         SYM(global_cleanup), SYM(version_info),     SYM(multi_init),
    SYM(multi_setopt),        SYM(multi_cleanup),  SYM(multi_add_handle), SYM(multi_remove_handle),
    SYM(multi_socket_action), SYM(multi_assign),   SYM(multi_info_read),  SYM(multi_strerror),
    SYM(easy_init),           SYM(easy_setopt),    SYM(easy_getinfo),     SYM(easy_cleanup),
    SYM(easy_strerror),       SYM(slist_append),   SYM(slist_free_all),
};
#undef SYM

bool nhttp_load(char *error, size_t errlen)
{
        if (C.so != NULL)
                return true;
        void *so = dlopen(NHTTP_LIBCURL, RTLD_NOW | RTLD_LOCAL);
        if (so == NULL) {
                snprintf(error, errlen, "notifications need libcurl: %s", dlerror());
                return false;
        }
        for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
                void *f = dlsym(so, syms[i].name);
                if (f == NULL) {
                        snprintf(error, errlen, "notifications need libcurl: %s has no %s",
                                 NHTTP_LIBCURL, syms[i].name);
                        dlclose(so);
                        memset(&C, 0, sizeof(C));
                        return false;
                }
                /* POSIX's dlsym gives functions as void *: copied, not cast */
                memcpy(syms[i].slot, &f, sizeof(f));
        }
        /* CURLOPT_QUICK_EXIT (below) is 7.87's; curl_global_init may run
         * beside the login threads (a reload that adds the first
         * notifier) only where libcurl says it is thread-safe
         * (CURL_VERSION_THREADSAFE, 7.84 and later, Debian's build) */
        const curl_version_info_data *v = C.version_info(CURLVERSION_NOW);
        const char *why = v->version_num < 0x075700                  ? "7.87 or later"
                          : !(v->features & CURL_VERSION_THREADSAFE) ? "a thread-safe build"
                                                                     : NULL;
        if (why != NULL) {
                snprintf(error, errlen, "notifications need libcurl %s, %s is %s", why,
                         NHTTP_LIBCURL, v->version);
                dlclose(so);
                memset(&C, 0, sizeof(C));
                return false;
        }
        CURLcode rc = C.global_init(CURL_GLOBAL_DEFAULT);
        if (rc != CURLE_OK) {
                snprintf(error, errlen, "notifications: libcurl's initialisation failed: %s",
                         C.easy_strerror(rc));
                dlclose(so);
                memset(&C, 0, sizeof(C));
                return false;
        }
        C.so = so;
        return true;
}

void nhttp_global_cleanup(void)
{
        /* libcurl stays mapped: a resolver thread left running by
         * CURLOPT_QUICK_EXIT may still be in it */
        if (C.so != NULL)
                C.global_cleanup();
}

const char *nhttp_resolver(void)
{
        const curl_version_info_data *v = C.version_info(CURLVERSION_NOW);
        if (v->ares != NULL)
                return "c-ares";
        if (v->features & CURL_VERSION_ASYNCHDNS)
                return "threaded";
        return "blocking";
}

static void req_unlink(struct nhttp_req *r)
{
        struct nhttp *h = r->h;
        if (r->prev != NULL)
                r->prev->next = r->next;
        else
                h->reqs = r->next;
        if (r->next != NULL)
                r->next->prev = r->prev;
}

static void req_free(struct nhttp_req *r)
{
        req_unlink(r);
        C.multi_remove_handle(r->h->multi, r->easy);
        C.easy_cleanup(r->easy);
        C.slist_free_all(r->headers);
        free(r);
}

/* Every finished transfer: its callback, then its handle is freed. */
static void collect(struct nhttp *h)
{
        CURLMsg *msg;
        int left;
        while ((msg = C.multi_info_read(h->multi, &left)) != NULL) {
                if (msg->msg != CURLMSG_DONE)
                        continue;
                struct nhttp_req *r = NULL;
                C.easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
                if (r == NULL)
                        continue;
                CURLcode rc = msg->data.result;
                long status = 0;
                if (rc == CURLE_OK || rc == CURLE_WRITE_ERROR)
                        C.easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
                nhttp_done_fn fn = r->fn;
                void *arg = r->arg;
                /* freed first: the callback may start the next request */
                req_free(r);
                fn(arg, status, status > 0 ? NULL : C.easy_strerror(rc));
        }
}

static void on_socket(evutil_socket_t fd, short what, void *arg)
{
        struct nhttp *h = arg;
        int flags = 0;
        if (what & EV_READ)
                flags |= CURL_CSELECT_IN;
        if (what & EV_WRITE)
                flags |= CURL_CSELECT_OUT;
        C.multi_socket_action(h->multi, fd, flags, &h->running);
        collect(h);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
        struct nhttp *h = arg;
        (void)fd;
        (void)what;
        C.multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &h->running);
        collect(h);
}

static int socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
        struct nhttp *h = userp;
        struct sock *k = socketp;
        (void)easy;
        if (what == CURL_POLL_REMOVE) {
                if (k != NULL) {
                        event_free(k->ev);
                        free(k);
                }
                return 0;
        }
        short kind = EV_PERSIST;
        if (what & CURL_POLL_IN)
                kind |= EV_READ;
        if (what & CURL_POLL_OUT)
                kind |= EV_WRITE;
        if (k == NULL) {
                k = calloc(1, sizeof(*k));
                if (k == NULL)
                        abort();
                k->h = h;
                k->fd = s;
                C.multi_assign(h->multi, s, k);
        } else {
                event_free(k->ev);
        }
        k->ev = event_new(h->base, s, kind, on_socket, h);
        if (k->ev == NULL)
                abort();
        event_add(k->ev, NULL);
        return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
        struct nhttp *h = userp;
        (void)multi;
        if (timeout_ms < 0) {
                evtimer_del(h->timer);
                return 0;
        }
        struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
        evtimer_add(h->timer, &tv);
        return 0;
}

struct nhttp *nhttp_new(struct event_base *base)
{
        struct nhttp *h = calloc(1, sizeof(*h));
        if (h == NULL)
                abort();
        h->base = base;
        h->multi = C.multi_init();
        h->timer = evtimer_new(base, on_timer, h);
        if (h->multi == NULL || h->timer == NULL)
                abort();
        C.multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
        C.multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
        C.multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
        C.multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
        return h;
}

void nhttp_free(struct nhttp *h)
{
        if (h == NULL)
                return;
        while (h->reqs != NULL)
                req_free(h->reqs);
        /* curl_multi_cleanup says CURL_POLL_REMOVE for sockets still
         * watched; their events are freed there */
        C.multi_cleanup(h->multi);
        event_free(h->timer);
        free(h);
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
        struct nhttp_req *r = userdata;
        (void)ptr;
        r->received += size * nmemb;
        if (r->received > RESPONSE_MAX)
                return 0; /* CURLE_WRITE_ERROR: enough */
        return size * nmemb;
}

struct nhttp_req *nhttp_post(struct nhttp *h, const struct nhttp_post *p, nhttp_done_fn fn,
                             void *arg, char *error, size_t errlen)
{
        struct nhttp_req *r = calloc(1, sizeof(*r));
        if (r == NULL)
                abort();
        r->h = h;
        r->fn = fn;
        r->arg = arg;
        r->easy = C.easy_init();
        if (r->easy == NULL)
                abort();
        struct curl_slist *hd = NULL;
        hd = C.slist_append(hd, "Content-Type: application/json");
        /* no "Expect: 100-continue" round trip for a small body */
        hd = C.slist_append(hd, "Expect:");
        hd = C.slist_append(hd, "User-Agent: hdms-healthd/" HEALTHD_VERSION);
        if (p->bearer_token != NULL) {
                size_t n = strlen(p->bearer_token) + 32;
                char *line = malloc(n);
                if (line == NULL)
                        abort();
                snprintf(line, n, "Authorization: Bearer %s", p->bearer_token);
                hd = C.slist_append(hd, line);
                explicit_bzero(line, n);
                free(line);
        }
        if (hd == NULL)
                abort();
        r->headers = hd;
        CURL *e = r->easy;
        CURLcode rc = CURLE_OK;
#define OPT(o, v)                                                                                  \
        do {                                                                                       \
                if (rc == CURLE_OK)                                                                \
                        rc = C.easy_setopt(e, o, v);                                               \
        } while (0)
        OPT(CURLOPT_URL, p->url);
        OPT(CURLOPT_PROTOCOLS_STR, "http,https");
        OPT(CURLOPT_NOSIGNAL, 1L);
        /* After a timeout during name resolution, libcurl 7.88 would join
         * its resolver thread in curl_easy_cleanup, on the loop, until
         * getaddrinfo gives up (resolv.conf's timeouts: seconds).  With
         * QUICK_EXIT (7.87+) the thread is left to finish and free itself. */
        OPT(CURLOPT_QUICK_EXIT, 1L);
        OPT(CURLOPT_HTTPHEADER, hd);
        OPT(CURLOPT_POSTFIELDSIZE, (long)p->body_len);
        OPT(CURLOPT_COPYPOSTFIELDS, p->body);
        OPT(CURLOPT_TIMEOUT_MS, (long)p->timeout_ms);
        OPT(CURLOPT_CONNECTTIMEOUT_MS, (long)p->timeout_ms);
        OPT(CURLOPT_WRITEFUNCTION, discard);
        OPT(CURLOPT_WRITEDATA, r);
        OPT(CURLOPT_PRIVATE, r);
        OPT(CURLOPT_SSL_VERIFYPEER, 1L);
        OPT(CURLOPT_SSL_VERIFYHOST, 2L);
        if (p->ca_file != NULL)
                OPT(CURLOPT_CAINFO, p->ca_file);
#undef OPT
        if (rc != CURLE_OK) {
                snprintf(error, errlen, "%s", C.easy_strerror(rc));
                C.easy_cleanup(e);
                C.slist_free_all(hd);
                free(r);
                return NULL;
        }
        r->next = h->reqs;
        if (h->reqs != NULL)
                h->reqs->prev = r;
        h->reqs = r;
        CURLMcode mc = C.multi_add_handle(h->multi, e);
        if (mc != CURLM_OK) {
                snprintf(error, errlen, "%s", C.multi_strerror(mc));
                req_unlink(r);
                C.easy_cleanup(e);
                C.slist_free_all(hd);
                free(r);
                return NULL;
        }
        return r;
}

void nhttp_cancel(struct nhttp_req *r)
{
        if (r != NULL)
                req_free(r);
}
