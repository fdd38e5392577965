/* Redis probe (hiredis 0.14.1 async on libevent).
 *
 * One persistent connection per target.  A check is a chain of commands,
 * each sent from the previous reply so that every op is timed alone:
 * [AUTH] SELECT n (new connection only), [INFO] (once per round per
 * server, shared), PING, then SET PX / GET / DEL of a private key, or for a
 * broker target LLEN of each queue and CLIENT LIST.
 *
 * Ownership (hiredis 0.14.1): the context frees itself after onConnect(ERR)
 * and after a disconnect by the peer; a reply is valid only inside its
 * callback; redisAsyncFree is safe inside a reply callback, not inside
 * onConnect or onDisconnect.  We detach by setting ac->data = NULL before
 * any free we start, so callbacks run by hiredis's teardown are ignored. */
#include "probe.h"
#include "redis_info.h"

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- server-wide facts, shared by the targets of one server ---- */

struct redis_server {
        struct redis_server *next;
        char key[300];
        int refs;
        bool has;
        double fetched; /* monotonic */
        double claimed; /* a probe sent INFO at this time and waits for it; 0 = none */
        struct redis_info info;
        long long prev_evicted;
        long long evicted_delta;
};

static struct redis_server *servers;

static struct redis_server *server_get(const char *host, int port)
{
        char key[300];
        snprintf(key, sizeof(key), "%s:%d", host, port);
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
        int cur;    /* the step whose reply comes next */
        int queued; /* steps sent so far */
        double step_sent;
        double started;
        struct probe_result res;
        char key[128];
        char value[64];
        const char *phase;
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
        p->server = server_get(env->conf->host, env->conf->port);
        char host[64] = "";
        gethostname(host, sizeof(host) - 1);
        snprintf(p->key, sizeof(p->key), "hdms-healthd:%s:%s:%ld", env->conf->name, host,
                 (long)getpid());
        p->phase = "idle";
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
                return redisAsyncCommand(p->ac, on_reply, p, "INFO");
        case OP_PING:
                return redisAsyncCommand(p->ac, on_reply, p, "PING");
        case OP_SET:
                return redisAsyncCommand(p->ac, on_reply, p, "SET %s %s PX 60000", p->key,
                                         p->value);
        case OP_GET:
                return redisAsyncCommand(p->ac, on_reply, p, "GET %s", p->key);
        case OP_DEL:
                return redisAsyncCommand(p->ac, on_reply, p, "DEL %s", p->key);
        case OP_LLEN:
                return redisAsyncCommand(p->ac, on_reply, p, "LLEN %s", c->queues[s->arg]);
        case OP_CLIENTS:
                return redisAsyncCommand(p->ac, on_reply, p, "CLIENT LIST TYPE normal");
        }
        return REDIS_ERR;
}

/* Sends the next unsent step. */
static void send_step(struct redis_probe *p)
{
        const struct step *s = &p->steps[p->queued++];
        p->phase = s->op == OP_AUTH     ? "authenticating"
                   : s->op == OP_SELECT ? "selecting the database"
                                        : "waiting for a reply";
        p->step_sent = mono_now();
        if (send_cmd(p, s) != REDIS_OK) {
                probe_result_worsen(&p->res, ST_FAIL, "connection_lost", "cannot send %s: %s",
                                    op_names[s->op],
                                    p->ac->errstr[0] ? p->ac->errstr : "connection closing");
                complete(p, false);
        }
}

