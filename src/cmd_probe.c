/* `hdms-healthd probe [--cacert FILE] [--insecure] [URL]`: one GET with a
 * 3 s budget for the whole exchange, for container healthchecks in images
 * without curl.  http:// and https:// (SPEC 13); an https URL is verified
 * against --cacert FILE (or the system's roots) and the URL's host, unless
 * --insecure.  A command, not the daemon: it may block, within its budget. */
#include "cmd_probe.h"
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUDGET_MS 3000

static const char usage[] =
    "Usage: hdms-healthd probe [--cacert FILE] [--insecure] [URL]\n"
    "GET URL (default http://127.0.0.1:PORT/livez, PORT from HEALTHD_LISTEN or 8080;\n"
    "https:// when HEALTHD_TLS_CERT_FILE is set) within 3 s; exit 0 on 2xx/3xx, 1\n"
    "otherwise, 2 on a usage error.  https:// URLs are verified against --cacert FILE\n"
    "(default: the system's trusted roots) and the URL's host; --insecure skips that.\n";

/* What an I/O step asks for when it cannot go on. */
enum { IO_ERR = -1, IO_WANT_READ = -2, IO_WANT_WRITE = -3 };

struct pconn {
        int fd;
        SSL *ssl; /* NULL for http:// */
        struct timespec t0;
};

static long left_ms(const struct pconn *c)
{
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        return BUDGET_MS -
               ((now.tv_sec - c->t0.tv_sec) * 1000 + (now.tv_nsec - c->t0.tv_nsec) / 1000000);
}

/* Waits for `want` (IO_WANT_*) within the budget; false when it ran out. */
static bool wait_io(const struct pconn *c, int want)
{
        long left = left_ms(c);
        if (left <= 0)
                return false;
        struct pollfd p = {.fd = c->fd, .events = want == IO_WANT_READ ? POLLIN : POLLOUT};
        return poll(&p, 1, (int)left) > 0;
}

static int tls_want(SSL *ssl, int r)
{
        switch (SSL_get_error(ssl, r)) {
        case SSL_ERROR_WANT_READ:
                return IO_WANT_READ;
        case SSL_ERROR_WANT_WRITE:
                return IO_WANT_WRITE;
        case SSL_ERROR_ZERO_RETURN:
                return 0;
        case SSL_ERROR_SYSCALL:
                /* a server may close without close_notify after answering
                 * "Connection: close": for HTTP/1.0 that is the end */
                return errno == 0 ? 0 : IO_ERR;
        default:
                return IO_ERR;
        }
}

static long c_send(struct pconn *c, const char *buf, size_t n)
{
        if (c->ssl == NULL) {
                ssize_t w = send(c->fd, buf, n, MSG_NOSIGNAL);
                if (w < 0)
                        return errno == EAGAIN ? IO_WANT_WRITE : IO_ERR;
                return (long)w;
        }
        errno = 0;
        int r = SSL_write(c->ssl, buf, (int)n);
        return r > 0 ? r : tls_want(c->ssl, r);
}

static long c_recv(struct pconn *c, char *buf, size_t n)
{
        if (c->ssl == NULL) {
                ssize_t r = recv(c->fd, buf, n, 0);
                if (r < 0)
                        return errno == EAGAIN ? IO_WANT_READ : IO_ERR;
                return (long)r;
        }
        errno = 0;
        int r = SSL_read(c->ssl, buf, (int)n);
        return r > 0 ? r : tls_want(c->ssl, r);
}

/* Why the handshake failed, in OpenSSL's words. */
static void tls_error(SSL *ssl, const char *hostport)
{
        long v = SSL_get_verify_result(ssl);
        if (v != X509_V_OK) {
                fprintf(stderr, "hdms-healthd probe: %s: TLS: certificate verify failed: %s\n",
                        hostport, X509_verify_cert_error_string(v));
                return;
        }
        unsigned long e = ERR_get_error();
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        fprintf(stderr, "hdms-healthd probe: %s: TLS handshake failed: %s\n", hostport,
                e != 0 ? buf : "connection closed");
}

/* The TLS client: verification against cacert (or the system's roots)
 * and the URL's host name or address, unless insecure. */
