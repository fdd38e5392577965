/*
 * fuzz_text: the pure text helpers of textutil.h, and parse_listen() from
 * config.h, over arbitrary strings.
 *
 * Input: one value, as it would appear in a config file, an environment
 * variable or a server's reply ("250ms", "80%", "[::1]:8080", bytes of any
 * UTF-8 quality). Every function gets every input: utf8_clean() the raw
 * bytes (NULs included) with several destination sizes, the parsers the
 * string up to the first NUL. Seeds: test/fuzz/corpus/text/.
 *
 * Checked against textutil.h's contract, with oracles written here rather
 * than copied from textutil.c: utf8_clean's output is valid UTF-8 without
 * ASCII controls or trailing spaces, fits, and equals the input when the
 * input was already clean; parsers write their output only on success;
 * parse_duration_ms and parse_int_range agree with reference parsers;
 * parse_ratio returns the correctly rounded double of the decimal.
 */
#include "config.h"
#include "textutil.h"

#include "fuzz_util.h"

#include <arpa/inet.h>
#include <limits.h>
#include <strings.h>

/* ---- utf8_clean ---- */

static void fuzz_utf8_clean(const char *src, size_t srclen)
{
        /* Every input byte becomes at most 3 output bytes, so the last size
         * never truncates; its output is the reference for the others. */
        const size_t sizes[] = {3 * srclen + 1, 1, 2, 3, 4, 5, 16, srclen + 1};
        const bool clean = fuzz_utf8_valid(src, srclen) && fuzz_no_ascii_controls(src, srclen) &&
                           (srclen == 0 || src[srclen - 1] != ' ');
        char *full = NULL;
        size_t nfull = 0;

        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                size_t dstsize = sizes[i];
                char *dst = malloc(dstsize); /* exact size: ASan guards the end */
                if (dst == NULL)
                        abort();
                size_t n = utf8_clean(dst, dstsize, src, srclen);
                FUZZ_CHECK(n < dstsize, "wrote %zu bytes into %zu", n, dstsize);
                FUZZ_CHECK(dst[n] == '\0' && strlen(dst) == n, "not NUL-terminated at %zu", n);
                FUZZ_CHECK(fuzz_utf8_valid(dst, n), "output is not valid UTF-8 (size %zu)",
                           dstsize);
                FUZZ_CHECK(fuzz_no_ascii_controls(dst, n), "control byte in output");
                FUZZ_CHECK(n == 0 || dst[n - 1] != ' ', "trailing space kept");
                if (clean && srclen < dstsize)
                        FUZZ_CHECK(n == srclen && memcmp(dst, src, n) == 0,
                                   "clean input changed (size %zu)", dstsize);
                if (full == NULL) {
                        full = dst;
                        nfull = n;
                        continue;
                }
                /* A short buffer stops before a whole character: a prefix. */
                FUZZ_CHECK(n <= nfull && memcmp(dst, full, n) == 0,
                           "size %zu: '%s' is not a prefix of '%s'", dstsize, dst, full);
                free(dst);
        }
        free(full);
        FUZZ_CHECK(utf8_clean(NULL, 0, src, srclen) == 0, "NULL dst");
        char one = 'Z';
        FUZZ_CHECK(utf8_clean(&one, 0, src, srclen) == 0 && one == 'Z', "dstsize 0 wrote");
}

/* ---- parse_duration_ms: reference on __int128 ---- */

static int ref_duration(const char *s, int64_t *out)
{
        __int128 num = 0, den = 1, unit;
        const char *p = s;
        int nfrac = 0;

        if (strcmp(s, "0") == 0) {
                *out = 0;
                return 0;
        }
        if (*p < '0' || *p > '9')
                return -1;
        while (*p >= '0' && *p <= '9') {
                num = num * 10 + (*p++ - '0');
                if (num > INT64_MAX)
                        return -1; /* the whole part alone is already too many ms */
        }
        if (*p == '.') {
                p++;
                if (*p < '0' || *p > '9')
                        return -1;
                while (*p >= '0' && *p <= '9') {
                        /* textutil.c takes at most 9 fraction digits (any
                         * 10th is below a nanosecond); the header is silent. */
                        if (++nfrac > 9)
                                return -1;
                        num = num * 10 + (*p++ - '0');
                        den *= 10;
                }
        }
        if (strcmp(p, "ms") == 0)
                unit = 1;
        else if (strcmp(p, "s") == 0)
                unit = 1000;
        else if (strcmp(p, "m") == 0)
                unit = 60000;
        else if (strcmp(p, "h") == 0)
                unit = 3600000;
        else if (strcmp(p, "d") == 0)
                unit = 86400000;
        else
                return -1;
        if ((num * unit) % den != 0)
                return -1; /* finer than a millisecond */
        __int128 ms = num * unit / den;
        if (ms > INT64_MAX)
                return -1;
        *out = (int64_t)ms;
        return 0;
}