static void record_op(struct redis_probe *p, enum op op, double secs)
{
        struct probe_result *r = &p->res;
        if (r->nops < MAX_OPS) {
                snprintf(r->ops[r->nops].op, sizeof(r->ops[0].op), "%s", op_names[op]);
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

static void complete(struct redis_probe *p, bool keep_connection)
{
        if (!p->in_check)
                return;
        p->in_check = false;
        p->phase = "idle";
        if (p->res.status != ST_FAIL)
                judge_info(p);
        if (!keep_connection || p->res.status == ST_FAIL)
                drop(p); /* safe in a reply callback: hiredis defers the free */
        struct probe_result r = p->res;
        probe_done(p->env->target, &r);
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
                 * or what it sent is not RESP (hiredis gives up on the
                 * connection with REDIS_ERR_PROTOCOL) */
                bool garbage = ac->err == REDIS_ERR_PROTOCOL;
                p->ac = NULL;
                ac->data = NULL;
                p->ready = false;
                probe_result_worsen(
                    &p->res, ST_FAIL, garbage ? "protocol_error" : "connection_lost",
                    garbage ? "not a Redis answer to %s: %s" : "connection lost during %s: %s",
                    op_names[s->op], ac->errstr[0] ? ac->errstr : "closed by the server");
                complete(p, false);
                return;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
                char msg[256];
                snprintf(msg, sizeof(msg), "%.*s", (int)(reply->len < 255 ? reply->len : 255),
                         reply->str);
                classify_error(p, op_names[s->op], msg);
                /* AUTH or SELECT failing leaves the connection unusable */
                complete(p, false);
                return;
        }
        switch (s->op) {
        case OP_AUTH:
        case OP_SELECT:
                if (s->op == OP_SELECT)
                        p->ready = true;
                break;
        case OP_INFO:
                if (reply->type == REDIS_REPLY_STRING &&
                    redis_info_parse(reply->str, reply->len, &p->server->info) == 0) {
                        struct redis_server *sv = p->server;
                        long long ev = sv->info.evicted_keys;
                        sv->evicted_delta = sv->prev_evicted >= 0 && ev >= sv->prev_evicted
                                                ? ev - sv->prev_evicted
                                                : 0;
                        sv->prev_evicted = ev;
                        sv->has = true;
                        sv->fetched = now;
                        sv->claimed = 0;
                } else {
                        probe_result_worsen(&p->res, ST_FAIL, "protocol_error",
                                            "INFO answered something that is not INFO");
                        complete(p, false);
                        return;
                }
                break;
        case OP_PING:
                if (!(reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0)) {
                        probe_result_worsen(&p->res, ST_FAIL, "protocol_error",
                                            "PING did not answer PONG");
                        complete(p, false);
                        return;
                }
                record_op(p, OP_PING, now - p->step_sent);
                break;
        case OP_SET:
        case OP_DEL:
                record_op(p, s->op, now - p->step_sent);
                break;
        case OP_GET:
                record_op(p, OP_GET, now - p->step_sent);
                if (reply->type != REDIS_REPLY_STRING || strcmp(reply->str, p->value) != 0) {
                        probe_result_worsen(&p->res, ST_FAIL, "data_mismatch",
                                            "GET did not return the value just SET");
                        complete(p, true);
                        return;
                }
                break;
        case OP_LLEN:
                if (reply->type == REDIS_REPLY_INTEGER) {
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
                }
                break;
        case OP_CLIENTS:
                if (reply->type == REDIS_REPLY_STRING) {
                        int n = redis_blocked_on_db(reply->str, reply->len, c->db);
                        p->res.consumers = n;
                        long long waiting = 0;
                        for (int k = 0; k < p->res.nqueues; k++)
                                waiting += p->res.queues[k].length;
                        if (n == 0 && waiting > 0)
                                probe_result_worsen(&p->res, ST_WARN, "no_consumers",
                                                    "%lld messages queued and no worker waiting "
                                                    "on db %d",
                                                    waiting, c->db);
                }
                break;
        }
        if (++p->cur == p->nsteps)
                complete(p, true);
        else if (p->cur == p->queued)
                send_step(p);
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
        bool garbage = ac->err == REDIS_ERR_PROTOCOL;
        const char *reason = garbage ? "protocol_error" : "connection_lost";
        char msg[200];
        snprintf(msg, sizeof(msg), "%s %s:%d: %s",
                 garbage ? "not a Redis answer from" : "connection closed by", conf(p)->host,
                 conf(p)->port, ac->errstr[0] ? ac->errstr : "end of stream");
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
        snprintf(p->value, sizeof(p->value), "%.6f", p->started);

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
                redisLibeventAttach(ac, p->env->base);
                redisAsyncSetConnectCallback(ac, on_connect);
                redisAsyncSetDisconnectCallback(ac, on_disconnect);
        }
        if (!p->ready) {
                if (c->password != NULL)
                        p->steps[p->nsteps++] = (struct step){OP_AUTH, 0};
                p->steps[p->nsteps++] = (struct step){OP_SELECT, 0};
        }
        /* INFO once per round per server: the first target due fetches it,
         * the others judge the latest copy. */
        struct redis_server *sv = p->server;
        double max_age = (double)c->interval_ms / 2000.0;
        bool claimed = sv->claimed > 0 && p->started - sv->claimed < (double)c->timeout_ms / 1000.0;
        if ((!sv->has || p->started - sv->fetched >= max_age) && !claimed) {
                sv->claimed = p->started;
                p->steps[p->nsteps++] = (struct step){OP_INFO, 0};
        }
        p->steps[p->nsteps++] = (struct step){OP_PING, 0};
        if (c->nqueues > 0) {
                for (int i = 0; i < c->nqueues; i++)
                        p->steps[p->nsteps++] = (struct step){OP_LLEN, i};
                p->steps[p->nsteps++] = (struct step){OP_CLIENTS, 0};
        } else {
                p->steps[p->nsteps++] = (struct step){OP_SET, 0};
                p->steps[p->nsteps++] = (struct step){OP_GET, 0};
                p->steps[p->nsteps++] = (struct step){OP_DEL, 0};
        }
        if (!p->ready) {
                /* AUTH and SELECT are queued while connecting; the rest follows
                 * one reply at a time. */
                int prefix = c->password != NULL ? 2 : 1;
                for (int i = 0; i < prefix; i++) {
                        send_step(p);
                        if (!p->in_check)
                                return;
                }
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
