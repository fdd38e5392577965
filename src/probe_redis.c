/* Redis probe (hiredis 0.14.1 async on libevent).
 *
 * One persistent connection per target.  A check is one pipeline written
 * at once: [INFO] (once per round per server, shared), PING, then SET PX /
 * GET / DEL of a private key, or for a broker target LLEN of each queue and
 * [CLIENT LIST] (every CLIENTS_EVERY_S).  A new connection first sends
 * [AUTH] SELECT n, and the pipeline follows SELECT's reply.  Every reply is
 * checked against the command it answers, so a stream out of step with the
 * commands fails the check; each op's latency runs from the pipeline's
 * write to its own reply (what a client that pipelines sees).  One write
 * and, on a quick server, one read per check: a loop turn per round trip
 * is most of what an idle daemon costs (docs/performance.md).
 *
 * Ownership (hiredis 0.14.1): the context frees itself after onConnect(ERR)
 * and after a disconnect by the peer; a reply is valid only inside its
 * callback; redisAsyncFree is safe inside a reply callback, not inside
 * onConnect or onDisconnect.  We detach by setting ac->data = NULL before
 * any free we start, so callbacks run by hiredis's teardown are ignored.
 *
 * A hostile or confused server must cost a failed check, never the daemon:
 * hiredis 0.14.1 asserts on a reply that no command waits for and buffers
 * whatever size a reply announces.  The reader guard and the read handler
 * below (see "the reader guard") keep both out. */
#include "probe.h"
#include "textutil.h"
#include "redis_info.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- server-wide facts, shared by the targets of one server ----
 *
 * Shared per server and user: what INFO shows does not depend on the user,
 * but whether INFO may be run at all does (info_denied). */

struct redis_server {
        struct redis_server *next;
        char key[400];
        int refs;
        bool has;
        double fetched; /* monotonic */
        double claimed; /* a probe sent INFO at this time and waits for it; 0 = none */
        struct redis_info info;
        bool info_denied; /* the latest INFO was refused (an ACL without @dangerous) */
        bool info_whole;  /* the server refused INFO with sections (before Redis 7) */
        char denied_msg[128];
        long long prev_evicted;
        long long evicted_delta;
};

static struct redis_server *servers;

static struct redis_server *server_get(const char *host, int port, const char *user)
{
        char key[400];
        snprintf(key, sizeof(key), "%s:%d:%s", host, port, user != NULL ? user : "");
        for (struct redis_server *s = servers; s != NULL; s = s->next)
                if (strcmp(s->key, key) == 0) {
                        s->refs++;
                        return s;
                }
        struct redis_server *s = calloc(1, sizeof(*s));
        if (s == NULL)
                abort();
        snprintf(s->key, sizeof(s->key), "%s", key);
        s->refs = 1;
        s->prev_evicted = -1;
        s->next = servers;
        servers = s;
        return s;
}

static void server_put(struct redis_server *s)
{
        if (--s->refs > 0)
                return;
        for (struct redis_server **pp = &servers; *pp != NULL; pp = &(*pp)->next)
                if (*pp == s) {
                        *pp = s->next;
                        break;
                }
        free(s);
}

/* ---- the probe ---- */

enum op {
        OP_AUTH,
        OP_SELECT,
        OP_INFO,
        OP_PING,
        OP_SET,
        OP_GET,
        OP_DEL,
        OP_LLEN,
        OP_CLIENTS,
};

static const char *const op_names[] = {"auth", "select", "info", "ping",       "set",
                                       "get",  "del",    "llen", "client list"};

#define MAX_STEPS (8 + MAX_QUEUES)

struct step {
        enum op op;
        int arg; /* queue index for LLEN */
};

struct redis_probe {
        struct probe_env *env;
        struct redis_server *server;
        redisAsyncContext *ac;
        bool ready; /* authenticated and on the right db */
        bool in_check;
        struct step steps[MAX_STEPS];
        int nsteps;
        int cur;          /* the step whose reply comes next */
        int queued;       /* steps sent so far */
        double step_sent; /* when the pipeline (or AUTH and SELECT) was queued */
        double started;
        struct probe_result res;
        char key[128];
        char value[64];
        const char *phase;
        /* On a new connection the pipeline is sent once the read that
         * brought SELECT's reply has been parsed to its end: a reply queued
         * behind that one in the same read then finds no command waiting
         * and is caught as unsolicited, instead of being taken for the
         * pipeline's first. */
        bool send_pending;
        /* Set by the reader guard when it refuses a reply; reported by the
         * teardown that follows (on_reply(NULL) or on_disconnect). */
        const char *violation;
        char violation_msg[160];
        size_t reply_bytes; /* what the reply being parsed holds so far */
        /* broker targets: the workers blocked on the db, from CLIENT LIST,
         * read every CLIENTS_EVERY_S (the list grows with every client of
         * the server; workers come and go slowly) */
        double clients_at;   /* mono_now() of the last read, 0 = read at the next check */
        long long consumers; /* -1 = unknown (refused, or not read yet) */
};

