/*
 * redis_info.h: parse the text of Redis `INFO` and `CLIENT LIST` replies.
 *
 * Pure functions over (buf, len): no hiredis, no allocation, no NUL needed
 * in buf. The Redis probe hands over reply->str / reply->len; the fuzzers
 * and unit tests hand over anything.
 */
#ifndef HEALTHD_REDIS_INFO_H
#define HEALTHD_REDIS_INFO_H

#include <stddef.h>

#ifndef HEALTHD_MUSTCHECK
#define HEALTHD_MUSTCHECK __attribute__((warn_unused_result))
#endif

/* Databases whose key counts are kept (Redis' default `databases 16`). */
#define REDIS_INFO_MAX_DB 16

/*
 * The server-wide facts read from one full `INFO`.
 * Strings are "" when absent, too long for their field, or not printable
 * ASCII. Numbers are -1 when absent or not a strict, non-negative base-10
 * integer that fits in their type (no blanks, signs or junk).
 */
struct redis_info {
        char role[16];             /* "master" or "slave" */
        char run_id[48];           /* 40 hex digits; changes on restart */
        char redis_version[32];    /* "7.0.15" */
        char maxmemory_policy[32]; /* "noeviction", "allkeys-lru", ... */
        long long uptime_in_seconds;
        long long used_memory; /* bytes */
        long long maxmemory;   /* bytes; 0 = no limit */
        long long connected_clients;
        long long maxclients; /* in "# Clients" since Redis 7; -1 before */
        long long blocked_clients;
        long long evicted_keys;
        int loading;                   /* 0/1 */
        int rdb_last_bgsave_status_ok; /* 1 "ok", 0 "err" */
        int aof_enabled;               /* 0/1 */
        int aof_last_write_status_ok;  /* 1 "ok", 0 "err" */
        /* 1 when a "# Keyspace" header or any dbN line was seen, else 0. */
        int keyspace_seen;
        /*
         * Keys per database from "dbN:keys=K,expires=E,avg_ttl=T". Redis
         * omits empty databases, so a missing line means 0; -1 means the
         * line was there but its keys= value was garbage. Databases at
         * index REDIS_INFO_MAX_DB and above are ignored.
         */
        long long db_keys[REDIS_INFO_MAX_DB];
};

/*
 * Parse the reply of `INFO` (or `INFO <sections>`): "\r\n" (or "\n")
 * separated lines, "# Section" headers, "key:value" fields. Unknown keys and
 * malformed lines are ignored; the last line need not end in a newline.
 * *out is always fully reset first (when out is not NULL).
 * Returns 0 when at least one known field name (or the "# Keyspace" header,
 * all that an empty server's `INFO keyspace` holds) was found, -1 when buf
 * does not look like INFO output at all (empty, an error reply, garbage) or
 * out is NULL. buf may be NULL when len is 0.
 */
HEALTHD_MUSTCHECK int redis_info_parse(const char *buf, size_t len, struct redis_info *out);

/*
 * Count the clients in a `CLIENT LIST` reply (one client per line of
 * space-separated key=value fields) that sit on database db and are
 * blocked: flags contain 'b', or cmd is one of the blocking list/zset pops
 * (brpop, blpop, blmove, brpoplpush, bzpopmin, bzpopmax, blmpop, bzmpop),
 * compared without regard to ASCII case. Celery workers wait in BRPOP.
 * Returns the count (>= 0), or -1 when db < 0, buf is NULL with len > 0, or
 * a non-empty line is not a client line (a field without '=' or an empty
 * key, or no valid db= field). Empty input counts 0.
 */
HEALTHD_MUSTCHECK int redis_blocked_on_db(const char *buf, size_t len, int db);

#endif /* HEALTHD_REDIS_INFO_H */
