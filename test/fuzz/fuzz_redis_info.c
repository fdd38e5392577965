/*
 * fuzz_redis_info: redis_info_parse() and redis_blocked_on_db() over
 * arbitrary bytes (the body of an INFO or CLIENT LIST reply).
 *
 * Input: the raw reply body, exactly as hiredis hands it over (no NUL
 * needed; libFuzzer's buffer is exactly `size` bytes, so ASan sees any read
 * past the end). Seeds: test/fuzz/corpus/redis_info/.
 *
 * Beyond memory safety, checks redis_info.h's contract: *out is fully reset
 * first (a second parse into a dirtied struct gives the same bytes), strings
 * are NUL-terminated printable ASCII, numbers are -1 or non-negative, and a
 * -1 return leaves the reset state.
 */
#include "redis_info.h"

#include "fuzz_util.h"

#include <limits.h>

static bool printable_field(const char *f, size_t size)
{
        const char *nul = memchr(f, '\0', size);

        if (nul == NULL)
                return false;
        for (const char *p = f; p < nul; p++)
                if (*p < 0x20 || *p > 0x7e)
                        return false;
        return true;
}

static void check_info(const struct redis_info *in)
{
        FUZZ_CHECK(printable_field(in->role, sizeof(in->role)), "role");
        FUZZ_CHECK(printable_field(in->run_id, sizeof(in->run_id)), "run_id");
        FUZZ_CHECK(printable_field(in->redis_version, sizeof(in->redis_version)), "version");
        FUZZ_CHECK(printable_field(in->maxmemory_policy, sizeof(in->maxmemory_policy)), "policy");
        const long long nums[] = {in->uptime_in_seconds, in->used_memory, in->maxmemory,
                                  in->connected_clients, in->maxclients,  in->blocked_clients,
                                  in->evicted_keys};
        for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
                FUZZ_CHECK(nums[i] >= -1, "number %zu is %lld", i, nums[i]);
        const int flags[] = {in->loading, in->rdb_last_bgsave_status_ok, in->aof_enabled,
                             in->aof_last_write_status_ok};
        for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
                FUZZ_CHECK(flags[i] >= -1 && flags[i] <= 1, "flag %zu is %d", i, flags[i]);
        FUZZ_CHECK(in->keyspace_seen == 0 || in->keyspace_seen == 1, "keyspace_seen %d",
                   in->keyspace_seen);
        for (int i = 0; i < REDIS_INFO_MAX_DB; i++)
                FUZZ_CHECK(in->db_keys[i] >= -1, "db_keys[%d] is %lld", i, in->db_keys[i]);
}

/* Lines in buf: an upper bound for any count of clients. */
static long count_lines(const char *buf, size_t len)
{
        long n = len > 0;

        for (size_t i = 0; i < len; i++)
                if (buf[i] == '\n' && i + 1 < len)
                        n++;
        return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const char *buf = (const char *)data;
        struct redis_info a, b, empty;

        int ra = redis_info_parse(buf, size, &a);
        FUZZ_CHECK(ra == 0 || ra == -1, "redis_info_parse returned %d", ra);
        check_info(&a);

        /* "*out is always fully reset first": the result cannot depend on
         * what was in *out before. */
        memset(&b, 0xa5, sizeof(b));
        int rb = redis_info_parse(buf, size, &b);
        FUZZ_CHECK(ra == rb && memcmp(&a, &b, sizeof(a)) == 0,
                   "a second parse into a dirtied struct differs (%d vs %d)", ra, rb);

        /* -1 means nothing was recognised, so *out holds only the reset. */
        memset(&empty, 0x5a, sizeof(empty));
        FUZZ_CHECK(redis_info_parse(NULL, 0, &empty) == -1, "NULL buffer accepted");
        if (ra == -1)
                FUZZ_CHECK(memcmp(&a, &empty, sizeof(a)) == 0,
                           "-1 returned but fields were stored");
        FUZZ_CHECK(redis_info_parse(buf, size, NULL) == -1, "NULL out accepted");

        const int dbs[] = {0, 1, 2, 15, 16, INT_MAX};
        long lines = count_lines(buf, size);
        int any_db = -2;
        for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
                int c = redis_blocked_on_db(buf, size, dbs[i]);
                FUZZ_CHECK(c >= -1 && c <= lines, "db %d: count %d with %ld lines", dbs[i], c,
                           lines);
                /* Whether the reply is well-formed does not depend on db. */
                if (any_db != -2)
                        FUZZ_CHECK((c == -1) == (any_db == -1), "db %d: %d but db 0 gave %d",
                                   dbs[i], c, any_db);
                else
                        any_db = c;
        }
        FUZZ_CHECK(redis_blocked_on_db(buf, size, -1) == -1, "db -1 accepted");
        FUZZ_CHECK(redis_blocked_on_db(NULL, 0, 0) == 0, "empty input does not count 0");
        return 0;
}