static const struct target_conf *conf(const struct redis_probe *p)
{
        return p->env->conf;
}

static void *rp_create(struct probe_env *env)
{
        struct redis_probe *p = calloc(1, sizeof(*p));
        if (p == NULL)
                abort();
        p->env = env;
        p->server = server_get(env->conf->host, env->conf->port, env->conf->user);
        char host[64] = "";
        gethostname(host, sizeof(host) - 1);
        snprintf(p->key, sizeof(p->key), "hdms-healthd:%s:%s:%ld", env->conf->name, host,
                 (long)getpid());
        p->phase = "idle";
        p->consumers = -1;
        return p;
}

/* Drops the connection now; no callback of ours runs after this. */
static void drop(struct redis_probe *p)
{
        redisAsyncContext *ac = p->ac;
        p->ac = NULL;
        p->ready = false;
        if (ac != NULL) {
                ac->data = NULL;
                redisAsyncFree(ac);
        }
}

static void complete(struct redis_probe *p, bool keep_connection);
static void send_step(struct redis_probe *p);

static void on_reply(redisAsyncContext *ac, void *r, void *privdata);

/* ---- the reader guard ----
 *
 * hiredis 0.14.1 trusts the server in two ways that a hostile or confused
 * one can turn against the daemon:
 *
 * - A reply that arrives while no command waits for one (an unsolicited
 *   "+OK" on the idle connection, or a second reply behind the expected one)
 *   reaches redisProcessCallbacks() with an empty callback list, which
 *   asserts that the context is subscribed or monitoring: SIGABRT.
 *   Setting REDIS_MONITORING would avoid the assert but not help: async.c
 *   then hands the stray reply to the callback that ran last (it keeps it in
 *   a variable outside its loop) and pushes that callback back when the
 *   buffer runs dry, so the stray reply would be silently taken for an
 *   answer.
 * - A reply is as large as the server announces: a bulk of 1 GB is buffered
 *   until it is complete, an array of a billion elements is one calloc().
 *
 * hiredis builds every reply object through the reader's object functions
 * and fails the connection cleanly when one of them returns NULL (the reader
 * sets REDIS_ERR_OOM, redisProcessCallbacks disconnects, pending callbacks
 * get a NULL reply, then onDisconnect runs).  So each context's reader gets
 * the functions below, which refuse a top-level reply while no callback is
 * queued (before async.c looks for one) and any object that takes the reply
 * past REPLY_MAX_BYTES, and leave the reason in the probe for the teardown
 * to report.  What the object functions cannot see, the bytes of a reply
 * still in transit, the read handler checks after each read (after_read). */

/* The most one reply may hold: the reader's buffer while it arrives, and
 * the objects built from it.  The largest reply the check asks for is
 * CLIENT LIST, about 300 bytes a client on Redis 7: 16 MiB leaves room for
 * some 50,000 clients, five times Redis's default maxclients. */
#define REPLY_MAX_BYTES ((size_t)16 << 20)
/* Seconds between two CLIENT LIST reads of a broker target. */
#define CLIENTS_EVERY_S 10.0
/* The longest line (a status, an error, an integer, a length) a reply may
 * have: real ones are short, and hiredis scans a line from its start on
 * every read, so a line that never ends would cost quadratic time. */
#define LINE_MAX_BYTES ((size_t)64 << 10)

static redisReplyObjectFunctions *hiredis_fns; /* hiredis's own (defaultFunctions) */

static void violate(struct redis_probe *p, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void violate(struct redis_probe *p, const char *reason, const char *fmt, ...)
{
        if (p->violation != NULL)
                return; /* the first one tells what happened */
        p->violation = reason;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->violation_msg, sizeof(p->violation_msg), fmt, ap);
        va_end(ap);
}

static const char *type_name(int type)
{
        switch (type) {
        case REDIS_REPLY_STRING:
                return "a bulk string";
        case REDIS_REPLY_ARRAY:
                return "an array";
        case REDIS_REPLY_INTEGER:
                return "an integer";
        case REDIS_REPLY_NIL:
                return "a nil";
        case REDIS_REPLY_STATUS:
                return "a status";
        case REDIS_REPLY_ERROR:
                return "an error";
        }
        return "a reply of unknown type";
}

/* Whether the reader may build an object of `bytes` for this task. */
static bool guard_admit(const redisReadTask *task, size_t bytes, const char *str, size_t len)
{
        redisAsyncContext *ac = task->privdata;
        struct redis_probe *p = ac->data;
        if (task->parent == NULL) {
                if (ac->replies.head == NULL) {
                        if (p != NULL) {
                                char text[64] = "";
                                if (str != NULL)
                                        snprintf(text, sizeof(text), " \"%.*s%s\"",
                                                 (int)(len < 40 ? len : 40), str,
                                                 len > 40 ? "..." : "");
                                violate(p, "protocol_error",
                                        "unsolicited reply (%s%s) from %s:%d while no command "
                                        "waited for one",
                                        type_name(task->type), text, conf(p)->host, conf(p)->port);
                        }
                        return false;
                }
                if (p != NULL)
                        p->reply_bytes = 0;
        }
        if (p == NULL)
                return true;
        p->reply_bytes += bytes + sizeof(redisReply);
        if (bytes > REPLY_MAX_BYTES || p->reply_bytes > REPLY_MAX_BYTES) {
                violate(p, "reply_too_large", "a reply from %s:%d larger than %zu MiB",
                        conf(p)->host, conf(p)->port, REPLY_MAX_BYTES >> 20);
                return false;
        }
        return true;
}

