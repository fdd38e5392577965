#include "http.h"
#include "gzip.h"
#include "clock.h"
#include "journal.h"
#include "log.h"
#include "notify_hub.h"
#include "record.h"
#include "render.h"
#include "textutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

struct cached {
        uint64_t gen;
        bool valid;
        char *body;
        size_t len;
        enum status st;
};

struct http {
        struct event_base *base;
        const struct config *cfg;
        struct engine *eng;
        struct MHD_Daemon *mhd;
        struct event *ev_epoll;
        struct event *ev_timer;
        struct target_view *views;
        size_t nviews;
        struct cached status, ready, started;
        struct record *rec;
        struct record_stats rec_stats;
        struct notify_hub *hub;
        struct notifier_view *notif_views; /* room for nnotif_views */
        size_t nnotif_views;
        bool tls;
        struct job *jobs; /* renders in pieces, oldest first (see on_work) */
        struct job **jobs_tail;
        struct event *ev_work;
        /* answers sent or gzip'd, freed a buffer per step by on_work() */
        struct render_answer **grave;
        size_t ngrave, grave_cap;
        struct event *ev_trim; /* see arm_trim() */
        bool trim_off;         /* a large answer was rendered: no trims */
};

/* ---- HTTPS: the certificate pair ---- */

#define TLS_MAX_CHAIN 16

struct http_tls {
        gnutls_pcert_st certs[TLS_MAX_CHAIN];
        unsigned ncerts;
        gnutls_privkey_t key;
        long long not_after;
        struct http_tls *next; /* on the retired list */
};

/* What the handshakes get.  GnuTLS's certificate callback has no closure
 * argument (and MHD passes none), so the pair in service is the module's:
 * one HTTP front per process.  A pair replaced by a reload is retired, not
 * freed: a session that selected it keeps pointers into it until it ends
 * (GnuTLS never frees what the callback returns), so retired pairs are
 * freed when no connection is open. */
static struct http_tls *serving;
static struct http_tls *retired;

void http_tls_free(struct http_tls *t)
{
        if (t == NULL)
                return;
        for (unsigned i = 0; i < t->ncerts; i++)
                gnutls_pcert_deinit(&t->certs[i]);
        if (t->key != NULL)
                gnutls_privkey_deinit(t->key);
        free(t);
}

static void free_datum(gnutls_datum_t *d, bool secret)
{
        if (d->data == NULL)
                return;
        if (secret)
                gnutls_memset(d->data, 0, d->size);
        gnutls_free(d->data);
        d->data = NULL;
}

struct http_tls *http_tls_load(const char *cert_file, const char *key_file, char *err,
                               size_t errlen)
{
        gnutls_datum_t cdat = {NULL, 0}, kdat = {NULL, 0};
        gnutls_certificate_credentials_t cred = NULL;
        struct http_tls *t = calloc(1, sizeof(*t));
        if (t == NULL)
                abort();
        int rc = gnutls_load_file(cert_file, &cdat);
        if (rc < 0) {
                snprintf(err, errlen, "tls_cert_file '%s': %s", cert_file, gnutls_strerror(rc));
                goto fail;
        }
        rc = gnutls_load_file(key_file, &kdat);
        if (rc < 0) {
                snprintf(err, errlen, "tls_key_file '%s': %s", key_file, gnutls_strerror(rc));
                goto fail;
        }
        t->ncerts = TLS_MAX_CHAIN;
        rc = gnutls_pcert_list_import_x509_raw(t->certs, &t->ncerts, &cdat, GNUTLS_X509_FMT_PEM, 0);
        if (rc < 0 || t->ncerts == 0) {
                t->ncerts = 0;
                snprintf(err, errlen, "tls_cert_file '%s': not a PEM certificate chain: %s",
                         cert_file, rc < 0 ? gnutls_strerror(rc) : "no certificate");
                goto fail;
        }
        if ((rc = gnutls_privkey_init(&t->key)) < 0 ||
            (rc = gnutls_privkey_import_x509_raw(t->key, &kdat, GNUTLS_X509_FMT_PEM, NULL, 0)) <
                0) {
                snprintf(err, errlen, "tls_key_file '%s': not a PEM private key: %s", key_file,
                         gnutls_strerror(rc));
                goto fail;
        }
        /* GnuTLS checks that the key belongs to the first certificate when
         * it is given both: a mismatched pair is refused here, not at every
         * handshake. */
        if ((rc = gnutls_certificate_allocate_credentials(&cred)) < 0 ||
            (rc = gnutls_certificate_set_x509_key_mem2(cred, &cdat, &kdat, GNUTLS_X509_FMT_PEM,
                                                       NULL, 0)) < 0) {
                snprintf(err, errlen, "tls_cert_file '%s' and tls_key_file '%s': %s", cert_file,
                         key_file, gnutls_strerror(rc));
                goto fail;
        }
        gnutls_x509_crt_t crt;
        if (gnutls_pcert_export_x509(&t->certs[0], &crt) == 0) {
                t->not_after = (long long)gnutls_x509_crt_get_expiration_time(crt);
                gnutls_x509_crt_deinit(crt);
        }
        gnutls_certificate_free_credentials(cred);
        free_datum(&cdat, false);
        free_datum(&kdat, true);
        return t;
fail:
        if (cred != NULL)
                gnutls_certificate_free_credentials(cred);
        free_datum(&cdat, false);
        free_datum(&kdat, true);
        http_tls_free(t);
        return NULL;
}

long long http_tls_not_after(const struct http_tls *t)
{
        return t->not_after;
}

static int tls_select(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                      const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                      gnutls_pcert_st **pcert, unsigned int *pcert_length,
                      gnutls_privkey_t *privkey)
{
        (void)session;
        (void)req_ca_dn;
        (void)nreqs;
        (void)pk_algos;
        (void)pk_algos_length;
        if (serving == NULL) {
                *pcert_length = 0;
                return -1;
        }
        *pcert = serving->certs;
        *pcert_length = serving->ncerts;
        *privkey = serving->key;
        return 0;
}

