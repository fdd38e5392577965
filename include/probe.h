/* The contract between the target engine and the protocol probes.
 *
 * A probe owns one kind's connection(s) to one target and runs one check at
 * a time.  The engine resolves the host, arms the check's deadline, calls
 * start() and waits for exactly one call of probe_done().  On the deadline
 * the engine calls abort(), which closes the connection(s) at once and must
 * not call back.  Between checks a probe watches its persistent connection
 * and calls probe_lost() when the peer closes it. */
#ifndef HEALTHD_PROBE_H
#define HEALTHD_PROBE_H

#include "clock.h"
#include "config.h"
#include "health.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#define REASON_MAX 40
#define OUTPUT_MAX 512
#define MAX_OPS 8
#define MAX_POOLS 16
#define MAX_BYPASS_ADDRS 4

struct op_time {
        char op[12];
        double seconds;
};

struct queue_len {
        char name[QUEUE_NAME_MAX + 1];
        long long length;
};

struct pool_wait {
        char database[64];
        char user[64];
        long waiting;
        double maxwait_s;
};

/* What one check found.  Kind-specific figures are -1 (or empty) when the
 * check did not measure them. */
struct probe_result {
        enum status status; /* ST_PASS, ST_WARN or ST_FAIL */
        char reason[REASON_MAX];
        char output[OUTPUT_MAX];
        char server_id[64]; /* run_id or postmaster start: tells restart from blip */
        int nops;
        struct op_time ops[MAX_OPS];
        /* redis */
        int nqueues;
        struct queue_len queues[MAX_QUEUES];
        long long consumers;
        long long used_memory, maxmemory, connected_clients, maxclients;
        /* postgres */
        long long connections, max_connections, bypass;
        long long usable_connections; /* max_connections minus reserved slots */
        bool in_recovery;
        char server_version[32];
        /* postgres, pgbouncer: the server certificate's notAfter (Unix
         * seconds), 0 when the connection is not over TLS or unknown */
        long long cert_not_after;
        /* pgbouncer */
        int npools;
        struct pool_wait pools[MAX_POOLS];
        long long clients, max_client_conn;
};

void probe_result_init(struct probe_result *r);
/* Sets status, reason and a printf-formatted message (cleaned to UTF-8). */
void probe_result_set(struct probe_result *r, enum status st, const char *reason, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));
/* Lowers r to `st` (warn or fail) unless it is already worse; keeps the
 * first reason of the worst status, appends the message. */
void probe_result_worsen(struct probe_result *r, enum status st, const char *reason,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Records the server certificate's notAfter in r and warns (reason
 * cert_expiring) when it is within `warn_ms` of `now` (wall clock, s), or
 * past; 0 for not_after means no TLS: nothing recorded.  `warn_ms` 0 never
 * warns. */
void probe_judge_cert(struct probe_result *r, long long not_after, int64_t warn_ms, double now);

struct target;

/* What a probe sees of the engine. */
struct probe_env {
        struct event_base *base;
        struct target *target;
        const struct target_conf *conf; /* updated by the engine on reload */
};

struct probe_ops {
        void *(*create)(struct probe_env *env);
        /* Runs one check; `addr` is the numeric address of conf->host. */
        void (*start)(void *p, const char *addr);
        /* True while a persistent connection is open (no resolution needed). */
        bool (*connected)(void *p);
        /* What the check is waiting for, for timeout messages. */
        const char *(*phase)(void *p);
        /* The reason code of a timeout (NULL: "timeout"). */
        const char *(*timeout_reason)(void *p);
        void (*abort)(void *p);
        void (*destroy)(void *p);
};

extern const struct probe_ops probe_redis_ops;
extern const struct probe_ops probe_postgres_ops;
extern const struct probe_ops probe_pgbouncer_ops;

/* Called by a probe, exactly once per start(). */
void probe_done(struct target *t, const struct probe_result *r);
/* Called by a probe when the peer closed an idle persistent connection. */
void probe_lost(struct target *t, const char *reason, const char *output);

#endif