static void *guard_string(const redisReadTask *task, char *str, size_t len)
{
        if (!guard_admit(task, len, str, len))
                return NULL;
        return hiredis_fns->createString(task, str, len);
}

static void *guard_array(const redisReadTask *task, int elements)
{
        if (elements < 0) {
                /* Debian's 0.14.1 refuses these itself ("Multi-bulk length
                 * out of range"); a hiredis without that check would record
                 * the count as a huge size_t, so refuse them here too */
                redisAsyncContext *ac = task->privdata;
                if (ac->data != NULL)
                        violate(ac->data, "protocol_error", "an array of %d elements", elements);
                return NULL;
        }
        if (!guard_admit(task, (size_t)elements * sizeof(redisReply *), NULL, 0))
                return NULL;
        return hiredis_fns->createArray(task, elements);
}

static void *guard_integer(const redisReadTask *task, long long value)
{
        if (!guard_admit(task, 0, NULL, 0))
                return NULL;
        return hiredis_fns->createInteger(task, value);
}

static void *guard_nil(const redisReadTask *task)
{
        if (!guard_admit(task, 0, NULL, 0))
                return NULL;
        return hiredis_fns->createNil(task);
}

static void guard_free(void *obj)
{
        hiredis_fns->freeObject(obj);
}

static redisReplyObjectFunctions guard_fns = {
    .createString = guard_string,
    .createArray = guard_array,
    .createInteger = guard_integer,
    .createNil = guard_nil,
    .freeObject = guard_free,
};

static void guard_install(redisAsyncContext *ac)
{
        redisReader *r = ac->c.reader;
        if (hiredis_fns == NULL)
                hiredis_fns = r->fn;
        r->fn = &guard_fns;
        r->privdata = ac;
}

/* What the bytes still in the reader's buffer say about the connection,
 * after a read: NULL when nothing is wrong. */
static const char *after_read(struct redis_probe *p)
{
        const redisAsyncContext *ac = p->ac;
        const redisReader *r = ac->c.reader;
        size_t pending = r->len > r->pos ? r->len - r->pos : 0;
        if (pending == 0)
                return NULL;
        if (pending > REPLY_MAX_BYTES) {
                violate(p, "reply_too_large",
                        "a reply from %s:%d larger than %zu MiB (still arriving)", conf(p)->host,
                        conf(p)->port, REPLY_MAX_BYTES >> 20);
                return p->violation;
        }
        if (pending > LINE_MAX_BYTES &&
            memmem(r->buf + r->pos, LINE_MAX_BYTES, "\r\n", 2) == NULL) {
                violate(p, "reply_too_large", "a reply from %s:%d with a line longer than %zu KiB",
                        conf(p)->host, conf(p)->port, LINE_MAX_BYTES >> 10);
                return p->violation;
        }
        if (ac->replies.head == NULL) {
                /* the start of a reply that nothing asked for */
                violate(p, "protocol_error",
                        "unsolicited data from %s:%d (%zu bytes) while no command waited for a "
                        "reply",
                        conf(p)->host, conf(p)->port, pending);
                return p->violation;
        }
        return NULL;
}

/* ---- the libevent glue ----
 *
 * hiredis's adapters/libevent.h, except that a read goes through on_readable
 * so that after_read() and a pending send run once hiredis has parsed the
 * whole read, and that the read event is persistent: hiredis re-adds it
 * after every read, which for a one-shot event is an epoll_ctl per read
 * (libevent's changelist folds the delete and the add into one MOD); for a
 * persistent event already added it is nothing.  The struct is freed by
 * hiredis (cleanup) with the context. */

struct redis_io {
        redisAsyncContext *ac;
        struct event *rev, *wev;
};

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
        struct redis_io *io = arg;
        redisAsyncContext *ac = io->ac;
        struct redis_probe *p = ac->data;
        (void)fd;
        (void)what;
        /* io and ac may be freed in here: use neither after it unless the
         * probe still holds ac (every teardown clears p->ac first) */
        redisAsyncHandleRead(ac);
        if (p == NULL || p->ac != ac)
                return;
        const char *reason = after_read(p);
        if (reason != NULL) {
                if (p->in_check) {
                        probe_result_worsen(&p->res, ST_FAIL, reason, "%s", p->violation_msg);
                        complete(p, false);
                } else {
                        char msg[sizeof(p->violation_msg)];
                        snprintf(msg, sizeof(msg), "%s", p->violation_msg);
                        drop(p);
                        probe_lost(p->env->target, reason, msg);
                }
                return;
        }
        if (p->in_check && p->send_pending) {
                p->send_pending = false;
                send_step(p);
        }
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
        struct redis_io *io = arg;
        (void)fd;
        (void)what;
        redisAsyncHandleWrite(io->ac);
}