static void fuzz_duration(const char *s)
{
        int64_t got = -12345, want = -12345;
        int rc = parse_duration_ms(s, &got);
        int ref = ref_duration(s, &want);

        FUZZ_CHECK(rc == 0 || rc == -1, "rc %d", rc);
        if (rc != 0)
                FUZZ_CHECK(got == -12345, "'%s': output written on failure", s);
        FUZZ_CHECK(rc == ref && (rc != 0 || got == want),
                   "'%s': parse_duration_ms %d (%lld), reference %d (%lld)", s, rc, (long long)got,
                   ref, (long long)want);
}

/* ---- parse_int_range: reference on __int128 ---- */

static int ref_int(const char *s, long min, long max, long *out)
{
        const char *p = s;
        bool neg = false;
        __int128 v = 0;

        if (min > max)
                return -1;
        if (*p == '-') {
                neg = true;
                p++;
        }
        if (*p < '0' || *p > '9')
                return -1;
        while (*p >= '0' && *p <= '9') {
                v = v * 10 + (*p++ - '0');
                if (v > (__int128)LONG_MAX + 1)
                        return -1;
        }
        if (*p != '\0')
                return -1;
        if (neg)
                v = -v;
        if (v < min || v > max)
                return -1;
        *out = (long)v;
        return 0;
}

static void fuzz_int(const char *s)
{
        static const long ranges[][2] = {
            {0, 15}, {1, 65535},       {LONG_MIN, LONG_MAX},
            {-5, 5}, {0, 2000000000L}, {16384, 64L << 20},
            {5, 1}, /* min > max: always -1 */
        };
        for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
                long got = 777, want = 777;
                int rc = parse_int_range(s, ranges[i][0], ranges[i][1], &got);
                int ref = ref_int(s, ranges[i][0], ranges[i][1], &want);
                if (rc != 0)
                        FUZZ_CHECK(got == 777, "'%s': output written on failure", s);
                FUZZ_CHECK(rc == ref && (rc != 0 || got == want),
                           "'%s' in [%ld, %ld]: parse_int_range %d (%ld), reference %d (%ld)", s,
                           ranges[i][0], ranges[i][1], rc, got, ref, want);
        }
}

/* ---- parse_bool, text_ieq ---- */

static void fuzz_bool(const char *s)
{
        static const char *const yes[] = {"yes", "true", "on", "1"};
        static const char *const no[] = {"no", "false", "off", "0"};
        int want = -1;

        for (size_t i = 0; i < 4; i++) {
                if (strcasecmp(s, yes[i]) == 0)
                        want = 1;
                if (strcasecmp(s, no[i]) == 0)
                        want = 0;
        }
        bool t = true, f = false;
        int rt = parse_bool(s, &t), rf = parse_bool(s, &f);
        FUZZ_CHECK(rt == rf, "'%s': %d then %d", s, rt, rf);
        if (want == -1)
                FUZZ_CHECK(rt == -1 && t && !f, "'%s': accepted, or output written on failure", s);
        else
                FUZZ_CHECK(rt == 0 && t == (want == 1) && f == (want == 1),
                           "'%s': parse_bool %d, expected %d", s, rt, want);
}

