/*
 * Unit tests for textutil: UTF-8 cleaning and the strict scalar parsers.
 * Table-driven: each table row is one loop iteration of a Check test, so a
 * failure names the row.
 */
#include <check.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "textutil.h"

#include <hiredis.h>

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define S(lit) lit, sizeof(lit) - 1 /* a literal with its exact length */
#define FFFD "\xef\xbf\xbd"

/* ---- utf8_clean ---------------------------------------------------------- */

static const struct {
        const char *in;
        size_t inlen;
        size_t dstsize;
        const char *want;
} clean_cases[] = {
    {S("hello"), 64, "hello"},
    {S(""), 64, ""},
    {S("a\r\nb\r\n"), 64, "a  b"},
    {S("tab\there"), 64, "tab here"},
    {S("bell\a\x1b[31m"), 64, "bell  [31m"},
    {S("del\x7f"), 64, "del"},
    {S("a\0b"), 64, "a b"},
    {S("  lead kept, trail cut \n\n  "), 64, "  lead kept, trail cut"},
    /* Well-formed multibyte text passes through, including the extremes. */
    {S("caf\xc3\xa9"), 64, "caf\xc3\xa9"},
    {S("\xe2\x82\xac"), 64, "\xe2\x82\xac"},
    {S("\xf0\x9f\x98\x80"), 64, "\xf0\x9f\x98\x80"},
    {S("\xf4\x8f\xbf\xbf"), 64, "\xf4\x8f\xbf\xbf"},                 /* U+10FFFF */
    {S("\xed\x9f\xbf\xee\x80\x80"), 64, "\xed\x9f\xbf\xee\x80\x80"}, /* around surrogates */
    {S("\xc2\x85"), 64, "\xc2\x85"},                                 /* C1 control is kept */
    /* Ill-formed: one U+FFFD per maximal subpart. */
    {S("\xc0\xaf"), 64, FFFD FFFD},                   /* overlong '/' */
    {S("\xc1\xbf"), 64, FFFD FFFD},                   /* overlong */
    {S("\xe0\x80\xaf"), 64, FFFD FFFD FFFD},          /* overlong 3-byte */
    {S("\xf0\x80\x80\xaf"), 64, FFFD FFFD FFFD FFFD}, /* overlong 4-byte */
    {S("\xed\xa0\x80"), 64, FFFD FFFD FFFD},          /* surrogate U+D800 */
    {S("\xed\xbf\xbf"), 64, FFFD FFFD FFFD},          /* surrogate U+DFFF */
    {S("\xf4\x90\x80\x80"), 64, FFFD FFFD FFFD FFFD}, /* U+110000 */
    {S("\xf5\x80"), 64, FFFD FFFD},
    {S("\xff\xfe"), 64, FFFD FFFD},
    {S("\x80x"), 64, FFFD "x"},       /* stray continuation */
    {S("ab\xe2\x82"), 64, "ab" FFFD}, /* cut short at the end */
    {S("\xe2\x82x"), 64, FFFD "x"},   /* cut short mid-text */
    {S("\xf0\x9f\x98"), 64, FFFD},
    {S("\xe2\x82\xe2\x82\xac"), 64, FFFD "\xe2\x82\xac"},
    /* Truncation never splits a character and always leaves the NUL. */
    {S("abc"), 4, "abc"},
    {S("abcd"), 4, "abc"},
    {S("abc"), 1, ""},
    {S("a\xc3\xa9"), 3, "a"},
    {S("a\xc3\xa9"), 4, "a\xc3\xa9"},
    {S("\xe2\x82\xac\xe2\x82\xac"), 6, "\xe2\x82\xac"},
    {S("\xe2\x82\xac\xe2\x82\xac"), 7, "\xe2\x82\xac\xe2\x82\xac"},
    {S("a\xff"), 3, "a"}, /* U+FFFD would not fit */
    {S("a   b"), 4, "a"}, /* trimmed after truncation */
    {S("\xf0\x9f\x98\x80"), 4, ""},
};

START_TEST(t_utf8_clean_table)
{
        char dst[64];
        size_t got;

        memset(dst, 'Z', sizeof(dst));
        got = utf8_clean(dst, clean_cases[_i].dstsize, clean_cases[_i].in, clean_cases[_i].inlen);
        ck_assert_msg(strcmp(dst, clean_cases[_i].want) == 0, "case %d: got '%s' want '%s'", _i,
                      dst, clean_cases[_i].want);
        ck_assert_uint_eq(got, strlen(clean_cases[_i].want));
        ck_assert_uint_lt(got, clean_cases[_i].dstsize);
}
END_TEST