static void io_add_read(void *arg)
{
        event_add(((struct redis_io *)arg)->rev, NULL);
}

static void io_del_read(void *arg)
{
        event_del(((struct redis_io *)arg)->rev);
}

static void io_add_write(void *arg)
{
        event_add(((struct redis_io *)arg)->wev, NULL);
}

static void io_del_write(void *arg)
{
        event_del(((struct redis_io *)arg)->wev);
}

static void io_cleanup(void *arg)
{
        struct redis_io *io = arg;
        event_free(io->rev);
        event_free(io->wev);
        free(io);
}

static int io_attach(redisAsyncContext *ac, struct event_base *base)
{
        struct redis_io *io = calloc(1, sizeof(*io));
        if (io == NULL)
                abort();
        io->ac = ac;
        io->rev = event_new(base, ac->c.fd, EV_READ | EV_PERSIST, on_readable, io);
        io->wev = event_new(base, ac->c.fd, EV_WRITE, on_writable, io);
        if (io->rev == NULL || io->wev == NULL)
                abort();
        ac->ev.addRead = io_add_read;
        ac->ev.delRead = io_del_read;
        ac->ev.addWrite = io_add_write;
        ac->ev.delWrite = io_del_write;
        ac->ev.cleanup = io_cleanup;
        ac->ev.data = io;
        event_add(io->rev, NULL);
        event_add(io->wev, NULL);
        return REDIS_OK;
}

static void classify_error(struct redis_probe *p, const char *what, const char *msg)
{
        const char *reason = "server_error";
        if (strncmp(msg, "WRONGPASS", 9) == 0 || strncmp(msg, "NOAUTH", 6) == 0 ||
            strstr(msg, "invalid password") != NULL || strstr(msg, "invalid username") != NULL ||
            strstr(msg, "AUTH <password> called without") != NULL)
                reason = "auth_failed";
        else if (strncmp(msg, "LOADING", 7) == 0)
                reason = "loading";
        else if (strncmp(msg, "NOPERM", 6) == 0)
                reason = "permission_denied";
        else if (strncmp(msg, "BUSY", 4) == 0)
                reason = "server_busy";
        else if (strstr(msg, "max number of clients reached") != NULL)
                reason = "connections_exhausted"; /* maxclients: sent on connect */
        else if (strncmp(msg, "MISCONF", 7) == 0 || strncmp(msg, "READONLY", 8) == 0 ||
                 strncmp(msg, "OOM", 3) == 0)
                reason = "write_refused";
        if (strcmp(reason, "auth_failed") == 0)
                probe_result_worsen(&p->res, ST_FAIL, reason, "authentication failed (%s): %s",
                                    what, msg);
        else
                probe_result_worsen(&p->res, ST_FAIL, reason, "%s failed: %s", what, msg);
}

/* A command of every check, formatted by hand (hiredis's printf-style
 * formatting was a fifth of an idle daemon's instructions).  Its arguments
 * are bounded (the key, the value, a queue name under QUEUE_NAME_MAX), so
 * the longest command is a few hundred bytes. */
static int send_argv(struct redis_probe *p, int argc, const char *const *argv)
{
        char buf[1024];
        long n = resp_format(buf, sizeof(buf), argc, argv);
        if (n < 0)
                return REDIS_ERR;
        return redisAsyncFormattedCommand(p->ac, on_reply, p, buf, (size_t)n);
}

#define SEND(p, ...)                                                                               \
        send_argv((p), (int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)),        \
                  (const char *[]){__VA_ARGS__})

static int send_cmd(struct redis_probe *p, const struct step *s)
{
        const struct target_conf *c = conf(p);
        char db[16];
        switch (s->op) {
        case OP_AUTH:
                if (c->user != NULL)
                        return redisAsyncCommand(p->ac, on_reply, p, "AUTH %s %s", c->user,
                                                 c->password);
                return redisAsyncCommand(p->ac, on_reply, p, "AUTH %s", c->password);
        case OP_SELECT:
                snprintf(db, sizeof(db), "%d", c->db);
                return redisAsyncCommand(p->ac, on_reply, p, "SELECT %s", db);
        case OP_INFO:
                /* only the sections judged: Redis 7 takes several (the
                 * cpu, modules, errorstats, cluster and keyspace sections
                 * would be parsed for nothing at every round) */
                return p->server->info_whole ? SEND(p, "INFO")
                                             : SEND(p, "INFO", "server", "clients", "memory",
                                                    "persistence", "stats", "replication");
        case OP_PING:
                return SEND(p, "PING");
        case OP_SET:
                return SEND(p, "SET", p->key, p->value, "PX", "60000");
        case OP_GET:
                return SEND(p, "GET", p->key);
        case OP_DEL:
                return SEND(p, "DEL", p->key);
        case OP_LLEN:
                return SEND(p, "LLEN", c->queues[s->arg]);
        case OP_CLIENTS:
                return SEND(p, "CLIENT", "LIST", "TYPE", "normal");
        }
        return REDIS_ERR;
}