static void fuzz_ieq(const char *raw, size_t rawlen, const char *s)
{
        /* text_ieq(a, len, b): a is a token inside a larger buffer (NULs
         * allowed), b a C string. Compare the two halves of the input. */
        size_t half = rawlen / 2;
        const char *b = s + half;
        bool want = strlen(b) == half;

        for (size_t i = 0; want && i < half; i++) {
                unsigned char x = (unsigned char)raw[i], y = (unsigned char)b[i];
                if (x >= 'A' && x <= 'Z')
                        x = (unsigned char)(x - 'A' + 'a');
                if (y >= 'A' && y <= 'Z')
                        y = (unsigned char)(y - 'A' + 'a');
                want = x == y;
        }
        FUZZ_CHECK(text_ieq(raw, half, b) == want, "text_ieq(%zu bytes, '%s') != %d", half, b,
                   (int)want);
        FUZZ_CHECK(!text_ieq(raw, rawlen, NULL), "NULL b matched");
        FUZZ_CHECK(text_ieq(NULL, 0, "") && !text_ieq(NULL, 0, "x"), "NULL a, len 0");
}

/* ---- parse_ratio: correctly rounded ---- */

static void fuzz_ratio(const char *s)
{
        double got = -7.0;
        int rc = parse_ratio(s, &got);

        if (rc != 0) {
                FUZZ_CHECK(rc == -1 && got == -7.0, "'%s': rc %d, output %g", s, rc, got);
                return;
        }
        FUZZ_CHECK(got >= 0.0 && got <= 1.0, "'%s' gave %g", s, got);
        /* The accepted shape: digits, optionally '.' and digits, optionally '%'. */
        char digits[64];
        size_t nd = 0;
        int scale = 0;
        const char *p = s;
        /* Leading zeros are not significant and may be many. */
        for (; *p >= '0' && *p <= '9'; p++)
                if ((nd > 0 || *p != '0') && nd < sizeof(digits) - 1)
                        digits[nd++] = *p;
        FUZZ_CHECK(p > s, "'%s' accepted without a leading digit", s);
        if (*p == '.') {
                for (p++; *p >= '0' && *p <= '9'; p++, scale++)
                        if ((nd > 0 || *p != '0') && nd < sizeof(digits) - 1)
                                digits[nd++] = *p;
                FUZZ_CHECK(scale > 0, "'%s' accepted with no digit after '.'", s);
        }
        if (*p == '%') {
                scale += 2;
                p++;
        }
        FUZZ_CHECK(*p == '\0', "'%s' accepted with trailing junk", s);
        FUZZ_CHECK(nd < sizeof(digits) - 1, "'%s': more than 60 significant digits", s);
        /* strtod of "<digits>e-<scale>" is the correctly rounded value. */
        char dec[96];
        if (nd == 0)
                digits[nd++] = '0';
        digits[nd] = '\0';
        snprintf(dec, sizeof(dec), "%se-%d", digits, scale);
        double want = strtod(dec, NULL);
        FUZZ_CHECK(got == want, "'%s' gave %.17g, correctly rounded is %.17g", s, got, want);
}

/* ---- parse_listen ---- */

static void fuzz_listen(const char *s)
{
        static const size_t hostlens[] = {1, 8, 16, INET6_ADDRSTRLEN, 256};

        for (size_t i = 0; i < sizeof(hostlens) / sizeof(hostlens[0]); i++) {
                size_t hl = hostlens[i];
                char *host = malloc(hl);
                int port = -1;
                if (host == NULL)
                        abort();
                if (parse_listen(s, host, hl, &port) == 0) {
                        unsigned char buf[sizeof(struct in6_addr)];
                        FUZZ_CHECK(memchr(host, '\0', hl) != NULL, "host not terminated");
                        FUZZ_CHECK(port >= 1 && port <= 65535, "'%s': port %d", s, port);
                        FUZZ_CHECK(inet_pton(AF_INET, host, buf) == 1 ||
                                       inet_pton(AF_INET6, host, buf) == 1,
                                   "'%s': host '%s' is not numeric", s, host);
                } else {
                        FUZZ_CHECK(port == -1, "'%s': port written on failure", s);
                }
                free(host);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *raw = (const char *)data;
        char *s = fuzz_strndup(data, size);

        fuzz_utf8_clean(raw, size);
        fuzz_ieq(raw, size, s);
        fuzz_duration(s);
        fuzz_int(s);
        fuzz_bool(s);
        fuzz_ratio(s);
        fuzz_listen(s);
        free(s);
        return 0;
}
