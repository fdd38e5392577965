/*
 * textutil.h: small, pure text helpers shared by the parsers and the config.
 *
 * Nothing here allocates, reads the locale or touches global state, so every
 * function is safe to call from any module and easy to fuzz. All parsers are
 * strict: the whole string must match, with no leading or trailing blanks,
 * and the output is written only on success.
 */
#ifndef HEALTHD_TEXTUTIL_H
#define HEALTHD_TEXTUTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef HEALTHD_MUSTCHECK
#define HEALTHD_MUSTCHECK __attribute__((warn_unused_result))
#endif

/*
 * Copy srclen bytes of untrusted text (server error messages, names read from
 * a server) into dst as valid, printable UTF-8:
 *   - each ill-formed UTF-8 sequence (stray continuation byte, overlong form,
 *     surrogate, code point above U+10FFFF, sequence cut short) becomes one
 *     U+FFFD per maximal ill-formed subpart, as Unicode recommends;
 *   - each ASCII control byte (0x00-0x1f and 0x7f, so also NUL, \t, \r, \n)
 *     becomes a space; C1 controls (U+0080-U+009F) are valid UTF-8 and kept;
 *   - trailing spaces (including converted newlines) are trimmed.
 * At most dstsize - 1 bytes are written and a multibyte character is never
 * split: copying stops before the first character that would not fit.
 * dst is always NUL-terminated when dstsize > 0. src may be NULL when srclen
 * is 0; dst and src must not overlap. Returns the bytes written, without the
 * NUL.
 */
size_t utf8_clean(char *dst, size_t dstsize, const char *src, size_t srclen);

/*
 * True when the len bytes at s are well-formed UTF-8 (table 3-7: no
 * overlong form, surrogate or code point above U+10FFFF, no sequence cut
 * short). Control bytes are valid UTF-8. s may be NULL only when len is 0.
 */
bool utf8_valid(const char *s, size_t len);

/*
 * The length of the longest prefix of the len bytes at s that does not end
 * inside a multibyte sequence: len itself, or less when the last lead byte
 * needs more continuation bytes than follow it. What comes before the end
 * is not examined (utf8_clean is for that).
 */
size_t utf8_cut(const char *s, size_t len);

/*
 * snprintf that never splits a UTF-8 character: when the result does not
 * fit, it is cut back to the last whole character before the limit
 * (utf8_cut) instead of at the byte limit, so text that was valid UTF-8
 * stays valid. dst is always NUL-terminated when size > 0; an output error
 * leaves it empty. Returns the bytes written, without the NUL. Use it
 * wherever text that may carry network strings goes into a fixed buffer.
 */
size_t utf8_snprintf(char *dst, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
size_t utf8_vsnprintf(char *dst, size_t size, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/*
 * Parse a duration into milliseconds: a decimal number with a unit "ms",
 * "s", "m", "h" or "d" ("250ms", "2s", "1.5s", "1m", "14d"). The only unitless value
 * accepted is "0", so that "2" can never mean 2 ms to one reader and 2 s to
 * another. Rejects negative numbers, signs, blanks, empty input, trailing
 * junk, fractions finer than a millisecond ("0.5ms", "1.0001s") and values
 * beyond INT64_MAX ms. Returns 0, or -1 leaving *out_ms untouched.
 */
HEALTHD_MUSTCHECK int parse_duration_ms(const char *s, int64_t *out_ms);

/*
 * Parse yes/no, true/false, on/off, 1/0 (ASCII case-insensitive).
 * Returns 0, or -1 leaving *out untouched.
 */
HEALTHD_MUSTCHECK int parse_bool(const char *s, bool *out);

/*
 * Parse a base-10 integer in [min, max]: an optional '-' and at least one
 * digit, nothing else (no '+', blanks, "0x" or trailing junk).
 * Returns 0, or -1 (also when min > max) leaving *out untouched.
 */
HEALTHD_MUSTCHECK int parse_int_range(const char *s, long min, long max, long *out);

/*
 * Parse a ratio in [0, 1] written as a fraction ("0.8", "1", ".8" is
 * rejected) or a percentage ("80%", "12.5%"). At most 15 significant digits,
 * so the result is the correctly rounded double of the decimal. No exponent,
 * sign, "inf" or "nan". Returns 0, or -1 leaving *out untouched.
 */
HEALTHD_MUSTCHECK int parse_ratio(const char *s, double *out);

/*
 * True when the len bytes at a equal the NUL-terminated string b, ignoring
 * ASCII case (locale-independent). a may be NULL only when len is 0; a NULL
 * b never matches. Meant for tokens inside a larger buffer.
 */
bool text_ieq(const char *a, size_t len, const char *b);

/*
 * The origin of an http:// or https:// URL as "scheme://host:port" (the
 * port the scheme implies when none is written), without user name,
 * password, path, query or fragment: the only part of a notifier's URL that
 * may be shown (webhook URLs carry tokens).  Returns 0, or -1 when url is
 * not such a URL (out then holds "invalid").
 */
int url_origin(const char *url, char *out, size_t len);

/*
 * A Redis command as the RESP array of bulk strings the server reads
 * ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), the bytes hiredis's
 * redisFormatCommandArgv() writes, without its printf-style formatting.
 * Each argv[i] is a NUL-terminated string. Returns the length written
 * (buf is NUL-terminated too), or -1 when it does not fit in size bytes.
 */
long resp_format(char *buf, size_t size, int argc, const char *const *argv);

#endif /* HEALTHD_TEXTUTIL_H */
