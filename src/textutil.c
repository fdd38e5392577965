/*
 * textutil.c: UTF-8 cleaning and strict scalar parsers (see textutil.h).
 *
 * Digits and letters are tested by hand rather than with <ctype.h> or
 * strtod(), whose results depend on the locale and which accept blanks,
 * signs, hex, "inf" and exponents that a config value should never carry.
 */
#include "textutil.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_digit(char c)
{
        return c >= '0' && c <= '9';
}

static char ascii_lower(char c)
{
        return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

bool text_ieq(const char *a, size_t len, const char *b)
{
        size_t i;

        if (b == NULL || (a == NULL && len > 0))
                return false;
        for (i = 0; i < len; i++) {
                if (b[i] == '\0' || ascii_lower(a[i]) != ascii_lower(b[i]))
                        return false;
        }
        return b[len] == '\0';
}

/*
 * Look at the sequence starting at s (n >= 1 bytes available). Returns its
 * length (1-4) when it is well-formed UTF-8, else 0. *skip is how many bytes
 * to consume: the whole sequence, or the maximal ill-formed subpart (the
 * lead byte plus the continuation bytes that were still acceptable), so one
 * U+FFFD replaces it and resynchronisation starts at the offending byte.
 * Ranges follow Unicode table 3-7, which excludes overlongs (C0, C1, E0 80-9F,
 * F0 80-8F), surrogates (ED A0-BF) and code points above U+10FFFF (F4 90+,
 * F5-FF).
 */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *skip)
{
        unsigned char c = s[0];
        unsigned char lo = 0x80, hi = 0xbf;
        size_t need, i;

        *skip = 1;
        if (c < 0x80)
                return 1;
        if (c >= 0xc2 && c <= 0xdf) {
                need = 1;
        } else if (c == 0xe0) {
                need = 2;
                lo = 0xa0;
        } else if (c == 0xed) {
                need = 2;
                hi = 0x9f;
        } else if (c >= 0xe1 && c <= 0xef) {
                need = 2;
        } else if (c == 0xf0) {
                need = 3;
                lo = 0x90;
        } else if (c == 0xf4) {
                need = 3;
                hi = 0x8f;
        } else if (c >= 0xf1 && c <= 0xf3) {
                need = 3;
        } else {
                return 0; /* 80-BF stray continuation, C0/C1 overlong, F5-FF */
        }
        for (i = 1; i <= need; i++) {
                if (i >= n || s[i] < lo || s[i] > hi) {
                        *skip = i;
                        return 0;
                }
                lo = 0x80;
                hi = 0xbf;
        }
        *skip = need + 1;
        return need + 1;
}

size_t utf8_clean(char *dst, size_t dstsize, const char *src, size_t srclen)
{
        static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */
        const unsigned char *in = (const unsigned char *)src;
        size_t cap, o = 0, i = 0;

        if (dst == NULL || dstsize == 0)
                return 0;
        if (src == NULL)
                srclen = 0;
        cap = dstsize - 1;
        while (i < srclen) {
                size_t skip, len = utf8_seq(in + i, srclen - i, &skip);
                const char *emit;
                size_t elen;
                char one;

                if (len == 1) {
                        one = (in[i] < 0x20 || in[i] == 0x7f) ? ' ' : (char)in[i];
                        emit = &one;
                        elen = 1;
                } else if (len == 0) {
                        emit = replacement;
                        elen = sizeof(replacement) - 1;
                } else {
                        emit = src + i;
                        elen = len;
                }
                if (elen > cap - o)
                        break; /* never split a character at the limit */
                memcpy(dst + o, emit, elen);
                o += elen;
                i += skip;
        }
        /* Every control byte became a space, so a space is all there is to trim. */
        while (o > 0 && dst[o - 1] == ' ')
                o--;
        dst[o] = '\0';
        return o;
}

bool utf8_valid(const char *s, size_t len)
{
        const unsigned char *in = (const unsigned char *)s;
        size_t i = 0, skip;

        if (s == NULL)
                return len == 0;
        while (i < len) {
                if (in[i] < 0x80) { /* the common case, byte by byte */
                        i++;
                        continue;
                }
                if (utf8_seq(in + i, len - i, &skip) == 0)
                        return false;
                i += skip;
        }
        return true;
}

size_t utf8_cut(const char *s, size_t len)
{
        const unsigned char *in = (const unsigned char *)s;
        size_t back;

        /* A sequence is at most 4 bytes: its lead byte is among the last 4. */
        for (back = 1; back <= 4 && back <= len; back++) {
                unsigned char c = in[len - back];
                size_t need;

                if ((c & 0xc0) == 0x80)
                        continue; /* a continuation byte: look further back */
                need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
                return need > back ? len - back : len;
        }
        return len; /* only continuation bytes: not a sequence this can mend */
}

