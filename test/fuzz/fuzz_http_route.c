/*
 * fuzz_http_route: http_route() over arbitrary request targets.
 *
 * Input: an HTTP request target as a client sends it ("/health/redis-cache",
 * "/status?format=html", "/health/a%2Fb"). http.c has no query parser of
 * its own: libmicrohttpd cuts the target at '?', parses the arguments
 * (looked up later with MHD_lookup_connection_value) and percent-decodes
 * the path before calling the handler, which passes that path to
 * http_route(). So each input is routed twice: raw (up to the first NUL),
 * and the way it arrives from MHD, i.e. the part before '?' decoded with
 * libmicrohttpd's own MHD_http_unescape() (a decoded "%00" ends the path).
 * Seeds: test/fuzz/corpus/http_route/.
 *
 * Each call gets an exact-size target buffer (tlen 0, 1, 8 and the
 * daemon's TARGET_NAME_MAX), so ASan sees any write past it, and the
 * contract of http.h is checked: a /health/{target} route copies a
 * non-empty name without '/' that fits; every other answer leaves target
 * empty; the buffer size changes only whether a name fits.
 */
#include "config.h"
#include "http.h"

#include "fuzz_util.h"

#include <microhttpd.h>

static const size_t tlens[] = {0, 1, 8, TARGET_NAME_MAX};
#define NTLENS (sizeof(tlens) / sizeof(tlens[0]))

static void route_checked(const char *path)
{
        enum route got[NTLENS];

        for (size_t i = 0; i < NTLENS; i++) {
                size_t tlen = tlens[i];
                /* malloc(0) still gives a pointer ASan guards. */
                char *target = malloc(tlen > 0 ? tlen : 1);
                if (target == NULL)
                        abort();
                if (tlen > 0)
                        memset(target, 'X', tlen);
                enum route rt = http_route(path, target, tlen);
                got[i] = rt;
                FUZZ_CHECK(rt >= ROUTE_NOT_FOUND && rt <= ROUTE_EVENTS, "route %d", (int)rt);
                if (rt == ROUTE_HEALTH_TARGET) {
                        size_t n = strnlen(target, tlen);
                        FUZZ_CHECK(n < tlen, "target not NUL-terminated within %zu", tlen);
                        FUZZ_CHECK(n > 0, "empty target name routed");
                        FUZZ_CHECK(strchr(target, '/') == NULL, "target '%s' has a '/'", target);
                        FUZZ_CHECK(strncmp(path, "/health/", 8) == 0 &&
                                       strcmp(path + 8, target) == 0,
                                   "target '%s' is not the rest of '%s'", target, path);
                } else if (tlen > 0) {
                        FUZZ_CHECK(target[0] == '\0', "route %d left target '%.*s'", (int)rt,
                                   (int)tlen, target);
                }
                free(target);
        }
        /* A bigger buffer can only turn "does not fit" into a match. */
        for (size_t i = 0; i + 1 < NTLENS; i++)
                if (got[i] != ROUTE_NOT_FOUND)
                        FUZZ_CHECK(got[i + 1] == got[i], "tlen %zu: %d, tlen %zu: %d", tlens[i],
                                   (int)got[i], tlens[i + 1], (int)got[i + 1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *raw = fuzz_strndup(data, size);

        route_checked(raw);

        /* As libmicrohttpd hands it over: path only, percent-decoded. */
        char *q = strchr(raw, '?');
        if (q != NULL)
                *q = '\0';
        (void)MHD_http_unescape(raw); /* "%00" ends the string, as for the handler */
        route_checked(raw);
        free(raw);
        return 0;
}