static void free_retired(void)
{
        while (retired != NULL) {
                struct http_tls *t = retired;
                retired = t->next;
                http_tls_free(t);
        }
}

enum route http_route(const char *path, char *target, size_t tlen)
{
        if (tlen > 0)
                target[0] = '\0';
        if (strcmp(path, "/livez") == 0)
                return ROUTE_LIVEZ;
        if (strcmp(path, "/readyz") == 0 || strcmp(path, "/healthz") == 0)
                return ROUTE_READYZ;
        if (strcmp(path, "/startupz") == 0)
                return ROUTE_STARTUPZ;
        if (strcmp(path, "/status") == 0 || strcmp(path, "/") == 0)
                return ROUTE_STATUS;
        if (strcmp(path, "/metrics") == 0)
                return ROUTE_METRICS;
        if (strcmp(path, "/events") == 0)
                return ROUTE_EVENTS;
        if (strncmp(path, "/health/", 8) == 0) {
                const char *name = path + 8;
                size_t n = strlen(name);
                if (n == 0 || n >= tlen || strchr(name, '/') != NULL)
                        return ROUTE_NOT_FOUND;
                memcpy(target, name, n + 1);
                return ROUTE_HEALTH_TARGET;
        }
        return ROUTE_NOT_FOUND;
}

/* ---- state snapshot ---- */

static void snapshot(struct http *h)
{
        size_t n = engine_count(h->eng);
        if (n > h->nviews || h->views == NULL) {
                free(h->views);
                h->views = calloc(n + 1, sizeof(*h->views));
                if (h->views == NULL)
                        abort();
        }
        h->nviews = n;
        for (size_t i = 0; i < n; i++)
                engine_view(h->eng, i, &h->views[i]);
}

static void render_ctx(struct http *h, struct render_ctx *c)
{
        c->version = HEALTHD_VERSION;
        c->now = wall_now();
        c->uptime = engine_uptime(h->eng);
        c->detail = h->cfg->status_token == NULL;
        c->mono = mono_now();
        c->loop_lag = engine_loop_lag(h->eng);
        c->startup_target_ms = h->cfg->startup_target_ms;
        c->reconnect_target_ms = h->cfg->reconnect_target_ms;
        c->journal = h->rec != NULL ? record_journal(h->rec) : NULL;
        if (h->rec != NULL)
                record_get_stats(h->rec, &h->rec_stats);
        c->record = h->rec != NULL ? &h->rec_stats : NULL;
        c->nonce = NULL;
        size_t nn = notify_hub_count(h->hub);
        if (nn > h->nnotif_views) {
                free(h->notif_views);
                h->notif_views = calloc(nn, sizeof(*h->notif_views));
                if (h->notif_views == NULL)
                        abort();
                h->nnotif_views = nn;
        }
        for (size_t i = 0; i < nn; i++)
                notify_hub_view(h->hub, i, &h->notif_views[i]);
        c->notifiers = h->notif_views;
        c->nnotifiers = nn;
}

/* The q-value the Accept header gives `type` ("text/html"), from its own
 * range, its "text/ANY" or the "ANY/ANY" range (the most specific wins); 0 when none
 * matches. */
static double accept_q(const char *accept, const char *type)
{
        double best = 0;
        int best_spec = -1;
        const char *p = accept;
        size_t slash = (size_t)(strchr(type, '/') - type);
        while (*p != '\0') {
                while (*p == ' ' || *p == ',')
                        p++;
                const char *end = strchr(p, ',');
                size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
                const char *semi = memchr(p, ';', len);
                size_t rlen = semi != NULL ? (size_t)(semi - p) : len;
                while (rlen > 0 && p[rlen - 1] == ' ')
                        rlen--;
                int spec = -1;
                if (rlen == strlen(type) && strncasecmp(p, type, rlen) == 0)
                        spec = 2;
                else if (rlen == slash + 2 && strncasecmp(p, type, slash + 1) == 0 &&
                         p[slash + 1] == '*')
                        spec = 1;
                else if (rlen == 3 && strncmp(p, "*/*", 3) == 0)
                        spec = 0;
                if (spec > best_spec) {
                        double q = 1;
                        const char *qp = semi;
                        while (qp != NULL && qp < p + len) {
                                qp++;
                                while (*qp == ' ')
                                        qp++;
                                if (strncmp(qp, "q=", 2) == 0) {
                                        q = strtod(qp + 2, NULL);
                                        break;
                                }
                                qp = memchr(qp, ';', (size_t)(p + len - qp));
                        }
                        best = q;
                        best_spec = spec;
                }
                if (end == NULL)
                        break;
                p = end + 1;
        }
        return best;
}

/* HTML when asked (?format=html) or when the client prefers text/html to
 * JSON; JSON otherwise (curl sends ANY/ANY; tools; ?format=json). */
static bool wants_html(struct MHD_Connection *conn)
{
        const char *f = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "format");
        if (f != NULL)
                return strcmp(f, "html") == 0;
        const char *accept =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
        if (accept == NULL)
                return false;
        double html = accept_q(accept, "text/html");
        double json = accept_q(accept, "application/json");
        double hjson = accept_q(accept, "application/health+json");
        return html > 0 && html > json && html > hjson;
}

static void cache_set(struct cached *c, char *body, enum status st, uint64_t gen)
{
        free(c->body);
        c->body = body;
        c->len = body != NULL ? strlen(body) : 0;
        c->st = st;
        c->gen = gen;
        c->valid = body != NULL;
}

/* ---- responses ---- */

/* Queues `r` (NULL: out of memory) with the headers of every answer but
 * the dashboard and /metrics, and lets it go. */