size_t utf8_vsnprintf(char *dst, size_t size, const char *fmt, va_list ap)
{
        int n;

        if (dst == NULL || size == 0)
                return 0;
        n = vsnprintf(dst, size, fmt, ap);
        if (n < 0) {
                dst[0] = '\0';
                return 0;
        }
        if ((size_t)n < size)
                return (size_t)n;
        n = (int)utf8_cut(dst, size - 1);
        dst[n] = '\0';
        return (size_t)n;
}

size_t utf8_snprintf(char *dst, size_t size, const char *fmt, ...)
{
        va_list ap;
        size_t n;

        va_start(ap, fmt);
        n = utf8_vsnprintf(dst, size, fmt, ap);
        va_end(ap);
        return n;
}

/* Accumulate a run of digits into *v, failing if it would exceed limit. */
static const char *scan_digits(const char *p, uint64_t limit, uint64_t *v, int *ndigits)
{
        *v = 0;
        *ndigits = 0;
        while (is_digit(*p)) {
                uint64_t d = (uint64_t)(*p - '0');

                if (*v > (limit - d) / 10)
                        return NULL;
                *v = *v * 10 + d;
                (*ndigits)++;
                p++;
        }
        return p;
}

int parse_duration_ms(const char *s, int64_t *out_ms)
{
        /* 10^0 .. 10^9: a fraction may have at most 9 digits. */
        static const uint64_t pow10[] = {1,      10,      100,      1000,      10000,
                                         100000, 1000000, 10000000, 100000000, 1000000000};
        static const struct {
                const char *name;
                uint64_t ms;
        } units[] = {{"ms", 1},
                     {"s", 1000},
                     {"m", 60000}, /* SPEC section 6 */
                     {"h", 3600000},
                     {"d", 86400000}}; /* for cert_expiry_warn (SPEC 13) */
        uint64_t ip, frac = 0, unit = 0, total, fracms;
        int nip, nfrac = 0;
        const char *p;
        size_t k;

        if (s == NULL || out_ms == NULL)
                return -1;
        if (strcmp(s, "0") == 0) {
                *out_ms = 0;
                return 0;
        }
        p = scan_digits(s, (uint64_t)INT64_MAX, &ip, &nip);
        if (p == NULL || nip == 0)
                return -1;
        if (*p == '.') {
                const char *f = p + 1;

                while (is_digit(*f) && nfrac < 9) {
                        frac = frac * 10 + (uint64_t)(*f - '0');
                        nfrac++;
                        f++;
                }
                if (nfrac == 0 || is_digit(*f))
                        return -1; /* "1.s" or more than 9 fraction digits */
                p = f;
        }
        for (k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
                if (strcmp(p, units[k].name) == 0) {
                        unit = units[k].ms;
                        break;
                }
        }
        if (unit == 0)
                return -1; /* no unit, unknown unit or trailing junk */
        if (ip > (uint64_t)INT64_MAX / unit)
                return -1;
        total = ip * unit;
        /* frac < 10^9 and unit <= 86400000, so the product fits in 64 bits. */
        if ((frac * unit) % pow10[nfrac] != 0)
                return -1; /* finer than a millisecond */
        fracms = frac * unit / pow10[nfrac];
        if (total > (uint64_t)INT64_MAX - fracms)
                return -1;
        *out_ms = (int64_t)(total + fracms);
        return 0;
}

int parse_bool(const char *s, bool *out)
{
        static const struct {
                const char *word;
                bool value;
        } words[] = {{"yes", true}, {"no", false},  {"true", true}, {"false", false},
                     {"on", true},  {"off", false}, {"1", true},    {"0", false}};
        size_t k;

        if (s == NULL || out == NULL)
                return -1;
        for (k = 0; k < sizeof(words) / sizeof(words[0]); k++) {
                if (text_ieq(s, strlen(s), words[k].word)) {
                        *out = words[k].value;
                        return 0;
                }
        }
        return -1;
}

int parse_int_range(const char *s, long min, long max, long *out)
{
        const char *p;
        char *end;
        long v;

        if (s == NULL || out == NULL || min > max)
                return -1;
        /* Validate the shape first: strtol alone would accept " +0x1". */
        p = (*s == '-') ? s + 1 : s;
        if (!is_digit(*p))
                return -1;
        while (is_digit(*p))
                p++;
        if (*p != '\0')
                return -1;
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno == ERANGE || *end != '\0' || v < min || v > max)
                return -1;
        *out = v;
        return 0;
}