/* Queues the next unsent step; false when the check has ended. */
static bool queue_step(struct redis_probe *p)
{
        const struct step *s = &p->steps[p->queued++];
        p->phase = s->op == OP_AUTH     ? "authenticating"
                   : s->op == OP_SELECT ? "selecting the database"
                                        : "waiting for a reply";
        if (send_cmd(p, s) != REDIS_OK) {
                probe_result_worsen(&p->res, ST_FAIL, "connection_lost", "cannot send %s: %s",
                                    op_names[s->op],
                                    p->ac->errstr[0] ? p->ac->errstr : "connection closing");
                complete(p, false);
                return false;
        }
        return true;
}

/* Sends every unsent step as one pipeline. */
static void send_step(struct redis_probe *p)
{
        p->step_sent = mono_now();
        while (p->queued < p->nsteps)
                if (!queue_step(p))
                        return;
        /* Write it now, outside any hiredis callback: left to hiredis, the
         * pipeline waits for an EV_WRITE wake-up one loop turn later (a turn
         * and two epoll_ctl); armed and disarmed in the same turn, the
         * write event costs no system call (libevent's epoll changelist).
         * A failed write tears down as on_writable would. */
        if (p->ac->c.flags & REDIS_CONNECTED)
                redisAsyncHandleWrite(p->ac);
}

static void record_op(struct redis_probe *p, enum op op, double secs)
{
        struct probe_result *r = &p->res;
        if (r->nops < MAX_OPS) {
                size_t n = strnlen(op_names[op], sizeof(r->ops[0].op) - 1);
                memcpy(r->ops[r->nops].op, op_names[op], n);
                r->ops[r->nops].op[n] = '\0';
                r->ops[r->nops].seconds = secs;
                r->nops++;
        }
        double target = (double)conf(p)->latency_target_ms / 1000.0;
        if (secs > target)
                probe_result_worsen(r, ST_WARN, "latency_high", "%s took %.1fms (target %lldms)",
                                    op_names[op], secs * 1000.0,
                                    (long long)conf(p)->latency_target_ms);
}

/* Server-wide facts from the shared INFO, judged for this target. */
static void judge_info(struct redis_probe *p)
{
        struct redis_server *s = p->server;
        struct probe_result *r = &p->res;
        const struct target_conf *c = conf(p);
        if (s->info_denied)
                probe_result_worsen(r, ST_WARN, "info_denied",
                                    "INFO refused, server figures not read: %s", s->denied_msg);
        if (!s->has)
                return;
        const struct redis_info *i = &s->info;
        snprintf(r->server_id, sizeof(r->server_id), "%s", i->run_id);
        r->used_memory = i->used_memory;
        r->maxmemory = i->maxmemory;
        r->connected_clients = i->connected_clients;
        r->maxclients = i->maxclients;
        if (i->loading == 1)
                probe_result_worsen(r, ST_FAIL, "loading", "the server is loading its data set");
        if (strcmp(i->role, "master") != 0 && i->role[0] != '\0')
                probe_result_worsen(r, ST_WARN, "replica", "the server is a %s: writes are refused",
                                    i->role);
        if (i->maxmemory > 0 && i->used_memory >= 0 &&
            (double)i->used_memory > (1.0 - c->headroom_warn) * (double)i->maxmemory)
                probe_result_worsen(r, ST_WARN, "memory_headroom",
                                    "memory %lld of maxmemory %lld bytes (%.0f%%)",
                                    (long long)i->used_memory, (long long)i->maxmemory,
                                    100.0 * (double)i->used_memory / (double)i->maxmemory);
        if (i->maxclients > 0 && i->connected_clients >= 0 &&
            (double)i->connected_clients > (1.0 - c->headroom_warn) * (double)i->maxclients)
                probe_result_worsen(r, ST_WARN, "clients_headroom", "%lld of maxclients %lld",
                                    (long long)i->connected_clients, (long long)i->maxclients);
        if (i->rdb_last_bgsave_status_ok == 0 || i->aof_last_write_status_ok == 0)
                probe_result_worsen(r, ST_WARN, "persistence_failing", "the last %s failed",
                                    i->aof_last_write_status_ok == 0 ? "AOF write" : "RDB save");
        if (c->nqueues > 0) {
                /* the broker must not lose messages to eviction */
                if (strncmp(i->maxmemory_policy, "allkeys-", 8) == 0)
                        probe_result_worsen(r, ST_WARN, "eviction_hazard",
                                            "maxmemory-policy %s can evict broker queues",
                                            i->maxmemory_policy);
                else if (s->evicted_delta > 0)
                        probe_result_worsen(r, ST_WARN, "eviction_hazard",
                                            "%lld keys evicted since the last round",
                                            s->evicted_delta);
        }
}