static enum MHD_Result queue_body(struct MHD_Connection *conn, unsigned code, const char *type,
                                  struct MHD_Response *r)
{
        if (r == NULL)
                return MHD_NO;
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'none'; style-src 'unsafe-inline'; img-src data:");
        if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
                MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
        if (code == MHD_HTTP_UNAUTHORIZED)
                MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                        "Basic realm=\"hdms-healthd\", charset=\"UTF-8\"");
        enum MHD_Result ret = MHD_queue_response(conn, code, r);
        MHD_destroy_response(r);
        return ret;
}

static enum MHD_Result send_body(struct MHD_Connection *conn, unsigned code, const char *type,
                                 const char *body, size_t len)
{
        return queue_body(
            conn, code, type,
            MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY));
}

/* The dashboard: its CSP allows its own style and script (by the nonce of
 * this response), fetches from this origin (its in-place updates), and
 * nothing else. */
static enum MHD_Result queue_html(struct MHD_Connection *conn, unsigned code,
                                  struct MHD_Response *r, const char *nonce)
{
        if (r == NULL)
                return MHD_NO;
        char csp[300];
        snprintf(csp, sizeof(csp),
                 "default-src 'none'; script-src 'nonce-%s'; style-src 'nonce-%s'; "
                 "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
                 "frame-ancestors 'none'",
                 nonce, nonce);
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
        MHD_add_response_header(r, "Content-Security-Policy", csp);
        enum MHD_Result ret = MHD_queue_response(conn, code, r);
        MHD_destroy_response(r);
        return ret;
}

/* /metrics, gzip'd when the scraper accepts it (Prometheus always does:
 * client_golang's way), identity otherwise; Vary either way, so no cache
 * hands one to the other. */
static enum MHD_Result queue_metrics(struct MHD_Connection *conn, struct MHD_Response *r, bool gzip)
{
        if (r == NULL)
                return MHD_NO;
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "text/plain; version=0.0.4; charset=utf-8");
        if (gzip)
                MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
        MHD_add_response_header(r, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
        MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
        enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ret;
}

/* A fresh CSP nonce: 18 random bytes, base64 (RFC 4648), 24 characters. */
static void make_nonce(char out[25])
{
        static const char b64[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        unsigned char raw[18] = {0};
        if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
                /* no entropy at all: still unique per response, just guessable */
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                memcpy(raw, &ts, sizeof(ts) < 16 ? sizeof(ts) : 16);
        }
        for (int i = 0, o = 0; i < 18; i += 3) {
                unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
                out[o++] = b64[(v >> 18) & 63];
                out[o++] = b64[(v >> 12) & 63];
                out[o++] = b64[(v >> 6) & 63];
                out[o++] = b64[v & 63];
        }
        out[24] = '\0';
}

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned code, const char *body)
{
        return send_body(conn, code, "application/health+json", body, strlen(body));
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned code, const char *msg)
{
        char body[200];
        snprintf(body, sizeof(body), "{\"status\":\"fail\",\"error\":\"%s\"}", msg);
        return send_body(conn, code, "application/json", body, strlen(body));
}

static unsigned code_of(enum status st)
{
        return st == ST_PASS || st == ST_WARN ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
}

/* Constant-time comparison of a presented token with the configured one. */
static bool token_equal(const char *a, size_t alen, const char *b)
{
        size_t blen = strlen(b);
        unsigned char diff = (unsigned char)(alen != blen);
        for (size_t i = 0; i < alen; i++)
                diff |= (unsigned char)(a[i] ^ b[i % (blen ? blen : 1)]);
        return diff == 0;
}

static bool authorized(struct http *h, struct MHD_Connection *conn)
{
        const char *token = h->cfg->status_token;
        if (token == NULL)
                return true;
        const char *auth =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0) {
                const char *t = auth + 7;
                return token_equal(t, strlen(t), token);
        }
        char *pass = NULL;
        char *user = MHD_basic_auth_get_username_password(conn, &pass);
        bool ok = pass != NULL && token_equal(pass, strlen(pass), token);
        if (user != NULL)
                MHD_free(user);
        if (pass != NULL) {
                explicit_bzero(pass, strlen(pass));
                MHD_free(pass);
        }
        return ok;
}

static enum MHD_Result answer_livez(struct http *h, struct MHD_Connection *conn)
{
        snapshot(h);
        for (size_t i = 0; i < h->nviews; i++) {
                const struct target_view *v = &h->views[i];
                double limit = render_stale_after(v);
                /* Before its first result a target is as old as itself: one
                 * that a reload added or changed is not stale for the time the
                 * daemon ran before it. */
                double age = v->result_age >= 0 ? v->result_age : v->existed;
                if (age > limit) {
                        char body[300];
                        snprintf(body, sizeof(body),
                                 "{\"status\":\"fail\",\"reason\":\"stale_result\","
                                 "\"target\":\"%s\",\"ageSeconds\":%.1f}",
                                 v->name, age);
                        return send_json(conn, MHD_HTTP_SERVICE_UNAVAILABLE, body);
                }
        }
        return send_json(conn, MHD_HTTP_OK, "{\"status\":\"pass\"}");
}

/* GET /events (SPEC 11): ?target, ?type, ?since, ?limit (default 100). */
static enum MHD_Result answer_events(struct http *h, struct MHD_Connection *conn)
{
        if (h->rec == NULL)
                return send_error(conn, MHD_HTTP_NOT_FOUND, "not found");
        struct journal_query q = {.target = NULL, .type = -1, .since = 0, .limit = 100};
        const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "target");
        if (v != NULL && v[0] != '\0')
                q.target = v;
        v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "type");
        if (v != NULL && v[0] != '\0' && (q.type = event_type_of(v)) < 0)
                return send_error(conn, MHD_HTTP_BAD_REQUEST,
                                  "type: transition, outage_end, reload, start, stop or "
                                  "notify_failed");
        long l;
        v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "since");
        if (v != NULL) {
                char *end;
                errno = 0;
                unsigned long long since = strtoull(v, &end, 10);
                if (v[0] < '0' || v[0] > '9' || *end != '\0' || errno != 0)
                        return send_error(conn, MHD_HTTP_BAD_REQUEST,
                                          "since: an event id (a whole number)");
                q.since = since;
        }
        v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
        if (v != NULL) {
                if (parse_int_range(v, 1, 100000, &l) != 0)
                        return send_error(conn, MHD_HTTP_BAD_REQUEST,
                                          "limit: a whole number from 1 to 100000");
                q.limit = (size_t)l;
        }
        char *body = journal_query_json(record_journal(h->rec), &q);
        enum MHD_Result r = send_body(conn, MHD_HTTP_OK, "application/json", body, strlen(body));
        free(body);
        return r;
}

