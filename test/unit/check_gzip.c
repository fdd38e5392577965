/*
 * Unit tests for gzip.c: what Accept-Encoding values accept gzip
 * (table-driven), and that a compressed buffer inflates back to the input
 * through zlib's own gzip reader.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "gzip.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const struct {
        const char *header;
        bool accepted;
} accept_cases[] = {
    {"gzip", true},
    {"gzip, deflate, br", true},
    {"deflate, gzip;q=0.5", true},
    {"GZip", true},
    {"x-gzip", true},
    {"*", true},
    {"gzip;q=0", false},
    {"gzip; q=0.0", false},
    {"deflate", false},
    {"", false},
    {"identity", false},
    {"*;q=0", false},
    {"gzip;q=0, *", false}, /* an explicit refusal beats the wildcard */
    {"*, gzip;q=0", false},
    {"identity, *;q=0.1", true},
    {"gzipx", false},
    {"  gzip  ;  q=1", true},
};

START_TEST(test_accepted)
{
        ck_assert_msg(gzip_accepted(accept_cases[_i].header) == accept_cases[_i].accepted,
                      "Accept-Encoding \"%s\": expected %s", accept_cases[_i].header,
                      accept_cases[_i].accepted ? "gzip" : "identity");
}
END_TEST

static char *inflate_all(const unsigned char *z, size_t zlen, size_t cap, size_t *outlen)
{
        char *out = malloc(cap);
        ck_assert_ptr_nonnull(out);
        z_stream s;
        memset(&s, 0, sizeof(s));
        ck_assert_int_eq(inflateInit2(&s, 15 + 16), Z_OK); /* gzip only */
        s.next_in = (Bytef *)(uintptr_t)z;
        s.avail_in = (uInt)zlen;
        s.next_out = (Bytef *)out;
        s.avail_out = (uInt)cap;
        ck_assert_int_eq(inflate(&s, Z_FINISH), Z_STREAM_END);
        *outlen = s.total_out;
        inflateEnd(&s);
        return out;
}

START_TEST(test_round_trip)
{
        /* /metrics-shaped text: long, repetitive */
        size_t len = 0, cap = 1 << 20;
        char *text = malloc(cap);
        ck_assert_ptr_nonnull(text);
        for (int i = 0; len + 200 < cap; i++)
                len +=
                    (size_t)snprintf(text + len, cap - len,
                                     "hdms_healthd_check_duration_seconds_bucket{target=\"t%04d\","
                                     "kind=\"redis\",le=\"0.05\"} %d\n",
                                     i % 1000, i);
        size_t zlen = 0;
        unsigned char *z = gzip_compress(text, len, &zlen);
        ck_assert_ptr_nonnull(z);
        ck_assert_uint_eq(z[0], 0x1f); /* the gzip magic, not zlib's header */
        ck_assert_uint_eq(z[1], 0x8b);
        ck_assert_uint_lt(zlen, len / 5);
        size_t back_len = 0;
        char *back = inflate_all(z, zlen, len + 16, &back_len);
        ck_assert_uint_eq(back_len, len);
        ck_assert(memcmp(back, text, len) == 0);
        free(back);
        free(z);
        free(text);
}
END_TEST

START_TEST(test_empty)
{
        size_t zlen = 0;
        unsigned char *z = gzip_compress("", 0, &zlen);
        ck_assert_ptr_nonnull(z);
        size_t back_len = 1;
        char *back = inflate_all(z, zlen, 16, &back_len);
        ck_assert_uint_eq(back_len, 0);
        free(back);
        free(z);
}
END_TEST

START_TEST(test_stream_reused)
{
        /* the kept stream starts clean each time: no state from the last */
        const char *a = "first body, first body, first body\n";
        const char *b = "second\n";
        for (int i = 0; i < 3; i++) {
                const char *in = i % 2 ? b : a;
                size_t zlen = 0, back_len = 0;
                unsigned char *z = gzip_compress(in, strlen(in), &zlen);
                ck_assert_ptr_nonnull(z);
                char *back = inflate_all(z, zlen, 256, &back_len);
                ck_assert_uint_eq(back_len, strlen(in));
                ck_assert(memcmp(back, in, back_len) == 0);
                free(back);
                free(z);
        }
}
END_TEST

/* The member made in slices (the HTTP front feeds one per loop turn) is
 * the one made at once, and two streams at the same time keep apart. */
START_TEST(test_stream_slices)
{
        size_t len = 0, cap = 1 << 19;
        char *text = malloc(cap);
        ck_assert_ptr_nonnull(text);
        for (int i = 0; len + 200 < cap; i++)
                len += (size_t)snprintf(text + len, cap - len,
                                        "hdms_healthd_checks_total{target=\"t%04d\"} %d\n", i % 700,
                                        i * 7);
        size_t whole_len = 0;
        unsigned char *whole = gzip_compress(text, len, &whole_len);
        ck_assert_ptr_nonnull(whole);
        static const size_t slices[] = {1, 4096, 65536, 100000};
        for (int k = 0; k < N(slices); k++) {
                struct gzip_stream *z = gzip_stream_new(len);
                struct gzip_stream *other = gzip_stream_new(5); /* a second at the same time */
                ck_assert_ptr_nonnull(z);
                ck_assert_ptr_nonnull(other);
                ck_assert(gzip_stream_feed(other, "other", 5, true));
                size_t off = 0;
                while (off < len) {
                        size_t n = len - off < slices[k] ? len - off : slices[k];
                        ck_assert(gzip_stream_feed(z, text + off, n, false));
                        off += n;
                }
                ck_assert(gzip_stream_feed(z, NULL, 0, true));
                size_t zlen = 0, olen = 0, back_len = 0;
                unsigned char *out = gzip_stream_take(z, &zlen);
                unsigned char *oout = gzip_stream_take(other, &olen);
                char *back = inflate_all(out, zlen, len + 16, &back_len);
                ck_assert_uint_eq(back_len, len);
                ck_assert(memcmp(back, text, len) == 0);
                ck_assert_uint_eq(zlen, whole_len);
                ck_assert(memcmp(out, whole, zlen) == 0);
                free(back);
                back = inflate_all(oout, olen, 16, &back_len);
                ck_assert_uint_eq(back_len, 5);
                ck_assert(memcmp(back, "other", 5) == 0);
                free(back);
                free(out);
                free(oout);
        }
        /* a stream dropped half way leaves nothing behind for the next */
        struct gzip_stream *z = gzip_stream_new(len);
        ck_assert(gzip_stream_feed(z, text, len / 2, false));
        gzip_stream_free(z);
        size_t again_len = 0;
        unsigned char *again = gzip_compress(text, len, &again_len);
        ck_assert_uint_eq(again_len, whole_len);
        ck_assert(memcmp(again, whole, whole_len) == 0);
        free(again);
        free(whole);
        free(text);
}
END_TEST

static Suite *gzip_suite(void)
{
        Suite *s = suite_create("gzip");
        TCase *tc = tcase_create("core");
        tcase_add_loop_test(tc, test_accepted, 0, N(accept_cases));
        tcase_add_test(tc, test_round_trip);
        tcase_add_test(tc, test_empty);
        tcase_add_test(tc, test_stream_reused);
        tcase_add_test(tc, test_stream_slices);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(gzip_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        gzip_free_state();
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
