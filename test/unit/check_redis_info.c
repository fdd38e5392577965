/*
 * Unit tests for redis_info: INFO and CLIENT LIST parsing.
 *
 * The fixtures in test/unit/data/ are raw reply bodies captured from a real
 * redis-server 7.0.15 (see data/README). Inputs are copied into exact-size
 * heap buffers without a NUL, so ASan catches any read past len.
 */
#include <check.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_info.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define S(lit) lit, sizeof(lit) - 1

/* Read a fixture into an exact-size heap buffer (no NUL); abort on error. */
static char *load_fixture(const char *name, size_t *len)
{
        const char *dir = getenv("HEALTHD_TEST_DATA");
        char path[512];
        FILE *f;
        char *buf;
        long size;

        snprintf(path, sizeof(path), "%s/%s", dir ? dir : "test/unit/data", name);
        f = fopen(path, "rb");
        ck_assert_msg(f != NULL, "cannot open %s (run from the repo root or set HEALTHD_TEST_DATA)",
                      path);
        ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
        size = ftell(f);
        ck_assert_int_gt(size, 0);
        rewind(f);
        buf = malloc((size_t)size);
        ck_assert_ptr_nonnull(buf);
        ck_assert_uint_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
        fclose(f);
        *len = (size_t)size;
        return buf;
}

/* An exact-size heap copy of len bytes, so over-reads are caught. */
static char *dup_exact(const char *s, size_t len)
{
        char *p = malloc(len ? len : 1);

        ck_assert_ptr_nonnull(p);
        if (len)
                memcpy(p, s, len);
        return p;
}

static int parse_exact(const char *s, size_t len, struct redis_info *out)
{
        char *p = dup_exact(s, len);
        int rc = redis_info_parse(p, len, out);

        free(p);
        return rc;
}

static int blocked_exact(const char *s, size_t len, int db)
{
        char *p = dup_exact(s, len);
        int rc = redis_blocked_on_db(p, len, db);

        free(p);
        return rc;
}

/* The values in data/redis7_info.txt. */
static void check_fixture_values(const struct redis_info *ri)
{
        int db;

        ck_assert_str_eq(ri->role, "master");
        ck_assert_str_eq(ri->run_id, "975ae57b52bb5ce971e348de6e193adb998fa114");
        ck_assert_str_eq(ri->redis_version, "7.0.15");
        ck_assert_str_eq(ri->maxmemory_policy, "noeviction");
        ck_assert_int_eq(ri->uptime_in_seconds, 6);
        ck_assert_int_eq(ri->used_memory, 1094280);
        ck_assert_int_eq(ri->maxmemory, 0);
        ck_assert_int_eq(ri->connected_clients, 4);
        ck_assert_int_eq(ri->maxclients, 10000);
        ck_assert_int_eq(ri->blocked_clients, 3);
        ck_assert_int_eq(ri->evicted_keys, 0);
        ck_assert_int_eq(ri->loading, 0);
        ck_assert_int_eq(ri->rdb_last_bgsave_status_ok, 1);
        ck_assert_int_eq(ri->aof_enabled, 0);
        ck_assert_int_eq(ri->aof_last_write_status_ok, 1);
        ck_assert_int_eq(ri->keyspace_seen, 1);
        ck_assert_int_eq(ri->db_keys[0], 2);
        ck_assert_int_eq(ri->db_keys[1], 1);
        ck_assert_int_eq(ri->db_keys[2], 1);
        for (db = 3; db < REDIS_INFO_MAX_DB; db++)
                ck_assert_int_eq(ri->db_keys[db], 0);
}

START_TEST(t_info_fixture)
{
        struct redis_info ri;
        size_t len;
        char *buf = load_fixture("redis7_info.txt", &len);

        ck_assert_int_eq(redis_info_parse(buf, len, &ri), 0);
        check_fixture_values(&ri);
        free(buf);
}
END_TEST

/* The same reply with bare "\n" line ends parses the same. */
START_TEST(t_info_fixture_lf)
{
        struct redis_info ri;
        size_t len, i, o = 0;
        char *buf = load_fixture("redis7_info.txt", &len);
        char *lf = malloc(len);

        ck_assert_ptr_nonnull(lf);
        for (i = 0; i < len; i++) {
                if (buf[i] != '\r')
                        lf[o++] = buf[i];
        }
        ck_assert_int_eq(redis_info_parse(lf, o, &ri), 0);
        check_fixture_values(&ri);
        free(lf);
        free(buf);
}
END_TEST