/* ---- renders in pieces ----
 *
 * /status (JSON and HTML) and /metrics of a thousand targets took 25-50 ms
 * to build in one go, a spike of that much for every check due meanwhile
 * (issue 13).  A big answer is a job: the handler starts it and works on it
 * for one turn's budget; if it is not done, the connection is suspended
 * and on_work() goes on a turn's budget at a time, the loop running
 * everything else between turns, and resumes the connection when the
 * answer is ready (MHD then calls the handler again, which answers).  Each
 * target is rendered from its view as it is reached (render.h), so its own
 * figures agree.  A large answer is not copied into one buffer: MHD reads
 * it from the renderer's sections a block at a time as the socket takes it
 * (fresh memory costs a page fault per 4 KiB, ~25 ms for 9 MB on this kind
 * of machine), and gzip reads the sections in slices.  Content-Length,
 * HEAD and gzip stay as they were.
 *
 * Caching each target's text until its next result was the other way in:
 * at 1 s intervals nearly every target has a new result between two
 * scrapes, and some figures move with the clock alone (result age, the
 * 24 h availability), so the cache would seldom hold. */

/* One turn's budget for renders: the loop's other work waits at most this
 * (plus one target's part or one gzip slice) behind a render. */
#define RENDER_TURN_S 0.0015
/* Input compressed between looks at the clock: ~0.1 ms at level 1. */
#define GZIP_SLICE 65536
/* Up to this size an answer is joined into one buffer, as before (and the
 * /status JSON cached); above, MHD reads it in blocks of ANSWER_BLOCK. */
#define SMALL_ANSWER (256 * 1024)
#define ANSWER_BLOCK (64 * 1024)

struct job {
        struct job *next;
        struct http *h;
        struct MHD_Connection *conn;
        enum render_kind kind;
        bool gzip;          /* /metrics: the client accepts gzip */
        bool suspended;     /* the connection waits for on_work() */
        bool done;          /* the answer (or the failure) is ready */
        unsigned turns;     /* loop turns it took */
        double longest;     /* seconds, the longest of them */
        double longest_cpu; /* seconds on the CPU, the most any of them took */
        struct render_job *rj;
        size_t ntargets;
        uint64_t gen; /* the engine's generation at the start: the status cache */
        enum status st;
        /* the answer: a large one as pieces, a small one joined (both NULL
         * when the render failed), or gzip'd */
        struct render_answer *ans;
        char *body;
        size_t len;
        struct gzip_stream *gz;
        size_t gz_piece, gz_off; /* where the compression is in ans */
        unsigned char *z;
        size_t zlen;
        char nonce[25];
        struct record_stats rec;
        /* the notifiers as the render began: a render spans loop turns, and
         * the http's own views are rewritten by every other request */
        struct notifier_view *notif;
};

/* What *con_cls points to between the two calls of a GET (see answer()),
 * where it is not a job. */
static int seen;

static void job_start(struct job *j)
{
        struct http *h = j->h;
        struct render_ctx rc;
        render_ctx(h, &rc);
        j->rec = h->rec_stats;
        rc.record = h->rec != NULL ? &j->rec : NULL;
        free(j->notif); /* a reload starts the render again */
        j->notif = NULL;
        if (rc.nnotifiers > 0) {
                j->notif = malloc(rc.nnotifiers * sizeof(*j->notif));
                if (j->notif == NULL)
                        abort();
                memcpy(j->notif, rc.notifiers, rc.nnotifiers * sizeof(*j->notif));
                rc.notifiers = j->notif;
        }
        if (j->kind == RENDER_STATUS_HTML)
                rc.nonce = j->nonce;
        if (j->kind == RENDER_STATUS_JSON)
                rc.detail = true;
        j->gen = engine_generation(h->eng) + notify_hub_generation(h->hub);
        j->ntargets = engine_count(h->eng);
        j->rj = render_job_new(j->kind, &rc, j->ntargets);
}

static struct job *job_new(struct http *h, struct MHD_Connection *conn, enum render_kind kind)
{
        struct job *j = calloc(1, sizeof(*j));
        if (j == NULL)
                abort();
        j->h = h;
        j->conn = conn;
        j->kind = kind;
        if (kind == RENDER_METRICS) {
                const char *ae = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                             MHD_HTTP_HEADER_ACCEPT_ENCODING);
                j->gzip = ae != NULL && gzip_accepted(ae);
        }
        if (kind == RENDER_STATUS_HTML)
                make_nonce(j->nonce);
        job_start(j);
        return j;
}

static void job_unlink(struct job *j)
{
        struct http *h = j->h;
        for (struct job **p = &h->jobs; *p != NULL; p = &(*p)->next) {
                if (*p == j) {
                        *p = j->next;
                        if (h->jobs_tail == &j->next)
                                h->jobs_tail = p;
                        break;
                }
        }
        j->next = NULL;
}

/* on_work() on the next loop turn.  Not when it is pending or active
 * already: libevent takes an active timer off the active list when it is
 * added again, and requests served every turn would then put it off for
 * ever (seen: 1,500 answers waiting to be freed under wrk). */
