/* gzip (RFC 1952) of a finished buffer, for /metrics: Prometheus asks for
 * it on every scrape, and a thousand targets make 9 MB of text. */
#ifndef HEALTHD_GZIP_H
#define HEALTHD_GZIP_H

#include <stdbool.h>
#include <stddef.h>

/* A malloc'd gzip member holding in[0..len); *outlen its size.  NULL when
 * zlib fails (out of memory).  Not thread-safe: the loop's thread only. */
unsigned char *gzip_compress(const void *in, size_t len, size_t *outlen);

/* The same gzip member made in pieces: gzip_stream_new() for `len` bytes
 * of input in all, then gzip_stream_feed() with consecutive slices (`last`
 * on the final one, which may be empty), then gzip_stream_take() for the
 * member (malloc'd; frees the stream).  Feed returns false when zlib fails;
 * free the stream then.  NULL from new: out of memory. */
struct gzip_stream;
struct gzip_stream *gzip_stream_new(size_t len);
bool gzip_stream_feed(struct gzip_stream *z, const void *in, size_t len, bool last);
unsigned char *gzip_stream_take(struct gzip_stream *z, size_t *outlen);
void gzip_stream_free(struct gzip_stream *z);

/* Frees the compressor state kept between streams (at exit). */
void gzip_free_state(void);

/* True when an Accept-Encoding header value accepts gzip: "gzip" or
 * "x-gzip" with a q-value above 0, or else "*" with one; q=0 refuses. */
bool gzip_accepted(const char *accept_encoding);

#endif