START_TEST(t_utf8_clean_edges)
{
        char dst[8] = "keep";

        ck_assert_uint_eq(utf8_clean(NULL, 8, "x", 1), 0);
        ck_assert_uint_eq(utf8_clean(dst, 0, "x", 1), 0);
        ck_assert_str_eq(dst, "keep"); /* dstsize 0: not even the NUL */
        ck_assert_uint_eq(utf8_clean(dst, sizeof(dst), NULL, 0), 0);
        ck_assert_str_eq(dst, "");
        ck_assert_uint_eq(utf8_clean(dst, sizeof(dst), NULL, 5), 0);
        ck_assert_str_eq(dst, "");
}
END_TEST

/*
 * An independent validator: decode by bit patterns and check minimal form,
 * range and surrogates, and that no ASCII control or trailing space is left.
 */
static int valid_clean_utf8(const unsigned char *s, size_t n)
{
        size_t i = 0;

        if (n > 0 && s[n - 1] == ' ')
                return 0;
        while (i < n) {
                unsigned c = s[i];
                uint32_t cp;
                size_t len, k;

                if (c < 0x80) {
                        if (c < 0x20 || c == 0x7f)
                                return 0;
                        i++;
                        continue;
                }
                if ((c & 0xe0) == 0xc0) {
                        len = 2;
                        cp = c & 0x1f;
                } else if ((c & 0xf0) == 0xe0) {
                        len = 3;
                        cp = c & 0x0f;
                } else if ((c & 0xf8) == 0xf0) {
                        len = 4;
                        cp = c & 0x07;
                } else {
                        return 0;
                }
                if (i + len > n)
                        return 0;
                for (k = 1; k < len; k++) {
                        if ((s[i + k] & 0xc0) != 0x80)
                                return 0;
                        cp = (cp << 6) | (s[i + k] & 0x3f);
                }
                if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
                    (len == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return 0;
                i += len;
        }
        return 1;
}

/* Random bytes (biased towards UTF-8 lead and continuation bytes) in, clean text out. */
START_TEST(t_utf8_clean_random)
{
        uint32_t x = 2463534242u;
        int iter;

        for (iter = 0; iter < 20000; iter++) {
                unsigned char in[48];
                char out[40];
                size_t inlen, dstsize, got, k;

                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                inlen = x % sizeof(in);
                dstsize = 1 + (x >> 8) % sizeof(out);
                for (k = 0; k < inlen; k++) {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        in[k] = (x & 3) == 0 ? (unsigned char)(0x80 | (x >> 8 & 0x3f))
                                             : (unsigned char)(x >> 8);
                }
                got = utf8_clean(out, dstsize, (const char *)in, inlen);
                ck_assert_uint_lt(got, dstsize);
                ck_assert_uint_eq(strlen(out), got);
                ck_assert_msg(valid_clean_utf8((const unsigned char *)out, got),
                              "iteration %d produced invalid output", iter);
        }
}
END_TEST

/* ---- utf8_valid, utf8_cut, utf8_snprintf -------------------------------- */

static const struct {
        const char *in;
        size_t len;
        bool valid;
} valid_cases[] = {
    {S(""), true},
    {S("plain ascii\r\n\t"), true},
    {S("a\0b"), true},
    {S("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"), true},
    {S("\xc3"), false},
    {S("ab\xe2\x82"), false},
    {S("\xf0\x9f\x98"), false},
    {S("\x80"), false},
    {S("\xc0\xaf"), false},
    {S("\xed\xa0\x80"), false},
    {S("\xf4\x90\x80\x80"), false},
    {S("\xff"), false},
    {S("ok\xc3\xa9\xc3"), false},
};

START_TEST(t_utf8_valid_table)
{
        char *p = malloc(valid_cases[_i].len + 1);
        ck_assert_ptr_nonnull(p);
        memcpy(p, valid_cases[_i].in, valid_cases[_i].len); /* exact size: ASan sees over-reads */
        ck_assert_msg(utf8_valid(p, valid_cases[_i].len) == valid_cases[_i].valid, "case %d", _i);
        free(p);
}
END_TEST

static const struct {
        const char *in;
        size_t len;
        size_t want;
} cut_cases[] = {
    {S(""), 0},
    {S("abc"), 3},
    {S("ab\xc3"), 2},               /* 2-byte lead with nothing after it */
    {S("ab\xc3\xa9"), 4},           /* whole */
    {S("a\xe2"), 1},                /* 3-byte, 1 of 3 */
    {S("a\xe2\x82"), 1},            /* 3-byte, 2 of 3 */
    {S("a\xe2\x82\xac"), 4},        /* whole */
    {S("a\xf0\x9f\x98"), 1},        /* 4-byte, 3 of 4 */
    {S("a\xf0\x9f\x98\x80"), 5},    /* whole */
    {S("\xc3\xa9\xc3\xa9\xc3"), 4}, /* after whole ones */
    {S("\x80\x80\x80\x80\x80"), 5}, /* no lead byte to cut back to */
    {S("\xe2\x82\xac\x80\x80"), 5}, /* stray continuations are not a cut */
};

START_TEST(t_utf8_cut_table)
{
        ck_assert_uint_eq(utf8_cut(cut_cases[_i].in, cut_cases[_i].len), cut_cases[_i].want);
}
END_TEST

/* A message with multibyte text at every possible cut point: the result is
 * the longest whole-character prefix that fits, and valid UTF-8. */
START_TEST(t_utf8_snprintf_cut_points)
{
        static const char *const chars[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
        for (size_t c = 0; c < 3; c++) {
                char text[64] = "ab";
                for (int k = 0; k < 8; k++)
                        strcat(text, chars[c]);
                size_t clen = strlen(chars[c]), tlen = strlen(text);
                for (size_t size = 1; size <= tlen + 2; size++) {
                        char dst[80];
                        memset(dst, 'X', sizeof(dst));
                        size_t n = utf8_snprintf(dst, size, "%s", text);
                        size_t want;
                        if (size > tlen)
                                want = tlen;
                        else if (size - 1 <= 2)
                                want = size - 1;
                        else
                                want = 2 + (size - 1 - 2) / clen * clen;
                        ck_assert_msg(n == want, "char %zu size %zu: %zu bytes, want %zu", c, size,
                                      n, want);
                        ck_assert_uint_eq(strlen(dst), n);
                        ck_assert_int_eq(memcmp(dst, text, n), 0);
                        ck_assert(utf8_valid(dst, n));
                        ck_assert_msg(dst[size] == 'X', "wrote past size %zu", size);
                }
        }
}
END_TEST

START_TEST(t_utf8_snprintf_edges)
{
        char dst[16] = "zzz";
        ck_assert_uint_eq(utf8_snprintf(dst, 0, "%s", "abc"), 0);
        ck_assert_str_eq(dst, "zzz"); /* size 0: untouched */
        ck_assert_uint_eq(utf8_snprintf(NULL, 8, "%s", "abc"), 0);
        ck_assert_uint_eq(utf8_snprintf(dst, sizeof(dst), "%d-%s", 42, "\xc3\xa9"), 5);
        ck_assert_str_eq(dst, "42-\xc3\xa9");
        /* formatted arguments around the cut, as in a root-cause message */
        ck_assert_uint_eq(utf8_snprintf(dst, 8, "x %s: %s", "db", "\xe2\x82\xac"), 6);
        ck_assert_str_eq(dst, "x db: ");
        /* invalid text before the cut is not this function's business */
        ck_assert_uint_eq(utf8_snprintf(dst, sizeof(dst), "%s", "\xff"), 1);
}
END_TEST

/* ---- parse_duration_ms --------------------------------------------------- */

static const struct {
        const char *in;
        int rc;
        int64_t ms;
} dur_cases[] = {
    {"250ms", 0, 250},
    {"2s", 0, 2000},
    {"1m", 0, 60000},
    {"1h", 0, 3600000},
    {"14d", 0, INT64_C(1209600000)},
    {"1.5h", 0, 5400000},
    {"0.5d", 0, 43200000},
    {"1D", -1, 0},
    {"1H", -1, 0},
    {"1dd", -1, 0},
    {"0.000000001d", -1, 0}, /* 0.0864 ms */
    {"106751991167d", 0, INT64_C(9223372036828800000)},
    {"106751991168d", -1, 0},
    {"1.5s", 0, 1500},
    {"0.25s", 0, 250},
    {"0.001s", 0, 1},
    {"1.25m", 0, 75000},
    {"0.5m", 0, 30000},
    {"0250ms", 0, 250},
    {"0", 0, 0},
    {"0ms", 0, 0},
    {"0s", 0, 0},
    {"0.0s", 0, 0},
    {"9223372036854775807ms", 0, INT64_MAX},
    {"9223372036854775s", 0, INT64_C(9223372036854775000)},
    {"", -1, 0},
    {"2", -1, 0},  /* bare number: ms or s? refused */
    {"00", -1, 0}, /* only "0" itself may go without a unit */
    {"250", -1, 0},
    {"-1s", -1, 0},
    {"+1s", -1, 0},
    {" 1s", -1, 0},
    {"1s ", -1, 0},
    {"1 s", -1, 0},
    {"1.s", -1, 0},
    {".5s", -1, 0},
    {"1..5s", -1, 0},
    {"0.5ms", -1, 0},         /* sub-millisecond */
    {"1.0001s", -1, 0},       /* 1000.1 ms */
    {"1.0000000001s", -1, 0}, /* more than 9 fraction digits */
    {"1x", -1, 0},
    {"1sms", -1, 0},
    {"1S", -1, 0},
    {"1MS", -1, 0},
    {"1e3ms", -1, 0},
    {"0x10s", -1, 0},
    {"s", -1, 0},
    {"ms", -1, 0},
    {"9223372036854775808ms", -1, 0},
    {"9223372036854776s", -1, 0},
    {"153722867280912930m", -1, 0},
    {"153722867280912.5m", 0, INT64_C(9223372036854750000)},
    {"9223372036854775807.5s", -1, 0},
    {"99999999999999999999999999ms", -1, 0},
    {"9223372036854775.807s", 0, INT64_MAX},
    {"9223372036854775.808s", -1, 0},
};

START_TEST(t_duration_table)
{
        int64_t v = -42;
        int rc = parse_duration_ms(dur_cases[_i].in, &v);

        ck_assert_msg(rc == dur_cases[_i].rc, "'%s': rc %d want %d", dur_cases[_i].in, rc,
                      dur_cases[_i].rc);
        if (rc == 0)
                ck_assert_msg(v == dur_cases[_i].ms, "'%s': %lld ms", dur_cases[_i].in,
                              (long long)v);
        else
                ck_assert_msg(v == -42, "'%s': output written on failure", dur_cases[_i].in);
}
END_TEST

START_TEST(t_duration_null)
{
        int64_t v;

        ck_assert_int_eq(parse_duration_ms(NULL, &v), -1);
        ck_assert_int_eq(parse_duration_ms("1s", NULL), -1);
}
END_TEST

/* ---- parse_bool ---------------------------------------------------------- */

static const struct {
        const char *in;
        int rc;
        bool v;
} bool_cases[] = {
    {"yes", 0, true},      {"YES", 0, true},   {"Yes", 0, true},     {"true", 0, true},
    {"TRUE", 0, true},     {"on", 0, true},    {"On", 0, true},      {"1", 0, true},
    {"no", 0, false},      {"NO", 0, false},   {"false", 0, false},  {"False", 0, false},
    {"off", 0, false},     {"OFF", 0, false},  {"0", 0, false},      {"", -1, false},
    {"y", -1, false},      {"n", -1, false},   {"2", -1, false},     {" yes", -1, false},
    {"yes ", -1, false},   {"tru", -1, false}, {"truee", -1, false}, {"01", -1, false},
    {"enable", -1, false}, {"o", -1, false},
};

START_TEST(t_bool_table)
{
        bool v = !bool_cases[_i].v;
        int rc = parse_bool(bool_cases[_i].in, &v);

        ck_assert_msg(rc == bool_cases[_i].rc, "'%s': rc %d", bool_cases[_i].in, rc);
        if (rc == 0)
                ck_assert_msg(v == bool_cases[_i].v, "'%s': wrong value", bool_cases[_i].in);
        else
                ck_assert_msg(v == !bool_cases[_i].v, "'%s': output written", bool_cases[_i].in);
}
END_TEST

START_TEST(t_bool_null)
{
        bool v;

        ck_assert_int_eq(parse_bool(NULL, &v), -1);
        ck_assert_int_eq(parse_bool("yes", NULL), -1);
}
END_TEST

/* ---- parse_int_range ----------------------------------------------------- */

static const struct {
        const char *in;
        long min, max;
        int rc;
        long v;
} int_cases[] = {
    {"0", 0, 10, 0, 0},
    {"10", 0, 10, 0, 10},
    {"-5", -10, 10, 0, -5},
    {"007", 0, 10, 0, 7},
    {"-0", 0, 0, 0, 0},
    {"9223372036854775807", 0, LONG_MAX, 0, LONG_MAX},
    {"-9223372036854775808", LONG_MIN, 0, 0, LONG_MIN},
    {"11", 0, 10, -1, 0},
    {"-1", 0, 10, -1, 0},
    {"", 0, 10, -1, 0},
    {"-", 0, 10, -1, 0},
    {"+1", 0, 10, -1, 0},
    {" 1", 0, 10, -1, 0},
    {"1 ", 0, 10, -1, 0},
    {"1a", 0, 10, -1, 0},
    {"0x10", 0, 100, -1, 0},
    {"1.0", 0, 10, -1, 0},
    {"--1", -10, 10, -1, 0},
    {"9223372036854775808", 0, LONG_MAX, -1, 0},
    {"-9223372036854775809", LONG_MIN, 0, -1, 0},
    {"99999999999999999999999", LONG_MIN, LONG_MAX, -1, 0},
    {"5", 10, 0, -1, 0}, /* min > max */
};

START_TEST(t_int_table)
{
        long v = 12345;
        int rc = parse_int_range(int_cases[_i].in, int_cases[_i].min, int_cases[_i].max, &v);

        ck_assert_msg(rc == int_cases[_i].rc, "'%s': rc %d", int_cases[_i].in, rc);
        ck_assert_int_eq(v, rc == 0 ? int_cases[_i].v : 12345);
}
END_TEST

START_TEST(t_int_null)
{
        long v;

        ck_assert_int_eq(parse_int_range(NULL, 0, 1, &v), -1);
        ck_assert_int_eq(parse_int_range("1", 0, 1, NULL), -1);
}
END_TEST

/* ---- parse_ratio --------------------------------------------------------- */

static const struct {
        const char *in;
        int rc;
        double v;
} ratio_cases[] = {
    {"0.8", 0, 0.8},
    {"80%", 0, 0.8},
    {"0", 0, 0.0},
    {"1", 0, 1.0},
    {"1.0", 0, 1.0},
    {"0%", 0, 0.0},
    {"100%", 0, 1.0},
    {"12.5%", 0, 0.125},
    {"0.333", 0, 0.333},
    {"00.5", 0, 0.5},
    {"0.1", 0, 0.1},
    {"0.123456789012345", 0, 0.123456789012345},
    {"99.9999999999999%", 0, 0.999999999999999},
    {"", -1, 0},
    {"%", -1, 0},
    {".8", -1, 0},
    {"8.", -1, 0},
    {"1.1", -1, 0},
    {"2", -1, 0},
    {"101%", -1, 0},
    {"100.1%", -1, 0},
    {"-0.1", -1, 0},
    {"-0", -1, 0},
    {"+0.5", -1, 0},
    {" 0.8", -1, 0},
    {"0.8 ", -1, 0},
    {"80 %", -1, 0},
    {"1e-1", -1, 0},
    {"nan", -1, 0},
    {"inf", -1, 0},
    {"0x0.8p0", -1, 0},
    {"0.8%%", -1, 0},
    {"0,8", -1, 0},
    {"0.1234567890123456", -1, 0}, /* 16 significant digits */
    {"0.0000000000000001", -1, 0}, /* 16 fraction digits */
};

START_TEST(t_ratio_table)
{
        double v = -1.0;
        int rc = parse_ratio(ratio_cases[_i].in, &v);

        ck_assert_msg(rc == ratio_cases[_i].rc, "'%s': rc %d", ratio_cases[_i].in, rc);
        /* Exact comparison on purpose: the parser promises correct rounding. */
        if (rc == 0)
                ck_assert_msg(v == ratio_cases[_i].v, "'%s': %.17g", ratio_cases[_i].in, v);
        else
                ck_assert_msg(v == -1.0, "'%s': output written", ratio_cases[_i].in);
}
END_TEST

START_TEST(t_ratio_null)
{
        double v;

        ck_assert_int_eq(parse_ratio(NULL, &v), -1);
        ck_assert_int_eq(parse_ratio("0.5", NULL), -1);
}
END_TEST

/* ---- text_ieq ------------------------------------------------------------ */

START_TEST(t_text_ieq)
{
        ck_assert(text_ieq("BRPOP", 5, "brpop"));
        ck_assert(text_ieq("brpopX", 5, "brpop"));
        ck_assert(!text_ieq("brpo", 4, "brpop"));
        ck_assert(!text_ieq("brpops", 6, "brpop"));
        ck_assert(text_ieq(NULL, 0, ""));
        ck_assert(!text_ieq(NULL, 1, "x"));
        ck_assert(!text_ieq("x", 1, NULL));
        ck_assert(!text_ieq("[", 1, "{")); /* only letters fold */
}
END_TEST

/* ---- resp_format ------------------------------------------------------- */

static const struct {
        int argc;
        const char *argv[6];
} resp_cases[] = {
    {1, {"PING"}},
    {2, {"GET", "hdms-healthd:redis-cache:127.0.0.1:6379"}},
    {5, {"SET", "k", "72664.617859", "PX", "60000"}},
    {2, {"LLEN", "a queue with spaces"}},
    {2, {"GET", ""}},
    {3, {"CLIENT", "LIST", "TYPE"}},
    {0, {NULL}},
    {2, {"SET", "line\r\nbreak \"quoted\" %s %d"}},
};

/* The same bytes as hiredis's own formatter, at every buffer size: -1
 * below the size it needs (never a write past it: ASan), the command from
 * there on. */
START_TEST(t_resp_format_as_hiredis)
{
        char *want = NULL;
        const char *av[6];
        memcpy(av, resp_cases[_i].argv, sizeof(av));
        int wlen = redisFormatCommandArgv(&want, resp_cases[_i].argc, av, NULL);
        ck_assert_int_gt(wlen, 0);
        for (size_t size = 1; size <= (size_t)wlen + 2; size++) {
                char *buf = malloc(size);
                ck_assert_ptr_nonnull(buf);
                long n = resp_format(buf, size, resp_cases[_i].argc, resp_cases[_i].argv);
                if (size <= (size_t)wlen) {
                        ck_assert_msg(n == -1, "size %zu: %ld", size, n);
                } else {
                        ck_assert_int_eq(n, wlen);
                        ck_assert_mem_eq(buf, want, (size_t)wlen);
                        ck_assert_int_eq(buf[n], '\0');
                }
                free(buf);
        }
        redisFreeCommand(want);
}
END_TEST

START_TEST(t_resp_format_args)
{
        char buf[32];
        const char *argv[] = {"PING"};
        ck_assert_int_eq(resp_format(NULL, sizeof(buf), 1, argv), -1);
        ck_assert_int_eq(resp_format(buf, 0, 1, argv), -1);
        ck_assert_int_eq(resp_format(buf, sizeof(buf), -1, argv), -1);
        ck_assert_int_eq(resp_format(buf, sizeof(buf), 1, NULL), -1);
        /* argument lengths of more than one digit */
        char big[1200];
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        const char *bv[] = {"SET", big};
        char out[1300];
        ck_assert_int_eq(resp_format(out, sizeof(out), 2, bv), 4 + 9 + 7 + 1199 + 2);
        ck_assert(strncmp(out, "*2\r\n$3\r\nSET\r\n$1199\r\nxxx", 23) == 0);
}
END_TEST

static Suite *textutil_suite(void)
{
        Suite *s = suite_create("textutil");
        TCase *tc = tcase_create("core");

        tcase_add_loop_test(tc, t_utf8_clean_table, 0, N(clean_cases));
        tcase_add_test(tc, t_utf8_clean_edges);
        tcase_add_test(tc, t_utf8_clean_random);
        tcase_add_loop_test(tc, t_utf8_valid_table, 0, N(valid_cases));
        tcase_add_loop_test(tc, t_utf8_cut_table, 0, N(cut_cases));
        tcase_add_test(tc, t_utf8_snprintf_cut_points);
        tcase_add_test(tc, t_utf8_snprintf_edges);
        tcase_add_loop_test(tc, t_duration_table, 0, N(dur_cases));
        tcase_add_test(tc, t_duration_null);
        tcase_add_loop_test(tc, t_bool_table, 0, N(bool_cases));
        tcase_add_test(tc, t_bool_null);
        tcase_add_loop_test(tc, t_int_table, 0, N(int_cases));
        tcase_add_test(tc, t_int_null);
        tcase_add_loop_test(tc, t_ratio_table, 0, N(ratio_cases));
        tcase_add_test(tc, t_ratio_null);
        tcase_add_test(tc, t_text_ieq);
        tcase_add_loop_test(tc, t_resp_format_as_hiredis, 0, N(resp_cases));
        tcase_add_test(tc, t_resp_format_args);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(textutil_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