static void arm_work(struct http *h)
{
        static const struct timeval now = {0, 0};
        if (!evtimer_pending(h->ev_work, NULL))
                evtimer_add(h->ev_work, &now);
}

/* A second after a rendered answer, the heap's free pages go back to the
 * system.  glibc returns only the top of the heap by itself, and the many
 * short-lived buffers of a burst of renders leave holes below a buffer
 * still in use: under wrk on gzip'd /metrics of five targets, 1 run in 4
 * kept 230 KiB more after the burst, all of it free (malloc_trim gave it
 * back).  At most one trim a second, and only after answers of the
 * renderers: an idle daemon never wakes for it.  Never once an answer
 * above SMALL_ANSWER was rendered: a trim returns the pages of a freed
 * 9 MB answer in one call, which is what bury() spreads over turns (2-5 ms
 * of the loop at once). */
#define TRIM_AFTER_S 1
static void on_trim(evutil_socket_t fd, short what, void *arg)
{
        struct http *h = arg;
        (void)fd;
        (void)what;
        if (h->trim_off)
                return;
        if (h->jobs != NULL || h->ngrave > 0) { /* not done yet: later */
                static const struct timeval later = {TRIM_AFTER_S, 0};
                evtimer_add(h->ev_trim, &later);
                return;
        }
#ifdef __GLIBC__
        malloc_trim(0);
#endif
}

static void arm_trim(struct http *h)
{
        static const struct timeval later = {TRIM_AFTER_S, 0};
        if (!evtimer_pending(h->ev_trim, NULL))
                evtimer_add(h->ev_trim, &later);
}

/* Hands a large answer to on_work(), which frees it a buffer per step:
 * 9 MB unmapped at once held the loop 2-5 ms. */
static void bury(struct http *h, struct render_answer *a)
{
        if (a == NULL)
                return;
        if (render_answer_size(a) <= SMALL_ANSWER) {
                render_answer_free(a);
                return;
        }
        if (h->ngrave == h->grave_cap) {
                h->grave_cap = h->grave_cap ? 2 * h->grave_cap : 8;
                struct render_answer **g = realloc(h->grave, h->grave_cap * sizeof(*g));
                if (g == NULL)
                        abort();
                h->grave = g;
        }
        h->grave[h->ngrave++] = a;
        arm_work(h);
}

/* Frees buried answers until `deadline`; at least one step. */
static void dig(struct http *h, double deadline)
{
        while (h->ngrave > 0) {
                if (render_answer_free_some(h->grave[0])) {
                        h->ngrave--;
                        memmove(h->grave, h->grave + 1, h->ngrave * sizeof(*h->grave));
                }
                if (mono_now() >= deadline)
                        break;
        }
}

static void job_free(struct job *j)
{
        if (j == NULL)
                return;
        job_unlink(j);
        render_job_free(j->rj);
        bury(j->h, j->ans);
        gzip_stream_free(j->gz);
        free(j->body);
        free(j->z);
        free(j->notif);
        free(j);
}

/* One slice of the compression; true when it is over (done or failed:
 * then identity will do). */
static bool gzip_slice(struct job *j)
{
        const char *s = NULL;
        size_t len = 0;
        bool last = !render_answer_piece(j->ans, j->gz_piece, &s, &len);
        size_t n = last ? 0 : len - j->gz_off < GZIP_SLICE ? len - j->gz_off : GZIP_SLICE;
        if (!gzip_stream_feed(j->gz, last ? NULL : s + j->gz_off, n, last)) {
                gzip_stream_free(j->gz);
                j->gz = NULL;
                j->gzip = false;
                return true;
        }
        if (last) {
                j->z = gzip_stream_take(j->gz, &j->zlen);
                j->gz = NULL;
                return true;
        }
        j->gz_off += n;
        if (j->gz_off == len) {
                j->gz_piece++;
                j->gz_off = 0;
        }
        return false;
}

/* job_run()'s work, without the bookkeeping. */
static bool job_step(struct job *j, double deadline)
{
        struct http *h = j->h;
        /* (never past the engine's list, should it shrink unannounced) */
        while (j->rj != NULL && render_job_count(j->rj) < j->ntargets &&
               render_job_count(j->rj) < engine_count(h->eng)) {
                struct target_view v;
                engine_view(h->eng, render_job_count(j->rj), &v);
                render_job_add(j->rj, &v);
                if (mono_now() >= deadline)
                        return false;
        }
        if (j->rj != NULL) {
                j->ans = render_job_answer(j->rj, &j->st);
                j->rj = NULL;
                if (j->ans == NULL)
                        return true;
                j->len = render_answer_size(j->ans);
                if (j->len <= SMALL_ANSWER) {
                        /* small: one buffer, gzip'd in one go, as before */
                        j->body = render_answer_join(j->ans);
                        render_answer_free(j->ans);
                        j->ans = NULL;
                        if (j->gzip && (j->z = gzip_compress(j->body, j->len, &j->zlen)) != NULL) {
                                free(j->body);
                                j->body = NULL;
                        }
                        return true;
                }
                if (j->gzip && (j->gz = gzip_stream_new(j->len)) == NULL)
                        j->gzip = false; /* out of memory: identity will do */
                if (mono_now() >= deadline)
                        return j->gz == NULL;
        }
        while (j->gz != NULL) {
                bool over = gzip_slice(j);
                if (mono_now() >= deadline)
                        return false;
                if (over)
                        break;
        }
        if (j->z != NULL && j->ans != NULL) {
                bury(h, j->ans); /* gzip'd: the sections are done with */
                j->ans = NULL;
        }
        return true;
}

/* Works on a job until it is done (true) or `deadline` (monotonic) passed
 * (false); at least one step each call, so every job moves on. */
