/* gzip for HTTP answers (include/gzip.h). */
#include "gzip.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

/* One stream, kept: deflateInit2 allocates and clears some 256 KiB of
 * window and hash tables, which cost more than compressing a few dozen KiB
 * of text; deflateReset keeps them.  The loop's thread only. */
static z_stream zs;
static bool zs_ready;

unsigned char *gzip_compress(const void *in, size_t len, size_t *outlen)
{
        if (!zs_ready) {
                /* windowBits 15 + 16: a gzip header and trailer, not zlib's.
                 * Level 1: the text is repetitive enough that the fastest
                 * level already takes it to a tenth, and the loop pays for
                 * every level above. */
                if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
                        return NULL;
                zs_ready = true;
        } else if (deflateReset(&zs) != Z_OK) {
                return NULL;
        }
        uLong cap = deflateBound(&zs, (uLong)len);
        unsigned char *out = malloc(cap);
        if (out == NULL)
                return NULL;
        zs.next_in = (Bytef *)(uintptr_t)in;
        zs.avail_in = (uInt)len;
        zs.next_out = out;
        zs.avail_out = (uInt)cap;
        int rc = deflate(&zs, Z_FINISH);
        *outlen = zs.total_out;
        if (rc != Z_STREAM_END) {
                free(out);
                return NULL;
        }
        return out;
}

void gzip_free_state(void)
{
        if (zs_ready)
                deflateEnd(&zs);
        zs_ready = false;
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
