/* A growable string for the renderers.  Allocation failure aborts: the
 * daemon cannot answer without memory anyway. */
#ifndef HEALTHD_STRBUF_H
#define HEALTHD_STRBUF_H

#include <stddef.h>
#include <stdlib.h>

struct strbuf {
        char *s;
        size_t len;
        size_t cap;
};

void strbuf_init(struct strbuf *b, size_t cap);
void strbuf_putc(struct strbuf *b, char c);
void strbuf_puts(struct strbuf *b, const char *s);
void strbuf_put(struct strbuf *b, const char *s, size_t n);
void strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Returns the string (caller frees); the buffer is empty afterwards. */
char *strbuf_take(struct strbuf *b);

#endif