static double cpu_now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool job_run(struct job *j, double deadline)
{
        double t0 = mono_now(), c0 = cpu_now();
        bool done = job_step(j, deadline);
        double took = mono_now() - t0, cpu = cpu_now() - c0;
        j->turns++;
        if (took > j->longest)
                j->longest = took;
        if (cpu > j->longest_cpu)
                j->longest_cpu = cpu;
        return done;
}

/* A large answer as MHD sends it. */
struct sent {
        struct http *h;
        struct render_answer *a;
};

static ssize_t read_answer(void *cls, uint64_t pos, char *buf, size_t max)
{
        struct sent *s = cls;
        size_t n = render_answer_read(s->a, (size_t)pos, buf, max);
        return n > 0 ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void free_answer(void *cls)
{
        struct sent *s = cls;
        bury(s->h, s->a);
        free(s);
}

/* The response of a finished job, taking what it holds: a buffer, or the
 * pieces read by MHD as it sends. */
static struct MHD_Response *job_response(struct job *j)
{
        struct MHD_Response *r = NULL;
        if (j->z != NULL) {
                r = MHD_create_response_from_buffer(j->zlen, j->z, MHD_RESPMEM_MUST_FREE);
                if (r != NULL)
                        j->z = NULL;
        } else if (j->body != NULL) {
                r = MHD_create_response_from_buffer(j->len, j->body, MHD_RESPMEM_MUST_FREE);
                if (r != NULL)
                        j->body = NULL;
        } else if (j->ans != NULL) {
                struct sent *sent = malloc(sizeof(*sent));
                if (sent == NULL)
                        abort();
                *sent = (struct sent){j->h, j->ans};
                r = MHD_create_response_from_callback(j->len, ANSWER_BLOCK, read_answer, sent,
                                                      free_answer);
                if (r != NULL)
                        j->ans = NULL;
                else
                        free(sent);
        }
        return r;
}

/* The answer of a finished job.  The job is freed by the caller. */
static enum MHD_Result job_answer(struct job *j)
{
        struct http *h = j->h;
        struct MHD_Connection *conn = j->conn;
        if (j->body == NULL && j->ans == NULL && j->z == NULL)
                return send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "render failed");
        static const char *const what[] = {[RENDER_STATUS_JSON] = "/status",
                                           [RENDER_STATUS_HTML] = "the dashboard",
                                           [RENDER_METRICS] = "/metrics"};
        if (j->len > SMALL_ANSWER)
                h->trim_off = true;
        arm_trim(h);
        if (j->turns > 1)
                log_msg(LOG_DEBUG, NULL,
                        "http: %s of %zu targets (%zu bytes, %zu gzip'd) took %u loop turns, "
                        "the longest %.2f ms (%.2f ms on the CPU)",
                        what[j->kind], j->ntargets, j->len, j->z != NULL ? j->zlen : 0, j->turns,
                        j->longest * 1e3, j->longest_cpu * 1e3);
        switch (j->kind) {
        case RENDER_METRICS: {
                bool gzip = j->z != NULL;
                return queue_metrics(conn, job_response(j), gzip);
        }
        case RENDER_STATUS_HTML:
                return queue_html(conn, code_of(j->st), job_response(j), j->nonce);
        case RENDER_STATUS_JSON:
                if (j->body != NULL) { /* small: kept for the requests of this generation */
                        cache_set(&h->status, j->body, j->st, j->gen);
                        j->body = NULL;
                        return send_body(conn, code_of(h->status.st), "application/health+json",
                                         h->status.body, h->status.len);
                }
                return queue_body(conn, code_of(j->st), "application/health+json", job_response(j));
        }
        return send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "render failed");
}

/* A loop turn's work on the jobs, oldest first; a finished job's connection
 * is resumed and MHD run on the next turn. */
static void on_work(evutil_socket_t fd, short what, void *arg)
{
        struct http *h = arg;
        (void)fd;
        (void)what;
        double deadline = mono_now() + RENDER_TURN_S;
        bool resumed = false;
        if (h->ngrave > 0) /* a step even while jobs take every turn's budget */
                dig(h, 0);
        while (h->jobs != NULL) {
                struct job *j = h->jobs;
                if (!job_run(j, deadline))
                        break;
                job_unlink(j);
                j->done = true;
                j->suspended = false;
                MHD_resume_connection(j->conn);
                resumed = true;
                if (mono_now() >= deadline)
                        break;
        }
        if (h->jobs == NULL && mono_now() < deadline)
                dig(h, deadline);
        static const struct timeval now = {0, 0};
        if (resumed)
                evtimer_add(h->ev_timer, &now);
        if (h->jobs != NULL || h->ngrave > 0)
                arm_work(h);
}

/* Starts a job for this request: answered at once when one turn's budget
 * is enough (and no older job waits), else queued and the connection
 * suspended until on_work() finishes it. */
static enum MHD_Result answer_job(struct http *h, struct MHD_Connection *conn,
                                  enum render_kind kind, void **con_cls)
{
        struct job *j = job_new(h, conn, kind);
        if (h->jobs == NULL && job_run(j, mono_now() + RENDER_TURN_S)) {
                enum MHD_Result r = job_answer(j);
                job_free(j);
                return r;
        }
        *h->jobs_tail = j;
        h->jobs_tail = &j->next;
        *con_cls = j;
        j->suspended = true;
        MHD_suspend_connection(conn);
        arm_work(h);
        return MHD_YES;
}

