/*
 * redis_info.c: INFO and CLIENT LIST parsing (see redis_info.h).
 *
 * Both replies are walked in place as (pointer, length) slices; nothing is
 * copied except the few short strings kept in struct redis_info. Known INFO
 * fields are described by one table, so adding a field is one line.
 */
#include "redis_info.h"
#include "textutil.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* A slice of the input buffer; never NUL-terminated. */
struct span {
        const char *p;
        size_t n;
};

static bool span_eq_n(struct span s, const char *lit, size_t n)
{
        return s.n == n && memcmp(s.p, lit, n) == 0;
}

/* lit must be a string literal: its length is known at compile time. */
#define span_eq(s, lit) span_eq_n((s), "" lit "", sizeof(lit) - 1)

/*
 * Strict base-10 integer: optional '-', at least one digit, nothing else,
 * within long long. Returns 0 or -1.
 */
static int span_to_ll(struct span s, long long *out)
{
        unsigned long long limit = LLONG_MAX, v = 0;
        bool neg = false;
        size_t i = 0;

        if (s.n > 0 && s.p[0] == '-') {
                neg = true;
                limit = (unsigned long long)LLONG_MAX + 1;
                i = 1;
        }
        if (i == s.n)
                return -1;
        for (; i < s.n; i++) {
                unsigned d;

                if (s.p[i] < '0' || s.p[i] > '9')
                        return -1;
                d = (unsigned)(s.p[i] - '0');
                if (v > (limit - d) / 10)
                        return -1;
                v = v * 10 + d;
        }
        if (neg)
                *out = (v == (unsigned long long)LLONG_MAX + 1) ? LLONG_MIN : -(long long)v;
        else
                *out = (long long)v;
        return 0;
}

/* Split the next line off *rest, dropping "\n" and a "\r" before it. */
static struct span next_line(struct span *rest)
{
        const char *nl = memchr(rest->p, '\n', rest->n);
        struct span line = {rest->p, nl ? (size_t)(nl - rest->p) : rest->n};

        rest->p += nl ? line.n + 1 : line.n;
        rest->n -= nl ? line.n + 1 : line.n;
        if (line.n > 0 && line.p[line.n - 1] == '\r')
                line.n--;
        return line;
}

/* Split the next sep-delimited token off *rest. */
static struct span next_token(struct span *rest, char sep)
{
        const char *d = memchr(rest->p, sep, rest->n);
        struct span tok = {rest->p, d ? (size_t)(d - rest->p) : rest->n};

        rest->p += d ? tok.n + 1 : tok.n;
        rest->n -= d ? tok.n + 1 : tok.n;
        return tok;
}

enum field_kind {
        F_STR,    /* printable ASCII into a char[] */
        F_LL,     /* long long */
        F_FLAG,   /* int: "0" or "1" */
        F_STATUS, /* int: "ok" -> 1, "err" -> 0 */
};

struct field {
        const char *name;
        size_t len; /* strlen(name): an INFO reply is some 150 lines, each
                       compared with every field */
        enum field_kind kind;
        size_t off;
        size_t size; /* F_STR only */
};

/* Table rows: the field's name in INFO is the member's name. */
// clang-format off
#define FSTR(n)  {#n, sizeof(#n) - 1, F_STR, offsetof(struct redis_info, n), sizeof(((struct redis_info *)0)->n)}
#define FLL(n)   {#n, sizeof(#n) - 1, F_LL, offsetof(struct redis_info, n), 0}
#define FFLAG(n) {#n, sizeof(#n) - 1, F_FLAG, offsetof(struct redis_info, n), 0}
#define FSTATUS(name, member) {name, sizeof(name) - 1, F_STATUS, offsetof(struct redis_info, member), 0}
// clang-format on

static const struct field info_fields[] = {
    FSTR(role),
    FSTR(run_id),
    FSTR(redis_version),
    FSTR(maxmemory_policy),
    FLL(uptime_in_seconds),
    FLL(used_memory),
    FLL(maxmemory),
    FLL(connected_clients),
    FLL(maxclients),
    FLL(blocked_clients),
    FLL(evicted_keys),
    FFLAG(loading),
    FFLAG(aof_enabled),
    FSTATUS("rdb_last_bgsave_status", rdb_last_bgsave_status_ok),
    FSTATUS("aof_last_write_status", aof_last_write_status_ok),
};

#define NFIELDS (sizeof(info_fields) / sizeof(info_fields[0]))

static void store_field(struct redis_info *out, const struct field *f, struct span v)
{
        char *base = (char *)out + f->off;
        long long ll;
        size_t i;

        switch (f->kind) {
        case F_STR:
                base[0] = '\0';
                if (v.n >= f->size)
                        return;
                for (i = 0; i < v.n; i++) {
                        if (v.p[i] < 0x20 || v.p[i] > 0x7e)
                                return;
                }
                memcpy(base, v.p, v.n);
                base[v.n] = '\0';
                return;
        case F_LL:
                /* Every counter kept is non-negative, and -1 must stay "absent". */
                *(long long *)(void *)base = (span_to_ll(v, &ll) == 0 && ll >= 0) ? ll : -1;
                return;
        case F_FLAG:
                *(int *)(void *)base = span_eq(v, "0") ? 0 : span_eq(v, "1") ? 1 : -1;
                return;
        case F_STATUS:
                *(int *)(void *)base = span_eq(v, "ok") ? 1 : span_eq(v, "err") ? 0 : -1;
                return;
        }
}

