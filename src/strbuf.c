#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void grow(struct strbuf *b, size_t need)
{
        if (b->len + need + 1 <= b->cap)
                return;
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + need + 1)
                cap *= 2;
        char *s = realloc(b->s, cap);
        if (s == NULL)
                abort();
        b->s = s;
        b->cap = cap;
}

void strbuf_init(struct strbuf *b, size_t cap)
{
        b->s = NULL;
        b->len = b->cap = 0;
        grow(b, cap);
        b->s[0] = '\0';
}

void strbuf_put(struct strbuf *b, const char *s, size_t n)
{
        grow(b, n);
        memcpy(b->s + b->len, s, n);
        b->len += n;
        b->s[b->len] = '\0';
}

void strbuf_putc(struct strbuf *b, char c)
{
        strbuf_put(b, &c, 1);
}

void strbuf_puts(struct strbuf *b, const char *s)
{
        strbuf_put(b, s, strlen(s));
}

void strbuf_printf(struct strbuf *b, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if ((size_t)n >= b->cap - b->len) {
                grow(b, (size_t)n);
                va_start(ap, fmt);
                vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
                va_end(ap);
        }
        b->len += (size_t)n;
}

char *strbuf_take(struct strbuf *b)
{
        char *s = b->s;
        b->s = NULL;
        b->len = b->cap = 0;
        return s;
}