/* MHD is done with a request: a job still attached (the connection closed
 * before its answer, or the daemon stops) goes with it. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
        (void)cls;
        (void)conn;
        (void)toe;
        if (con_cls != NULL && *con_cls != NULL && *con_cls != &seen) {
                job_free(*con_cls);
                *con_cls = NULL;
        }
}

static bool keep_alive_wanted(struct MHD_Connection *conn, const char *version)
{
        if (strcmp(version, MHD_HTTP_VERSION_1_1) != 0)
                return false;
        const char *c =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONNECTION);
        return c == NULL || strcasestr(c, "close") == NULL;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
        struct http *h = cls;
        (void)upload_data;
        if (*con_cls != NULL && *con_cls != &seen) {
                /* a job's connection, resumed: its answer is ready */
                struct job *j = *con_cls;
                if (!j->done) { /* not expected: MHD calls again only after a resume */
                        j->suspended = true;
                        MHD_suspend_connection(conn);
                        return MHD_YES;
                }
                *con_cls = &seen;
                enum MHD_Result r = job_answer(j);
                job_free(j);
                return r;
        }
        /* GET and HEAD are answered on the second call: a response queued on
         * the first (headers only) makes MHD close the connection, so every
         * probe and scrape would need a new one.  A client that does not
         * keep the connection (HTTP/1.0, "Connection: close") is answered at
         * once, so one that half-closes after its request still gets it. */
        bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
        if (get && *con_cls == NULL && keep_alive_wanted(conn, version)) {
                *con_cls = &seen;
                return MHD_YES;
        }
        *upload_data_size = 0;

        char name[TARGET_NAME_MAX];
        enum route rt = http_route(url, name, sizeof(name));
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
                return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");

        struct render_ctx rc;
        render_ctx(h, &rc);
        /* a notifier's counters change without a check result */
        uint64_t gen = engine_generation(h->eng) + notify_hub_generation(h->hub);
        char *body;
        enum status st;

        switch (rt) {
        case ROUTE_NOT_FOUND:
                return send_error(conn, MHD_HTTP_NOT_FOUND, "not found");
        case ROUTE_LIVEZ:
                return answer_livez(h, conn);
        case ROUTE_READYZ:
        case ROUTE_STARTUPZ: {
                bool startup = rt == ROUTE_STARTUPZ;
                struct cached *c = startup ? &h->started : &h->ready;
                if (!c->valid || c->gen != gen) {
                        snapshot(h);
                        body = render_ready_json(h->views, h->nviews, &rc, startup, &st);
                        cache_set(c, body, st, gen);
                }
                if (!c->valid)
                        return send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "render failed");
                return send_body(conn, code_of(c->st), "application/health+json", c->body, c->len);
        }
        case ROUTE_HEALTH_TARGET: {
                int i = engine_find(h->eng, name);
                if (i < 0)
                        return send_error(conn, MHD_HTTP_NOT_FOUND, "unknown target");
                struct target_view v;
                engine_view(h->eng, (size_t)i, &v);
                body = render_target_json(&v, &rc);
                if (body == NULL)
                        return send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "render failed");
                enum MHD_Result r = send_json(conn, code_of(v.status), body);
                free(body);
                return r;
        }
        case ROUTE_STATUS:
                if (!authorized(h, conn))
                        return send_error(conn, MHD_HTTP_UNAUTHORIZED, "unauthorized");
                if (wants_html(conn))
                        return answer_job(h, conn, RENDER_STATUS_HTML, con_cls);
                if (!h->status.valid || h->status.gen != gen)
                        return answer_job(h, conn, RENDER_STATUS_JSON, con_cls);
                return send_body(conn, code_of(h->status.st), "application/health+json",
                                 h->status.body, h->status.len);
        case ROUTE_EVENTS:
                if (!authorized(h, conn))
                        return send_error(conn, MHD_HTTP_UNAUTHORIZED, "unauthorized");
                return answer_events(h, conn);
        case ROUTE_METRICS:
                if (!authorized(h, conn))
                        return send_error(conn, MHD_HTTP_UNAUTHORIZED, "unauthorized");
                return answer_job(h, conn, RENDER_METRICS, con_cls);
        }
        return send_error(conn, MHD_HTTP_NOT_FOUND, "not found");
}

static int hex_digit(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Percent-decoding of the path and the query for MHD, as its own but for
 * "%00": that stays as it is, so "/readyz%00junk" is an unknown path (404)
 * instead of "/readyz" cut short by the NUL. Returns the new length. */
static size_t unescape_no_nul(void *cls, struct MHD_Connection *conn, char *s)
{
        (void)cls;
        (void)conn;
        char *w = s;
        const char *r = s;
        while (*r != '\0') {
                int hi = r[0] == '%' ? hex_digit(r[1]) : -1;
                int lo = hi >= 0 ? hex_digit(r[2]) : -1;
                if (lo >= 0 && hi * 16 + lo != 0) {
                        *w++ = (char)(hi * 16 + lo);
                        r += 3;
                } else {
                        *w++ = *r++;
                }
        }
        *w = '\0';
        return (size_t)(w - s);
}

/* ---- MHD inside the libevent loop ---- */

static void rearm(struct http *h)
{
        MHD_UNSIGNED_LONG_LONG ms;
        if (MHD_get_timeout(h->mhd, &ms) == MHD_YES) {
                struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
                                     .tv_usec = (suseconds_t)(ms % 1000) * 1000};
                evtimer_add(h->ev_timer, &tv);
        } else {
                evtimer_del(h->ev_timer);
        }
}

static unsigned connections(struct http *h)
{
        const union MHD_DaemonInfo *i =
            MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        return i != NULL ? i->num_connections : 0;
}

/* MHD takes its listen socket out of its epoll set while at the connection
 * limit and puts it back only at the start of the next MHD_run. When a run
 * closes connections, run again at once: otherwise a connection waiting in
 * the backlog (and, once every connection is gone and MHD_get_timeout says
 * MHD_NO, every new one) is never accepted. */
static void on_mhd(evutil_socket_t fd, short what, void *arg)
{
        struct http *h = arg;
        (void)fd;
        (void)what;
        unsigned before = connections(h);
        MHD_run(h->mhd);
        for (int i = 0; i < 8; i++) {
                unsigned after = connections(h);
                if (after >= before)
                        break;
                before = after;
                MHD_run(h->mhd);
        }
        if (retired != NULL && connections(h) == 0)
                free_retired();
        rearm(h);
}