/*
 * A keyspace line: key "dbN", value "keys=K,expires=E,avg_ttl=T". Returns
 * true when key names a database (so the line counts as recognised).
 */
static bool parse_keyspace(struct redis_info *out, struct span key, struct span val)
{
        struct span num;
        long long db, keys = -1;

        if (key.n < 3 || memcmp(key.p, "db", 2) != 0 || key.p[2] == '-')
                return false;
        num.p = key.p + 2;
        num.n = key.n - 2;
        if (span_to_ll(num, &db) != 0)
                return false;
        out->keyspace_seen = 1;
        if (db >= REDIS_INFO_MAX_DB)
                return true;
        while (val.n > 0) {
                struct span kv = next_token(&val, ',');

                if (kv.n > 5 && memcmp(kv.p, "keys=", 5) == 0) {
                        struct span k = {kv.p + 5, kv.n - 5};

                        if (span_to_ll(k, &keys) != 0 || keys < 0)
                                keys = -1;
                        break;
                }
        }
        out->db_keys[db] = keys;
        return true;
}

static void info_reset(struct redis_info *out)
{
        const struct field *f;

        memset(out, 0, sizeof(*out));
        for (f = info_fields; f < info_fields + NFIELDS; f++) {
                char *base = (char *)out + f->off;

                if (f->kind == F_LL)
                        *(long long *)(void *)base = -1;
                else if (f->kind == F_FLAG || f->kind == F_STATUS)
                        *(int *)(void *)base = -1;
        }
}

int redis_info_parse(const char *buf, size_t len, struct redis_info *out)
{
        struct span rest = {buf, len};
        bool known = false; /* a bool: a counter could overflow on huge input */

        if (out == NULL)
                return -1;
        info_reset(out);
        if (buf == NULL)
                return -1;
        while (rest.n > 0) {
                struct span line = next_line(&rest);
                struct span key;
                size_t k;

                if (line.n == 0)
                        continue;
                if (line.p[0] == '#') {
                        /* An empty server's `INFO keyspace` is this header alone. */
                        if (span_eq(line, "# Keyspace")) {
                                out->keyspace_seen = 1;
                                known = true;
                        }
                        continue;
                }
                if (memchr(line.p, ':', line.n) == NULL)
                        continue;
                key = next_token(&line, ':'); /* line is now the value */
                for (k = 0; k < NFIELDS; k++) {
                        const struct field *f = &info_fields[k];
                        if (key.n == f->len && memcmp(key.p, f->name, f->len) == 0) {
                                store_field(out, &info_fields[k], line);
                                known = true;
                                break;
                        }
                }
                if (k == NFIELDS && parse_keyspace(out, key, line))
                        known = true;
        }
        return known ? 0 : -1;
}

/* Commands a queue consumer blocks in (Redis 7 lower-case names). */
static const char *const blocking_cmds[] = {
    "brpop", "blpop", "blmove", "brpoplpush", "bzpopmin", "bzpopmax", "blmpop", "bzmpop",
};

static bool is_blocking_cmd(struct span cmd)
{
        size_t k;

        for (k = 0; k < sizeof(blocking_cmds) / sizeof(blocking_cmds[0]); k++) {
                if (text_ieq(cmd.p, cmd.n, blocking_cmds[k]))
                        return true;
        }
        return false;
}

int redis_blocked_on_db(const char *buf, size_t len, int db)
{
        struct span rest = {buf, len};
        int count = 0;

        if (db < 0 || (buf == NULL && len > 0))
                return -1;
        while (rest.n > 0) {
                struct span line = next_line(&rest);
                bool have_db = false, blocked = false;
                long long line_db = -1;

                if (line.n == 0)
                        continue;
                while (line.n > 0) {
                        struct span tok = next_token(&line, ' ');
                        const char *eq;
                        struct span key, val;

                        if (tok.n == 0)
                                continue; /* tolerate doubled or trailing blanks */
                        eq = memchr(tok.p, '=', tok.n);
                        if (eq == NULL || eq == tok.p)
                                return -1;
                        key.p = tok.p;
                        key.n = (size_t)(eq - tok.p);
                        val.p = eq + 1;
                        val.n = tok.n - key.n - 1;
                        if (span_eq(key, "db")) {
                                if (span_to_ll(val, &line_db) != 0 || line_db < 0)
                                        return -1;
                                have_db = true;
                        } else if (span_eq(key, "flags")) {
                                if (memchr(val.p, 'b', val.n) != NULL)
                                        blocked = true;
                        } else if (span_eq(key, "cmd")) {
                                if (is_blocking_cmd(val))
                                        blocked = true;
                        }
                }
                if (!have_db)
                        return -1;
                if (blocked && line_db == db && count < INT_MAX)
                        count++;
        }
        return count;
}
