/* gzip (RFC 1952) of a finished buffer, for /metrics: Prometheus asks for
 * it on every scrape, and a thousand targets make 9 MB of text. */
#ifndef HEALTHD_GZIP_H
#define HEALTHD_GZIP_H

#include <stdbool.h>
#include <stddef.h>

/* A malloc'd gzip member holding in[0..len); *outlen its size.  NULL when
 * zlib fails (out of memory).  Not thread-safe: the loop's thread only. */
unsigned char *gzip_compress(const void *in, size_t len, size_t *outlen);
/* Frees the compressor that gzip_compress() keeps between calls (at exit). */
void gzip_free_state(void);

/* True when an Accept-Encoding header value accepts gzip: "gzip" or
 * "x-gzip" with a q-value above 0, or else "*" with one; q=0 refuses. */
bool gzip_accepted(const char *accept_encoding);

#endif