int parse_ratio(const char *s, double *out)
{
        /* Exact powers of ten as doubles (all below 2^53 or exactly representable). */
        static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8, 1e9,
                                       1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18};
        uint64_t mant = 0;
        int ndig = 0, scale = 0;
        const char *p;
        double v;

        if (s == NULL || out == NULL)
                return -1;
        p = s;
        if (!is_digit(*p))
                return -1;
        /*
         * Collect all digits into one integer and the power of ten to divide
         * it by, so the result is a single correctly rounded division of two
         * exactly representable doubles.
         */
        while (is_digit(*p)) {
                if (ndig == 15)
                        return -1;
                mant = mant * 10 + (uint64_t)(*p - '0');
                if (mant != 0)
                        ndig++;
                p++;
        }
        if (*p == '.') {
                p++;
                if (!is_digit(*p))
                        return -1;
                while (is_digit(*p)) {
                        if (ndig == 15 || scale == 15)
                                return -1;
                        mant = mant * 10 + (uint64_t)(*p - '0');
                        if (mant != 0)
                                ndig++;
                        scale++;
                        p++;
                }
        }
        if (*p == '%') {
                scale += 2;
                p++;
        }
        if (*p != '\0')
                return -1;
        v = (double)mant / pow10[scale];
        if (!(v >= 0.0 && v <= 1.0))
                return -1;
        *out = v;
        return 0;
}

int url_origin(const char *url, char *out, size_t len)
{
        snprintf(out, len, "invalid");
        const char *scheme, *p;
        int defport;
        if (strncasecmp(url, "http://", 7) == 0) {
                scheme = "http";
                p = url + 7;
                defport = 80;
        } else if (strncasecmp(url, "https://", 8) == 0) {
                scheme = "https";
                p = url + 8;
                defport = 443;
        } else {
                return -1;
        }
        size_t alen = strcspn(p, "/?#");
        /* the user information ends at the authority's last '@' */
        for (size_t i = alen; i > 0; i--)
                if (p[i - 1] == '@') {
                        p += i;
                        alen -= i;
                        break;
                }
        const char *host = p, *port = NULL;
        size_t hlen = alen;
        if (alen > 0 && host[0] == '[') {
                const char *end = memchr(host, ']', alen);
                if (end == NULL)
                        return -1;
                hlen = (size_t)(end - host) + 1;
                if (hlen < alen) {
                        if (host[hlen] != ':')
                                return -1;
                        port = host + hlen + 1;
                }
        } else {
                const char *colon = memchr(host, ':', alen);
                if (colon != NULL) {
                        hlen = (size_t)(colon - host);
                        port = colon + 1;
                }
        }
        if (hlen == 0 || hlen > 255)
                return -1;
        for (size_t i = 0; i < hlen; i++)
                if ((unsigned char)host[i] <= ' ' || host[i] == 0x7f || host[i] == '@')
                        return -1;
        long portnum = defport;
        if (port != NULL) {
                size_t plen = (size_t)(p + alen - port);
                char pbuf[8];
                if (plen == 0 || plen >= sizeof(pbuf))
                        return -1;
                memcpy(pbuf, port, plen);
                pbuf[plen] = '\0';
                if (parse_int_range(pbuf, 1, 65535, &portnum) != 0)
                        return -1;
        }
        snprintf(out, len, "%s://%.*s:%ld", scheme, (int)hlen, host, portnum);
        return 0;
}

/* Appends "<c><n>\r\n" at buf[*at]; false when it does not fit. */
static bool resp_header(char *buf, size_t size, size_t *at, char c, size_t n)
{
        char digits[24];
        size_t nd = 0;
        do {
                digits[nd++] = (char)('0' + n % 10);
                n /= 10;
        } while (n > 0);
        if (size - *at < nd + 3)
                return false;
        buf[(*at)++] = c;
        while (nd > 0)
                buf[(*at)++] = digits[--nd];
        buf[(*at)++] = '\r';
        buf[(*at)++] = '\n';
        return true;
}

long resp_format(char *buf, size_t size, int argc, const char *const *argv)
{
        size_t at = 0;
        if (buf == NULL || size == 0 || argc < 0 || (argc > 0 && argv == NULL))
                return -1;
        if (!resp_header(buf, size, &at, '*', (size_t)argc))
                return -1;
        for (int i = 0; i < argc; i++) {
                size_t n = strlen(argv[i]);
                if (!resp_header(buf, size, &at, '$', n) || size - at < n + 2)
                        return -1;
                memcpy(buf + at, argv[i], n);
                at += n;
                buf[at++] = '\r';
                buf[at++] = '\n';
        }
        if (at >= size)
                return -1;
        buf[at] = '\0';
        return (long)at;
}