bool http_tls_on(const struct http *h)
{
        return h->tls;
}

void http_tls_use(struct http *h, struct http_tls *t)
{
        if (serving != NULL) {
                serving->next = retired;
                retired = serving;
        }
        serving = t;
        if (connections(h) == 0)
                free_retired();
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
        (void)cls;
        char buf[300];
        utf8_vsnprintf(buf, sizeof(buf), fmt, ap);
        size_t n = strlen(buf);
        while (n > 0 && buf[n - 1] == '\n')
                buf[--n] = '\0';
        log_msg(LOG_DEBUG, NULL, "http: %s", buf);
}

struct http *http_new(struct event_base *base, const struct config *cfg, struct engine *eng,
                      char *err, size_t errlen)
{
        struct http *h = calloc(1, sizeof(*h));
        if (h == NULL)
                abort();
        h->base = base;
        h->cfg = cfg;
        h->eng = eng;

        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        /* suspend/resume: big answers are rendered over several loop turns */
        unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        if (inet_pton(AF_INET, cfg->listen_host, &s4->sin_addr) == 1) {
                s4->sin_family = AF_INET;
                s4->sin_port = htons((uint16_t)cfg->listen_port);
        } else if (inet_pton(AF_INET6, cfg->listen_host, &s6->sin6_addr) == 1) {
                s6->sin6_family = AF_INET6;
                s6->sin6_port = htons((uint16_t)cfg->listen_port);
                flags |= MHD_USE_IPv6;
        } else {
                snprintf(err, errlen, "listen: '%s' is not a numeric address", cfg->listen_host);
                free(h);
                return NULL;
        }
        unsigned timeout_s = (unsigned)((cfg->http_connection_timeout_ms + 999) / 1000);
        /* HTTPS: libmicrohttpd's GnuTLS, with the pair chosen per handshake
         * by tls_select(), so a reload swaps it without re-binding. */
        if (cfg->tls_cert_file != NULL) {
                struct http_tls *t =
                    http_tls_load(cfg->tls_cert_file, cfg->tls_key_file, err, errlen);
                if (t == NULL) {
                        free(h);
                        return NULL;
                }
                http_tls_free(serving); /* none: one HTTP front per process */
                serving = t;
                h->tls = true;
                flags |= MHD_USE_TLS;
        }
        struct MHD_OptionItem tls_opts[] = {
            {MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)tls_select},
            {MHD_OPTION_END, 0, NULL},
        };
        h->mhd = MHD_start_daemon(
            flags, (uint16_t)cfg->listen_port, NULL, NULL, answer, h, MHD_OPTION_EXTERNAL_LOGGER,
            mhd_log, NULL, MHD_OPTION_ARRAY, h->tls ? tls_opts : &tls_opts[1], MHD_OPTION_SOCK_ADDR,
            &ss, MHD_OPTION_CONNECTION_TIMEOUT, timeout_s, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned)cfg->http_max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
            (unsigned)cfg->http_max_connections_per_ip, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
            (size_t)cfg->http_memory_limit, MHD_OPTION_SIGPIPE_HANDLED_BY_APP, (int)1,
            MHD_OPTION_UNESCAPE_CALLBACK, unescape_no_nul, NULL, MHD_OPTION_NOTIFY_COMPLETED,
            on_completed, NULL, MHD_OPTION_END);
        if (h->mhd == NULL) {
                snprintf(err, errlen, "cannot listen on %s:%d (address in use or not permitted)",
                         cfg->listen_host, cfg->listen_port);
                http_tls_free(serving);
                serving = NULL;
                free(h);
                return NULL;
        }
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
        h->ev_epoll = event_new(base, info->epoll_fd, EV_READ | EV_PERSIST, on_mhd, h);
        h->ev_timer = evtimer_new(base, on_mhd, h);
        h->ev_work = evtimer_new(base, on_work, h);
        h->ev_trim = evtimer_new(base, on_trim, h);
        h->jobs_tail = &h->jobs;
        event_add(h->ev_epoll, NULL);
        rearm(h);
        return h;
}

void http_update(struct http *h, const struct config *cfg)
{
        h->cfg = cfg;
        h->status.valid = h->ready.valid = h->started.valid = false;
        /* The targets changed under the renders in progress: start them
         * again over the new list, with the new settings (one already
         * joined is whole as it is). */
        for (struct job *j = h->jobs; j != NULL; j = j->next) {
                if (j->rj != NULL) {
                        render_job_free(j->rj);
                        job_start(j);
                }
        }
}

void http_set_record(struct http *h, struct record *r)
{
        h->rec = r;
}

void http_set_notify(struct http *h, struct notify_hub *hub)
{
        h->hub = hub;
}

void http_free(struct http *h)
{
        if (h == NULL)
                return;
        event_free(h->ev_epoll);
        event_free(h->ev_timer);
        /* MHD must not stop with a suspended connection: resume them, and
         * its completion callback frees their jobs as it closes them. */
        for (struct job *j = h->jobs; j != NULL; j = j->next) {
                if (j->suspended) {
                        j->suspended = false;
                        MHD_resume_connection(j->conn);
                }
        }
        MHD_stop_daemon(h->mhd);
        while (h->jobs != NULL)
                job_free(h->jobs);
        for (size_t i = 0; i < h->ngrave; i++)
                render_answer_free(h->grave[i]);
        free(h->grave);
        event_free(h->ev_work);
        event_free(h->ev_trim);
        /* no session is left to point into a pair */
        http_tls_free(serving);
        serving = NULL;
        free_retired();
        cache_set(&h->status, NULL, ST_UNKNOWN, 0);
        cache_set(&h->ready, NULL, ST_UNKNOWN, 0);
        cache_set(&h->started, NULL, ST_UNKNOWN, 0);
        free(h->views);
        free(h->notif_views);
        free(h);
        gzip_free_state();
}
