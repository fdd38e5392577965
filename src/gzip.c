/* gzip for HTTP answers (include/gzip.h). */
#include "gzip.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* A compression in pieces: the caller feeds the input a slice per loop
 * turn, so that 9 MB of /metrics does not hold the loop for all of it. */
struct gzip_stream {
        z_stream zs;
        unsigned char *out;
        size_t cap;
};

/* One zlib state, kept: deflateInit2 allocates and clears some 256 KiB of
 * window and hash tables, which cost more than compressing a few dozen KiB
 * of text; deflateReset keeps them.  A second stream at the same time gets
 * a state of its own.  The loop's thread only. */
static struct gzip_stream *spare;

struct gzip_stream *gzip_stream_new(size_t len)
{
        struct gzip_stream *z = spare;
        if (z != NULL) {
                spare = NULL;
                if (deflateReset(&z->zs) != Z_OK) {
                        deflateEnd(&z->zs);
                        free(z);
                        return NULL;
                }
        } else {
                z = calloc(1, sizeof(*z));
                if (z == NULL)
                        return NULL;
                /* windowBits 15 + 16: a gzip header and trailer, not zlib's.
                 * Level 1: the text is repetitive enough that the fastest
                 * level already takes it to a tenth, and the loop pays for
                 * every level above. */
                if (deflateInit2(&z->zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
                        free(z);
                        return NULL;
                }
        }
        /* deflateBound holds for input fed in slices without flushes too
         * (zlib.h), so the output never has to grow */
        z->cap = deflateBound(&z->zs, (uLong)len);
        z->out = malloc(z->cap);
        if (z->out == NULL) {
                gzip_stream_free(z);
                return NULL;
        }
        z->zs.next_out = z->out;
        z->zs.avail_out = (uInt)z->cap;
        return z;
}

bool gzip_stream_feed(struct gzip_stream *z, const void *in, size_t len, bool last)
{
        z->zs.next_in = (Bytef *)(uintptr_t)in;
        z->zs.avail_in = (uInt)len;
        int rc = deflate(&z->zs, last ? Z_FINISH : Z_NO_FLUSH);
        if (last)
                return rc == Z_STREAM_END;
        /* Z_BUF_ERROR: an empty slice, no progress possible (not an error) */
        return (rc == Z_OK || rc == Z_BUF_ERROR) && z->zs.avail_in == 0;
}

unsigned char *gzip_stream_take(struct gzip_stream *z, size_t *outlen)
{
        unsigned char *out = z->out;
        *outlen = z->zs.total_out;
        z->out = NULL;
        gzip_stream_free(z);
        return out;
}

void gzip_stream_free(struct gzip_stream *z)
{
        if (z == NULL)
                return;
        free(z->out);
        z->out = NULL;
        if (spare == NULL) {
                spare = z;
                return;
        }
        deflateEnd(&z->zs);
        free(z);
}

unsigned char *gzip_compress(const void *in, size_t len, size_t *outlen)
{
        struct gzip_stream *z = gzip_stream_new(len);
        if (z == NULL)
                return NULL;
        if (!gzip_stream_feed(z, in, len, true)) {
                gzip_stream_free(z);
                return NULL;
        }
        return gzip_stream_take(z, outlen);
}

void gzip_free_state(void)
{
        if (spare != NULL) {
                deflateEnd(&spare->zs);
                free(spare);
        }
        spare = NULL;
}

/* The q-value of one Accept-Encoding element ("gzip;q=0.5"), 1 by default. */
static double element_q(const char *params, const char *end)
{
        for (const char *p = params; p != NULL && p < end; p = memchr(p, ';', (size_t)(end - p))) {
                p++;
                while (p < end && *p == ' ')
                        p++;
                if (end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=')
                        return strtod(p + 2, NULL);
        }
        return 1;
}

bool gzip_accepted(const char *ae)
{
        double gzip = -1, star = -1;
        const char *p = ae;
        while (p != NULL && *p != '\0') {
                while (*p == ' ' || *p == ',')
                        p++;
                const char *end = strchr(p, ',');
                if (end == NULL)
                        end = p + strlen(p);
                const char *semi = memchr(p, ';', (size_t)(end - p));
                const char *name_end = semi != NULL ? semi : end;
                while (name_end > p && name_end[-1] == ' ')
                        name_end--;
                size_t n = (size_t)(name_end - p);
                double q = element_q(semi, end);
                if ((n == 4 && strncasecmp(p, "gzip", 4) == 0) ||
                    (n == 6 && strncasecmp(p, "x-gzip", 6) == 0))
                        gzip = gzip < q ? q : gzip;
                else if (n == 1 && *p == '*')
                        star = q;
                p = *end != '\0' ? end + 1 : end;
        }
        return gzip >= 0 ? gzip > 0 : star > 0;
}
