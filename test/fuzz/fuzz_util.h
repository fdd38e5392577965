/*
 * fuzz_util.h: helpers shared by the libFuzzer targets (header-only, static).
 *
 * The targets check more than "no sanitizer report": each asserts the
 * contract written in the header of the function it fuzzes (output always
 * NUL-terminated, valid UTF-8, untouched on failure, ...). A broken contract
 * aborts with FUZZ_CHECK's message, which libFuzzer reports as a crash and
 * keeps the input as an artifact.
 *
 * The UTF-8 validator below is written independently of textutil.c on
 * purpose: it is the oracle for utf8_clean() and for every text field the
 * parsers copy out of untrusted input.
 */
#ifndef HEALTHD_FUZZ_UTIL_H
#define HEALTHD_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Called before FUZZ_CHECK aborts, when set: a target that made temporary
 * files removes them here (atexit handlers do not run on abort). */
static void (*fuzz_failure_hook)(void);

#define FUZZ_CHECK(cond, ...)                                                                      \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s\n  ", __FILE__, __LINE__,  \
                                #cond);                                                            \
                        fprintf(stderr, __VA_ARGS__);                                              \
                        fputc('\n', stderr);                                                       \
                        if (fuzz_failure_hook != NULL)                                             \
                                fuzz_failure_hook();                                               \
                        abort();                                                                   \
                }                                                                                  \
        } while (0)

/* A NUL-terminated heap copy of data[0..size) (cut at an embedded NUL by
 * whoever reads it as a string); never NULL. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
        char *s = malloc(size + 1);

        if (s == NULL)
                abort();
        if (size > 0)
                memcpy(s, data, size);
        s[size] = '\0';
        return s;
}

/* True when s[0..n) is well-formed UTF-8 (Unicode table 3-7: no overlongs,
 * surrogates or code points above U+10FFFF). */
static inline bool fuzz_utf8_valid(const char *s, size_t n)
{
        const unsigned char *p = (const unsigned char *)s;
        size_t i = 0;

        while (i < n) {
                unsigned c = p[i];
                unsigned cp;
                size_t len, k;

                if (c < 0x80) {
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
                        return false;
                }
                if (n - i < len)
                        return false;
                for (k = 1; k < len; k++) {
                        if ((p[i + k] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (p[i + k] & 0x3f);
                }
                if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
                    (len == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                i += len;
        }
        return true;
}

/* True when s[0..n) holds no ASCII control byte (0x00-0x1f, 0x7f). */
static inline bool fuzz_no_ascii_controls(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)s[i];

                if (c < 0x20 || c == 0x7f)
                        return false;
        }
        return true;
}

/* True when a char[size] field holds a NUL-terminated, printable UTF-8
 * string (the contract of every text field cleaned with utf8_clean). */
static inline bool fuzz_clean_field(const char *f, size_t size)
{
        const char *nul = memchr(f, '\0', size);

        return nul != NULL && fuzz_utf8_valid(f, (size_t)(nul - f)) &&
               fuzz_no_ascii_controls(f, (size_t)(nul - f));
}

#endif /* HEALTHD_FUZZ_UTIL_H */