/* Workers waiting on a broker's db, from the latest CLIENT LIST (this
 * check's or one up to CLIENTS_EVERY_S old), against this check's queues. */
static void judge_consumers(struct redis_probe *p)
{
        const struct target_conf *c = conf(p);
        if (c->nqueues == 0 || p->consumers < 0)
                return;
        p->res.consumers = p->consumers;
        long long waiting = 0;
        for (int k = 0; k < p->res.nqueues; k++)
                waiting += p->res.queues[k].length;
        if (p->consumers == 0 && waiting > 0)
                probe_result_worsen(&p->res, ST_WARN, "no_consumers",
                                    "%lld messages queued and no worker waiting on db %d", waiting,
                                    c->db);
}

static void complete(struct redis_probe *p, bool keep_connection)
{
        if (!p->in_check)
                return;
        p->in_check = false;
        p->phase = "idle";
        if (p->res.status != ST_FAIL) {
                judge_info(p);
                judge_consumers(p);
        }
        /* a check that ends before its last reply (a GET that does not
         * return the value) leaves replies in flight that the next check
         * would take for its own: the connection goes with them */
        if (p->ac != NULL && p->ac->replies.head != NULL)
                keep_connection = false;
        if (!keep_connection || p->res.status == ST_FAIL)
                drop(p); /* safe in a reply callback: hiredis defers the free */
        struct probe_result r = p->res;
        probe_done(p->env->target, &r);
}

/* What each op must answer when it does not answer an error. */
static bool reply_fits(enum op op, const redisReply *r)
{
        switch (op) {
        case OP_AUTH:
        case OP_SELECT:
        case OP_SET:
                return r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
        case OP_PING:
                return r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        case OP_INFO:
        case OP_CLIENTS:
                return r->type == REDIS_REPLY_STRING;
        case OP_GET:
                return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_NIL;
        case OP_DEL:
        case OP_LLEN:
                return r->type == REDIS_REPLY_INTEGER;
        }
        return false;
}

static const char *const op_expects[] = {"+OK",        "+OK",        "a bulk string",
                                         "+PONG",      "+OK",        "a bulk string or nil",
                                         "an integer", "an integer", "a bulk string"};

/* INFO and CLIENT LIST are @dangerous in Redis's ACL categories: a
 * least-privilege user is refused them (NOPERM), and hardened servers often
 * rename them away (unknown command).  Neither says anything about the
 * server's health, so such a refusal only hides the figures they give. */
static bool refused_not_broken(const char *msg)
{
        return strncmp(msg, "NOPERM", 6) == 0 || strstr(msg, "unknown command") != NULL;
}

/* Why hiredis tears the connection down under a reply callback: a reply the
 * reader guard refused, an answer that is not RESP, or the peer closing. */
static const char *teardown_reason(const struct redis_probe *p, const redisAsyncContext *ac,
                                   const char *op, char *msg, size_t size)
{
        const char *host = conf(p)->host;
        int port = conf(p)->port;
        if (p->violation != NULL) {
                snprintf(msg, size, "%s", p->violation_msg);
                return p->violation;
        }
        if (ac->err == REDIS_ERR_PROTOCOL) {
                snprintf(msg, size, "not a Redis answer from %s:%d%s%s: %s", host, port,
                         op != NULL ? " to " : "", op != NULL ? op : "", ac->errstr);
                return "protocol_error";
        }
        const char *detail = ac->errstr[0] ? ac->errstr : "end of stream";
        if (op != NULL)
                snprintf(msg, size, "connection to %s:%d lost during %s: %s", host, port, op,
                         detail);
        else
                snprintf(msg, size, "connection closed by %s:%d: %s", host, port, detail);
        return "connection_lost";
}