static SSL_CTX *tls_context(const char *cacert, bool insecure)
{
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
        if (ctx == NULL)
                return NULL;
        SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
        if (insecure)
                return ctx;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = cacert != NULL ? SSL_CTX_load_verify_locations(ctx, cacert, NULL)
                                : SSL_CTX_set_default_verify_paths(ctx);
        if (ok != 1) {
                fprintf(stderr, "hdms-healthd probe: --cacert %s: cannot read a PEM certificate\n",
                        cacert != NULL ? cacert : "(system roots)");
                SSL_CTX_free(ctx);
                return NULL;
        }
        return ctx;
}

static bool numeric_host(const char *host)
{
        unsigned char a[16];
        return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

static int handshake(struct pconn *c, const char *host, const char *hostport, bool insecure)
{
        if (!insecure) {
                X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
                if (numeric_host(host))
                        X509_VERIFY_PARAM_set1_ip_asc(vp, host);
                else
                        SSL_set1_host(c->ssl, host);
        }
        if (!numeric_host(host))
                SSL_set_tlsext_host_name(c->ssl, host);
        for (;;) {
                errno = 0;
                int r = SSL_connect(c->ssl);
                if (r == 1)
                        return 0;
                int w = tls_want(c->ssl, r);
                if (w != IO_WANT_READ && w != IO_WANT_WRITE) {
                        tls_error(c->ssl, hostport);
                        return -1;
                }
                if (!wait_io(c, w)) {
                        fprintf(stderr, "hdms-healthd probe: %s: no TLS handshake within 3s\n",
                                hostport);
                        return -1;
                }
        }
}

/* The request and its answer; returns the exit code. */
static int exchange(struct pconn *c, const char *path, const char *hostport)
{
        char req[1200];
        int rl = snprintf(req, sizeof(req),
                          "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: hdms-healthd-probe\r\n"
                          "Connection: close\r\n\r\n",
                          path, hostport);
        size_t sent = 0;
        char resp[4097];
        size_t got = 0;
        for (;;) {
                long n;
                bool sending = sent < (size_t)rl;
                if (sending)
                        n = c_send(c, req + sent, (size_t)rl - sent);
                else
                        n = c_recv(c, resp + got, sizeof(resp) - 1 - got);
                if (n == IO_WANT_READ || n == IO_WANT_WRITE) {
                        if (!wait_io(c, (int)n)) {
                                fprintf(stderr, "hdms-healthd probe: no answer within 3s\n");
                                return 1;
                        }
                        continue;
                }
                if (n == IO_ERR) {
                        fprintf(stderr, "hdms-healthd probe: %s\n",
                                c->ssl != NULL ? "TLS connection failed" : strerror(errno));
                        return 1;
                }
                if (sending) {
                        sent += (size_t)n;
                        continue;
                }
                if (n > 0 && (got += (size_t)n) < sizeof(resp) - 1)
                        continue;
                resp[got] = '\0';
                int code = 0;
                if (sscanf(resp, "HTTP/%*d.%*d %d", &code) != 1) {
                        fprintf(stderr, "hdms-healthd probe: not an HTTP answer\n");
                        return 1;
                }
                const char *body = strstr(resp, "\r\n\r\n");
                printf("%d %s\n", code, body != NULL ? body + 4 : "");
                return code >= 200 && code < 400 ? 0 : 1;
        }
}

/* Opens a TCP connection within the budget; -1 after saying why. */
static int tcp_connect(const char *host, const char *port, const char *hostport, struct pconn *c)
{
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
        int gai = getaddrinfo(host, port, &hints, &ai);
        if (gai != 0) {
                fprintf(stderr, "hdms-healthd probe: %s: %s\n", host, gai_strerror(gai));
                return -1;
        }
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        int rc = fd < 0 ? -1 : connect(fd, ai->ai_addr, ai->ai_addrlen);
        freeaddrinfo(ai);
        if (fd < 0 || (rc < 0 && errno != EINPROGRESS)) {
                fprintf(stderr, "hdms-healthd probe: connect to %s: %s\n", hostport,
                        strerror(errno));
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        c->fd = fd;
        clock_gettime(CLOCK_MONOTONIC, &c->t0);
        if (rc < 0) {
                int err = 0;
                socklen_t elen = sizeof(err);
                if (!wait_io(c, IO_WANT_WRITE))
                        err = ETIMEDOUT;
                else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
                        err = errno;
                if (err != 0) {
                        fprintf(stderr, "hdms-healthd probe: connect to %s: %s\n", hostport,
                                strerror(err));
                        close(fd);
                        return -1;
                }
        }
        return 0;
}

int cmd_probe(int argc, char **argv)
{
        const char *cacert = NULL, *given = NULL;
        bool insecure = false;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
                        fputs(usage, stdout);
                        return 0;
                } else if (strcmp(argv[i], "--insecure") == 0 || strcmp(argv[i], "-k") == 0) {
                        insecure = true;
                } else if (strcmp(argv[i], "--cacert") == 0 && i + 1 < argc) {
                        cacert = argv[++i];
                } else if (strncmp(argv[i], "--cacert=", 9) == 0) {
                        cacert = argv[i] + 9;
                } else if (argv[i][0] != '-' && given == NULL) {
                        given = argv[i];
                } else {
                        fputs(usage, stderr);
                        return 2;
                }
        }
        char url[1024];
        if (given != NULL) {
                snprintf(url, sizeof(url), "%s", given);
        } else {
                char host[256];
                int port = 8080;
                const char *l = getenv("HEALTHD_LISTEN");
                if (l != NULL && parse_listen(l, host, sizeof(host), &port) != 0)
                        port = 8080;
                const char *tls = getenv("HEALTHD_TLS_CERT_FILE");
                snprintf(url, sizeof(url), "%s://127.0.0.1:%d/livez",
                         tls != NULL && tls[0] != '\0' ? "https" : "http", port);
        }
        bool https = strncmp(url, "https://", 8) == 0;
        if (!https && strncmp(url, "http://", 7) != 0) {
                fprintf(stderr, "hdms-healthd probe: only http:// and https:// URLs: %s\n", url);
                return 2;
        }
        if (!https && (cacert != NULL || insecure)) {
                fprintf(stderr, "hdms-healthd probe: --cacert and --insecure go with https:// "
                                "URLs\n");
                return 2;
        }
        char hostport[300], path[700] = "/";
        const char *hp = url + (https ? 8 : 7);
        const char *slash = strchr(hp, '/');
        size_t hl = slash != NULL ? (size_t)(slash - hp) : strlen(hp);
        if (hl == 0 || hl >= sizeof(hostport)) {
                fprintf(stderr, "hdms-healthd probe: bad URL: %s\n", url);
                return 2;
        }
        memcpy(hostport, hp, hl);
        hostport[hl] = '\0';
        if (slash != NULL)
                snprintf(path, sizeof(path), "%s", slash);
        char host[300], portstr[16];
        snprintf(portstr, sizeof(portstr), "%s", https ? "443" : "80");
        if (hostport[0] == '[') {
                char *e = strchr(hostport, ']');
                if (e == NULL) {
                        fprintf(stderr, "hdms-healthd probe: bad URL: %s\n", url);
                        return 2;
                }
                snprintf(host, sizeof(host), "%.*s", (int)(e - hostport - 1), hostport + 1);
                if (e[1] == ':')
                        snprintf(portstr, sizeof(portstr), "%s", e + 2);
        } else {
                const char *c = strrchr(hostport, ':');
                if (c != NULL) {
                        snprintf(portstr, sizeof(portstr), "%s", c + 1);
                        snprintf(host, sizeof(host), "%.*s", (int)(c - hostport), hostport);
                } else {
                        snprintf(host, sizeof(host), "%s", hostport);
                }
        }
        SSL_CTX *ctx = NULL;
        if (https && (ctx = tls_context(cacert, insecure)) == NULL)
                return 2;
        struct pconn c = {.fd = -1};
        int result = 1;
        if (tcp_connect(host, portstr, hostport, &c) != 0)
                goto out;
        if (https) {
                c.ssl = SSL_new(ctx);
                if (c.ssl == NULL || SSL_set_fd(c.ssl, c.fd) != 1 ||
                    handshake(&c, host, hostport, insecure) != 0)
                        goto out;
        }
        result = exchange(&c, path, hostport);
out:
        if (c.ssl != NULL)
                SSL_free(c.ssl);
        if (c.fd >= 0)
                close(c.fd);
        SSL_CTX_free(ctx);
        return result;
}