/*
 * Every prefix of the real reply (as if the reply were cut short): no
 * out-of-bounds read, and once the redis_version line is complete the
 * result is 0 with that version.
 */
START_TEST(t_info_fixture_prefixes)
{
        struct redis_info ri;
        size_t len, cut, need;
        char *buf = load_fixture("redis7_info.txt", &len);
        const char *v = memmem(buf, len, "redis_version:7.0.15\r\n", 22);

        ck_assert_ptr_nonnull(v);
        need = (size_t)(v - buf) + 22;
        for (cut = 0; cut <= len; cut++) {
                int rc = parse_exact(buf, cut, &ri);

                if (cut >= need) {
                        ck_assert_int_eq(rc, 0);
                        ck_assert_str_eq(ri.redis_version, "7.0.15");
                }
                if (cut == 0)
                        ck_assert_int_eq(rc, -1);
        }
        free(buf);
}
END_TEST

/* Hand-made INFO edge cases; each row checks a few representative fields. */
static const struct {
        const char *in;
        size_t len;
        int rc;
        long long used_memory;
        long long maxclients;
        int loading;
        int bgsave_ok;
        const char *role;
        long long db2;
        int keyspace_seen;
} info_cases[] = {
    /* Not INFO at all. */
    {S(""), -1, -1, -1, -1, -1, "", 0, 0},
    {S("-NOAUTH Authentication required."), -1, -1, -1, -1, -1, "", 0, 0},
    {S("-ERR unknown command 'INFO'\r\n"), -1, -1, -1, -1, -1, "", 0, 0},
    {S("hello world\r\n"), -1, -1, -1, -1, -1, "", 0, 0},
    {S("\r\n\r\n\n\n"), -1, -1, -1, -1, -1, "", 0, 0},
    {S("\x00\xff\xfe\x80:\x01\r\n\x02:\x03"), -1, -1, -1, -1, -1, "", 0, 0},
    {S("# Server\r\n# Clients\r\n"), -1, -1, -1, -1, -1, "", 0, 0},
    {S("used_memory\0:5\r\n"), -1, -1, -1, -1, -1, "", 0, 0},
    {S("USED_MEMORY:5\r\n"), -1, -1, -1, -1, -1, "", 0, 0}, /* names are case-sensitive */
    {S("dbx:keys=1\r\n"), -1, -1, -1, -1, -1, "", 0, 0},
    {S("db-1:keys=1\r\n"), -1, -1, -1, -1, -1, "", 0, 0},
    {S("db:keys=1\r\n"), -1, -1, -1, -1, -1, "", 0, 0},
    {S("db99999999999999999999:keys=1\r\n"), -1, -1, -1, -1, -1, "", 0, 0},
    /* Numbers: strict, non-negative, in range. */
    {S("used_memory:123\r\n"), 0, 123, -1, -1, -1, "", 0, 0},
    {S("used_memory:123"), 0, 123, -1, -1, -1, "", 0, 0}, /* no final newline */
    {S("used_memory:123\n"), 0, 123, -1, -1, -1, "", 0, 0},
    {S("used_memory:9223372036854775807\r\n"), 0, LLONG_MAX, -1, -1, -1, "", 0, 0},
    {S("used_memory:9223372036854775808\r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    {S("used_memory:99999999999999999999999999\r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    {S("used_memory:abc\r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    {S("used_memory:12a\r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    {S("used_memory: 12\r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    {S("used_memory:12 \r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    {S("used_memory:\r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    {S("used_memory:-5\r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    {S("used_memory:+5\r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    {S("used_memory:1.5\r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    {S("used_memory:5\r\r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    {S("used_memory:5\0\r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    {S("used_memory:5:6\r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    {S("maxclients:18446744073709551616\r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    {S("used_memory:1\r\nused_memory:2\r\n"), 0, 2, -1, -1, -1, "", 0, 0},
    /* maxclients is absent before Redis 7. */
    {S("redis_version:6.2.14\r\nconnected_clients:3\r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    {S("maxclients:10000\r\n"), 0, -1, 10000, -1, -1, "", 0, 0},
    /* 0/1 flags and ok/err statuses. */
    {S("loading:1\r\n"), 0, -1, -1, 1, -1, "", 0, 0},
    {S("loading:2\r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    {S("loading:yes\r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    {S("rdb_last_bgsave_status:err\r\n"), 0, -1, -1, -1, 0, "", 0, 0},
    {S("rdb_last_bgsave_status:ok\r\n"), 0, -1, -1, -1, 1, "", 0, 0},
    {S("rdb_last_bgsave_status:OK\r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    /* Strings: bounded, printable ASCII, last one wins. */
    {S("role:slave\r\n"), 0, -1, -1, -1, -1, "slave", 0, 0},
    {S("role:master\r\nrole:slave\r\n"), 0, -1, -1, -1, -1, "slave", 0, 0},
    {S("role:123456789012345\r\n"), 0, -1, -1, -1, -1, "123456789012345", 0, 0},
    {S("role:1234567890123456\r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    {S("role:mas\x01ter\r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    {S("role:ma\xc3\xa9\r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    {S("role:\r\n"), 0, -1, -1, -1, -1, "", 0, 0},
    /* Keyspace. */
    {S("# Keyspace\r\n"), 0, -1, -1, -1, -1, "", 0, 1},
    {S("# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\n"), 0, -1, -1, -1, -1, "", 0, 1},
    {S("db2:keys=5,expires=0,avg_ttl=0\r\n"), 0, -1, -1, -1, -1, "", 5, 1},
    {S("db2:expires=0,keys=5\r\n"), 0, -1, -1, -1, -1, "", 5, 1},
    {S("db2:keys=x,expires=0\r\n"), 0, -1, -1, -1, -1, "", -1, 1},
    {S("db2:keys=-3,expires=0\r\n"), 0, -1, -1, -1, -1, "", -1, 1},
    {S("db2:keys=,expires=0\r\n"), 0, -1, -1, -1, -1, "", -1, 1},
    {S("db2:expires=0\r\n"), 0, -1, -1, -1, -1, "", -1, 1},
    {S("db2:\r\n"), 0, -1, -1, -1, -1, "", -1, 1},
    {S("db2:keys=99999999999999999999\r\n"), 0, -1, -1, -1, -1, "", -1, 1},
    {S("db2:keys=5\r\ndb2:keys=6\r\n"), 0, -1, -1, -1, -1, "", 6, 1},
    {S("db16:keys=5\r\ndb999:keys=1\r\n"), 0, -1, -1, -1, -1, "", 0, 1},
};

START_TEST(t_info_table)
{
        struct redis_info ri;
        int rc = parse_exact(info_cases[_i].in, info_cases[_i].len, &ri);

        ck_assert_msg(rc == info_cases[_i].rc, "case %d: rc %d", _i, rc);
        ck_assert_int_eq(ri.used_memory, info_cases[_i].used_memory);
        ck_assert_int_eq(ri.maxclients, info_cases[_i].maxclients);
        ck_assert_int_eq(ri.loading, info_cases[_i].loading);
        ck_assert_int_eq(ri.rdb_last_bgsave_status_ok, info_cases[_i].bgsave_ok);
        ck_assert_str_eq(ri.role, info_cases[_i].role);
        ck_assert_int_eq(ri.db_keys[2], info_cases[_i].db2);
        ck_assert_int_eq(ri.keyspace_seen, info_cases[_i].keyspace_seen);
        /* Fields no case sets keep their "absent" values. */
        ck_assert_int_eq(ri.evicted_keys, -1);
        ck_assert_int_eq(ri.aof_enabled, -1);
        ck_assert_str_eq(ri.maxmemory_policy, "");
}
END_TEST

START_TEST(t_info_null)
{
        struct redis_info ri;

        memset(&ri, 0x55, sizeof(ri));
        ck_assert_int_eq(redis_info_parse(NULL, 0, &ri), -1);
        ck_assert_int_eq(ri.used_memory, -1); /* reset even on failure */
        ck_assert_str_eq(ri.role, "");
        ck_assert_int_eq(redis_info_parse(NULL, 10, &ri), -1);
        ck_assert_int_eq(redis_info_parse("used_memory:1", 13, NULL), -1);
}
END_TEST

/*
 * The fields the mutation test watches, and the lines it never touches:
 * every line that starts with one of these names (used_memory_rss and the
 * like too), and the line end before it.
 */
static const char *const watched[] = {"redis_version", "run_id",      "connected_clients",
                                      "maxclients",    "used_memory", "role",
                                      "db0",           "db1",         "db2"};

static void protect_watched(const char *buf, size_t len, char *prot)
{
        size_t start = 0, i, k;

        memset(prot, 0, len);
        while (start < len) {
                const char *nl = memchr(buf + start, '\n', len - start);
                size_t end = nl != NULL ? (size_t)(nl - buf) : len - 1;

                for (k = 0; k < sizeof(watched) / sizeof(watched[0]); k++) {
                        size_t n = strlen(watched[k]);

                        if (len - start >= n && memcmp(buf + start, watched[k], n) == 0) {
                                for (i = start > 0 ? start - 1 : 0; i <= end; i++)
                                        prot[i] = 1;
                        }
                }
                start = end + 1;
        }
}

/*
 * Mutated fixtures and random bytes: no crash or over-read, and exact
 * results. A fixture mutated outside the watched lines still gives every
 * watched value exactly (a parser that lets a broken line spill into the
 * next one, or that stops at the first odd byte, fails here). Random bytes
 * over an alphabet that cannot spell any known field name give no field at
 * all: only "dbN:" lines can form, and those without a keys= value.
 */
START_TEST(t_info_random)
{
        static const char alphabet[] = "\r\n:#=,-0123456789abdeky \x00\xff";
        uint32_t x = 88172645u;
        size_t flen, k;
        char *fix = load_fixture("redis7_info.txt", &flen);
        char *prot = malloc(flen);
        int iter;

        ck_assert_ptr_nonnull(prot);
        protect_watched(fix, flen, prot);
        /* Each watched "name:" occurs once, at its own line's start: no other
         * line can turn into it by a mutation that leaves that line alone. */
        for (k = 0; k < sizeof(watched) / sizeof(watched[0]); k++) {
                char key[32];
                size_t n = (size_t)snprintf(key, sizeof(key), "%s:", watched[k]);
                const char *hit = memmem(fix, flen, key, n);

                ck_assert_ptr_nonnull(hit);
                ck_assert(hit == fix || hit[-1] == '\n');
                ck_assert_ptr_null(memmem(hit + 1, flen - (size_t)(hit + 1 - fix), key, n));
        }
        for (iter = 0; iter < 3000; iter++) {
                struct redis_info ri;
                size_t len, nmut, pos;
                char *buf;
                int rc;
                bool mutated = iter & 1;

                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                len = mutated ? flen : x % 256;
                buf = malloc(len ? len : 1);
                ck_assert_ptr_nonnull(buf);
                if (mutated)
                        memcpy(buf, fix, len);
                nmut = mutated ? 1 + x % 16 : len;
                for (k = 0; k < nmut && len > 0; k++) {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        pos = mutated ? (x >> 4) % len : k;
                        if (mutated && prot[pos])
                                continue;
                        buf[pos] = alphabet[(x >> 20) % (sizeof(alphabet) - 1)];
                }
                rc = redis_info_parse(buf, len, &ri);
                if (mutated) {
                        ck_assert_int_eq(rc, 0);
                        ck_assert_str_eq(ri.redis_version, "7.0.15");
                        ck_assert_str_eq(ri.run_id, "975ae57b52bb5ce971e348de6e193adb998fa114");
                        ck_assert_str_eq(ri.role, "master");
                        ck_assert_int_eq(ri.connected_clients, 4);
                        ck_assert_int_eq(ri.maxclients, 10000);
                        ck_assert_int_eq(ri.used_memory, 1094280);
                        ck_assert_int_eq(ri.db_keys[0], 2);
                        ck_assert_int_eq(ri.db_keys[1], 1);
                        ck_assert_int_eq(ri.db_keys[2], 1);
                        ck_assert_int_eq(ri.keyspace_seen, 1);
                } else {
                        bool bad_db = false;

                        ck_assert_int_eq(rc, ri.keyspace_seen ? 0 : -1);
                        ck_assert_str_eq(ri.role, "");
                        ck_assert_str_eq(ri.run_id, "");
                        ck_assert_str_eq(ri.redis_version, "");
                        ck_assert_str_eq(ri.maxmemory_policy, "");
                        ck_assert_int_eq(ri.used_memory, -1);
                        ck_assert_int_eq(ri.maxclients, -1);
                        ck_assert_int_eq(ri.connected_clients, -1);
                        ck_assert_int_eq(ri.evicted_keys, -1);
                        ck_assert_int_eq(ri.loading, -1);
                        for (k = 0; k < REDIS_INFO_MAX_DB; k++) {
                                ck_assert(ri.db_keys[k] == 0 || ri.db_keys[k] == -1);
                                bad_db |= ri.db_keys[k] == -1;
                        }
                        if (bad_db)
                                ck_assert_int_eq(ri.keyspace_seen, 1);
                }
                (void)!redis_blocked_on_db(buf, len, 2);
                free(buf);
        }
        free(prot);
        free(fix);
}
END_TEST

/* ---- CLIENT LIST --------------------------------------------------------- */

/*
 * data/redis7_client_list.txt: BLPOP and BRPOP (celery) blocked on db 2, a
 * BRPOP blocked on db 0, and the capturing connection (CLIENT LIST) on db 2.
 */
START_TEST(t_clients_fixture)
{
        size_t len;
        char *buf = load_fixture("redis7_client_list.txt", &len);

        ck_assert_int_eq(redis_blocked_on_db(buf, len, 2), 2);
        ck_assert_int_eq(redis_blocked_on_db(buf, len, 0), 1);
        ck_assert_int_eq(redis_blocked_on_db(buf, len, 1), 0);
        ck_assert_int_eq(redis_blocked_on_db(buf, len, 15), 0);
        free(buf);
}
END_TEST

/*
 * Every prefix of the real reply, never an over-read: cut at a line end, the
 * count is exactly that of the whole lines (the fixture's lines are blocked
 * on db 2, blocked on db 2, blocked on db 0, and the capturing CLIENT LIST
 * on db 2); cut inside a line, that line is either refused (-1) or counted
 * as far as it goes, so the count grows by one only when the part before
 * the cut already holds "flags=b" and a whole "db=2".
 */
START_TEST(t_clients_fixture_prefixes)
{
        static const int blocked_on_2[] = {1, 1, 0, 0};
        size_t len, cut, line_start = 0;
        char *buf = load_fixture("redis7_client_list.txt", &len);
        int whole = 0; /* blocked on db 2 among the whole lines so far */
        int line = 0;

        for (cut = 0; cut <= len; cut++) {
                int rc = blocked_exact(buf, cut, 2);
                const char *part = buf + line_start;
                size_t plen = cut - line_start;

                if (plen == 0) {
                        ck_assert_msg(rc == whole, "cut %zu: %d, want %d", cut, rc, whole);
                } else {
                        const char *db = memmem(part, plen, " db=2", 5);
                        bool counts = memmem(part, plen, "flags=b", 7) != NULL && db != NULL &&
                                      (db + 5 == part + plen || db[5] == ' ');

                        ck_assert_msg(rc == -1 || rc == whole || (counts && rc == whole + 1),
                                      "cut %zu: %d with %d whole", cut, rc, whole);
                }
                if (cut < len && buf[cut] == '\n') {
                        ck_assert_int_lt(line, N(blocked_on_2));
                        whole += blocked_on_2[line++];
                        line_start = cut + 1;
                }
        }
        ck_assert_int_eq(line, N(blocked_on_2));
        ck_assert_int_eq(whole, 2);
        free(buf);
}
END_TEST

static const struct {
        const char *in;
        size_t len;
        int db;
        int want;
} client_cases[] = {
    {S(""), 2, 0},
    {S("\n\r\n"), 2, 0},
    /* Blocked by flags, by command, or both; other dbs and commands not. */
    {S("id=1 addr=127.0.0.1:1 flags=b db=2 cmd=brpop\n"), 2, 1},
    {S("id=1 flags=N db=2 cmd=brpop\n"), 2, 1},
    {S("id=1 flags=b db=2 cmd=xread\n"), 2, 1},
    {S("id=1 flags=N db=2 cmd=get\n"), 2, 0},
    {S("id=1 flags=B db=2 cmd=get\n"), 2, 0}, /* B is broadcast tracking */
    {S("id=1 flags=b db=3 cmd=brpop\n"), 2, 0},
    {S("id=1 flags=b db=22 cmd=brpop\n"), 2, 0},
    {S("id=1 flags=N db=2 cmd=BRPOP\n"), 2, 1},
    {S("id=1 flags=N db=2 cmd=brpopx\n"), 2, 0},
    {S("id=1 flags=N db=2 cmd=brpo\n"), 2, 0},
    {S("id=1 flags=N db=2 cmd=bzmpop\r\n"), 2, 1},
    {S("id=1 flags=N db=2 cmd=brpop"), 2, 1}, /* no final newline */
    {S("id=1 db=2 cmd=blmove flags=N\nid=2 db=2 cmd=brpoplpush flags=N\n"
       "id=3 db=2 cmd=bzpopmin flags=N\nid=4 db=2 cmd=bzpopmax flags=N\n"
       "id=5 db=2 cmd=blmpop flags=N\nid=6 db=2 cmd=blpop flags=N\n"
       "id=7 db=2 cmd=client|list flags=N\n"),
     2, 6},
    {S("id=1 flags=b db=2 cmd=brpop\n\nid=2 flags=b db=2 cmd=brpop\n"), 2, 2},
    {S("id=1  flags=b db=2 cmd=brpop \n"), 2, 1}, /* doubled and trailing blanks */
    {S("id=1 name= flags=b db=2 cmd=brpop\n"), 2, 1},
    {S("id=1 flags=b db=0 cmd=brpop\n"), 0, 1},
    /* Not a client list. */
    {S("ERR unknown command\n"), 2, -1},
    {S("-NOAUTH Authentication required."), 2, -1},
    {S("id=1 flags=b cmd=brpop\n"), 2, -1}, /* no db= */
    {S("id=1 flags=b db=x cmd=brpop\n"), 2, -1},
    {S("id=1 flags=b db= cmd=brpop\n"), 2, -1},
    {S("id=1 flags=b db=-2 cmd=brpop\n"), 2, -1},
    {S("id=1 flags=b db=99999999999999999999 cmd=brpop\n"), 2, -1},
    {S("id=1 =x db=2 cmd=brpop\n"), 2, -1},
    {S("id=1 flags=b db=2 cmd=brpop\ngarbage\n"), 2, -1},
    {S("\x00\xff\xfe"), 2, -1},
    {S("id=1 flags=b db=2\0 cmd=brpop\n"), 2, -1},
    /* Invalid db argument. */
    {S("id=1 flags=b db=2 cmd=brpop\n"), -1, -1},
};

START_TEST(t_clients_table)
{
        int got = blocked_exact(client_cases[_i].in, client_cases[_i].len, client_cases[_i].db);

        ck_assert_msg(got == client_cases[_i].want, "case %d: got %d want %d", _i, got,
                      client_cases[_i].want);
}
END_TEST

START_TEST(t_clients_null)
{
        ck_assert_int_eq(redis_blocked_on_db(NULL, 0, 2), 0);
        ck_assert_int_eq(redis_blocked_on_db(NULL, 5, 2), -1);
}
END_TEST

static Suite *redis_info_suite(void)
{
        Suite *s = suite_create("redis_info");
        TCase *info = tcase_create("info");
        TCase *clients = tcase_create("client_list");

        tcase_add_test(info, t_info_fixture);
        tcase_add_test(info, t_info_fixture_lf);
        tcase_add_test(info, t_info_fixture_prefixes);
        tcase_add_loop_test(info, t_info_table, 0, N(info_cases));
        tcase_add_test(info, t_info_null);
        tcase_add_test(info, t_info_random);
        suite_add_tcase(s, info);

        tcase_add_test(clients, t_clients_fixture);
        tcase_add_test(clients, t_clients_fixture_prefixes);
        tcase_add_loop_test(clients, t_clients_table, 0, N(client_cases));
        tcase_add_test(clients, t_clients_null);
        suite_add_tcase(s, clients);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(redis_info_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