static void on_reply(redisAsyncContext *ac, void *reply_v, void *privdata)
{
        (void)privdata;
        struct redis_probe *p = ac->data;
        if (p == NULL || !p->in_check)
                return;
        redisReply *reply = reply_v;
        double now = mono_now();
        const struct step *s = &p->steps[p->cur];
        const struct target_conf *c = conf(p);

        if (reply == NULL) {
                /* hiredis is tearing the connection down: the peer closed it,
                 * what it sent is not RESP (REDIS_ERR_PROTOCOL), or the
                 * reader guard refused a reply */
                char msg[OUTPUT_MAX / 2];
                const char *reason = teardown_reason(p, ac, op_names[s->op], msg, sizeof(msg));
                p->ac = NULL;
                ac->data = NULL;
                p->ready = false;
                probe_result_worsen(&p->res, ST_FAIL, reason, "%s", msg);
                complete(p, false);
                return;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
                char msg[256];
                snprintf(msg, sizeof(msg), "%.*s", (int)(reply->len < 255 ? reply->len : 255),
                         reply->str);
                if (s->op == OP_INFO && !p->server->info_whole &&
                    strstr(msg, "syntax error") != NULL) {
                        /* a server before Redis 7 takes one section: ask for
                         * the whole INFO from the next round on */
                        p->server->info_whole = true;
                        p->server->claimed = 0;
                } else if (s->op == OP_INFO && refused_not_broken(msg)) {
                        /* the connection stays: the server answered in step */
                        struct redis_server *sv = p->server;
                        sv->has = false;
                        sv->info_denied = true;
                        snprintf(sv->denied_msg, sizeof(sv->denied_msg), "%s", msg);
                        sv->fetched = now;
                        sv->claimed = 0;
                } else if (s->op == OP_CLIENTS && refused_not_broken(msg)) {
                        p->consumers = -1;
                        p->clients_at = 0; /* asked again at the next check */
                        probe_result_worsen(&p->res, ST_WARN, "client_list_denied",
                                            "CLIENT LIST refused, waiting workers not counted: "
                                            "%s",
                                            msg);
                } else {
                        classify_error(p, op_names[s->op], msg);
                        /* AUTH or SELECT failing leaves the connection unusable */
                        complete(p, false);
                        return;
                }
        } else if (!reply_fits(s->op, reply)) {
                /* the stream may be out of step with our commands: drop it */
                char text[64] = "";
                if (reply->type == REDIS_REPLY_STATUS || reply->type == REDIS_REPLY_STRING)
                        snprintf(text, sizeof(text), " \"%.*s%s\"",
                                 (int)(reply->len < 40 ? reply->len : 40), reply->str,
                                 reply->len > 40 ? "..." : "");
                probe_result_worsen(&p->res, ST_FAIL, "protocol_error",
                                    "%s answered %s%s where %s was expected", op_names[s->op],
                                    type_name(reply->type), text, op_expects[s->op]);
                complete(p, false);
                return;
        } else {
                switch (s->op) {
                case OP_AUTH:
                        break;
                case OP_SELECT:
                        p->ready = true;
                        break;
                case OP_INFO:
                        if (redis_info_parse(reply->str, reply->len, &p->server->info) != 0) {
                                probe_result_worsen(&p->res, ST_FAIL, "protocol_error",
                                                    "INFO answered something that is not INFO");
                                complete(p, false);
                                return;
                        }
                        struct redis_server *sv = p->server;
                        long long ev = sv->info.evicted_keys;
                        sv->evicted_delta = sv->prev_evicted >= 0 && ev >= sv->prev_evicted
                                                ? ev - sv->prev_evicted
                                                : 0;
                        sv->prev_evicted = ev;
                        sv->has = true;
                        sv->info_denied = false;
                        sv->fetched = now;
                        sv->claimed = 0;
                        break;
                case OP_PING:
                        record_op(p, OP_PING, now - p->step_sent);
                        break;
                case OP_SET:
                case OP_DEL:
                        record_op(p, s->op, now - p->step_sent);
                        break;
                case OP_GET:
                        record_op(p, OP_GET, now - p->step_sent);
                        if (reply->type != REDIS_REPLY_STRING ||
                            strcmp(reply->str, p->value) != 0) {
                                probe_result_worsen(&p->res, ST_FAIL, "data_mismatch",
                                                    "GET did not return the value just SET");
                                complete(p, true);
                                return;
                        }
                        break;
                case OP_LLEN: {
                        struct probe_result *r = &p->res;
                        if (r->nqueues < MAX_QUEUES) {
                                snprintf(r->queues[r->nqueues].name, sizeof(r->queues[0].name),
                                         "%s", c->queues[s->arg]);
                                r->queues[r->nqueues++].length = reply->integer;
                        }
                        if (reply->integer > c->queue_warn)
                                probe_result_worsen(r, ST_WARN, "queue_depth",
                                                    "queue %s holds %lld messages (warn above %ld)",
                                                    c->queues[s->arg], (long long)reply->integer,
                                                    c->queue_warn);
                        break;
                }
                case OP_CLIENTS:
                        p->consumers = redis_blocked_on_db(reply->str, reply->len, c->db);
                        p->clients_at = now;
                        break;
                }
        }
        if (++p->cur == p->nsteps)
                complete(p, true);
        else if (p->cur == p->queued)
                p->send_pending = true; /* sent by on_readable once this read is parsed */
}

static void on_connect(const redisAsyncContext *ac, int status)
{
        struct redis_probe *p = ac->data;
        if (p == NULL || status == REDIS_OK)
                return;
        /* hiredis frees the context after this returns */
        p->ac->data = NULL;
        p->ac = NULL;
        p->ready = false;
        const char *why = ac->errstr[0] ? ac->errstr : "connect failed";
        probe_result_worsen(&p->res, ST_FAIL,
                            strstr(why, "refused") != NULL ? "connect_refused" : "connect_failed",
                            "cannot connect to %s:%d: %s", conf(p)->host, conf(p)->port, why);
        complete(p, false);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
        struct redis_probe *p = ac->data;
        (void)status;
        if (p == NULL)
                return;
        p->ac->data = NULL;
        p->ac = NULL;
        p->ready = false;
        char msg[OUTPUT_MAX / 2];
        const char *reason = teardown_reason(p, ac, NULL, msg, sizeof(msg));
        if (p->in_check) {
                probe_result_worsen(&p->res, ST_FAIL, reason, "%s", msg);
                complete(p, false);
        } else {
                probe_lost(p->env->target, reason, msg);
        }
}

static void rp_start(void *vp, const char *addr)
{
        struct redis_probe *p = vp;
        const struct target_conf *c = conf(p);
        probe_result_init(&p->res);
        p->in_check = true;
        p->started = mono_now();
        p->nsteps = p->cur = p->queued = 0;
        p->send_pending = false;
        /* unique per check; an integer (microseconds), as formatting a
         * double costs some thousands of instructions */
        snprintf(p->value, sizeof(p->value), "%lld", (long long)(p->started * 1e6));

        if (p->ac == NULL) {
                p->phase = "connecting";
                redisAsyncContext *ac = redisAsyncConnect(addr, c->port);
                if (ac == NULL || ac->err) {
                        probe_result_set(&p->res, ST_FAIL, "connect_failed",
                                         "cannot connect to %s:%d: %s", c->host, c->port,
                                         ac != NULL ? ac->errstr : "out of memory");
                        if (ac != NULL)
                                redisAsyncFree(ac);
                        complete(p, false);
                        return;
                }
                ac->data = p;
                p->ac = ac;
                p->violation = NULL;
                guard_install(ac);
                io_attach(ac, p->env->base);
                redisAsyncSetConnectCallback(ac, on_connect);
                redisAsyncSetDisconnectCallback(ac, on_disconnect);
        }
        if (!p->ready) {
                if (c->password != NULL)
                        p->steps[p->nsteps++] = (struct step){OP_AUTH, 0};
                p->steps[p->nsteps++] = (struct step){OP_SELECT, 0};
        }
        /* INFO once per round per server and user: the first target due fetches it,
         * the others judge the latest copy.  Until a first copy has come, each
         * target asks for its own: a pipelined check may end before the one
         * another target waits for, and would judge nothing.  A new connection
         * always asks for its own: the server behind it may be a new one (a
         * restart), and a copy fetched from the old one would hide its new
         * run_id, so the outage would read as a blip. */
        struct redis_server *sv = p->server;
        double max_age = (double)c->interval_ms / 2000.0;
        bool claimed = sv->claimed > 0 &&
                       p->started - sv->claimed < (double)c->timeout_ms / 1000.0 &&
                       (sv->has || sv->info_denied);
        bool fresh = (sv->has || sv->info_denied) && p->started - sv->fetched < max_age;
        if (!p->ready || (!fresh && !claimed)) {
                sv->claimed = p->started;
                p->steps[p->nsteps++] = (struct step){OP_INFO, 0};
        }
        p->steps[p->nsteps++] = (struct step){OP_PING, 0};
        if (c->nqueues > 0) {
                for (int i = 0; i < c->nqueues; i++)
                        p->steps[p->nsteps++] = (struct step){OP_LLEN, i};
                if (!p->ready || p->clients_at == 0 ||
                    p->started - p->clients_at >= CLIENTS_EVERY_S)
                        p->steps[p->nsteps++] = (struct step){OP_CLIENTS, 0};
        } else {
                p->steps[p->nsteps++] = (struct step){OP_SET, 0};
                p->steps[p->nsteps++] = (struct step){OP_GET, 0};
                p->steps[p->nsteps++] = (struct step){OP_DEL, 0};
        }
        if (!p->ready) {
                /* AUTH and SELECT are queued while connecting; the pipeline
                 * follows SELECT's reply (a refused AUTH or SELECT ends the
                 * check before anything else is written). */
                int prefix = c->password != NULL ? 2 : 1;
                p->step_sent = mono_now();
                for (int i = 0; i < prefix; i++)
                        if (!queue_step(p))
                                return;
                p->phase = "connecting";
                return;
        }
        send_step(p);
}

static bool rp_connected(void *vp)
{
        struct redis_probe *p = vp;
        return p->ac != NULL && p->ready;
}

static const char *rp_phase(void *vp)
{
        return ((struct redis_probe *)vp)->phase;
}

static void rp_abort(void *vp)
{
        struct redis_probe *p = vp;
        p->in_check = false;
        p->phase = "idle";
        drop(p);
}

static void rp_destroy(void *vp)
{
        struct redis_probe *p = vp;
        if (p == NULL)
                return;
        p->in_check = false;
        drop(p);
        server_put(p->server);
        free(p);
}

const struct probe_ops probe_redis_ops = {
    .create = rp_create,
    .start = rp_start,
    .connected = rp_connected,
    .phase = rp_phase,
    .abort = rp_abort,
    .destroy = rp_destroy,
};
