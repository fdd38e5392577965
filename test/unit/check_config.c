/*
 * Unit tests for config.c: defaults, the environment, the INI file, secrets
 * files, precedence, every error path, --check-config printing, reload
 * comparison and target selection.
 *
 * config_load() takes its environment as an argument, so every test passes
 * its own and none depends on the process's.  Files go into a mkdtemp
 * directory per test case (TCase); "@D" in any table string (file text, environment
 * value, expected value) stands for that directory.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

#define A10 "aaaaaaaaaa"
#define A50 A10 A10 A10 A10 A10
#define A191 A50 A50 A50 A10 A10 A10 A10 "a" /* "host = " + 191 = 198 bytes */
#define A250 A50 A50 A50 A50 A50
#define A63 A50 A10 "aaa" /* the longest queue name the probe keeps */

/* Every configuration a test loads is held here until release(); the
 * teardown, which Check also runs after a failed assertion, frees the rest,
 * so CK_FORK=no runs under valgrind stay leak-free whatever fails. */
#define MAX_HELD 8
static struct config *held[MAX_HELD];
static int nheld;

static struct config *hold(struct config *cfg)
{
        if (cfg != NULL) {
                ck_assert_int_lt(nheld, MAX_HELD);
                held[nheld++] = cfg;
        }
        return cfg;
}

static void release(struct config *cfg)
{
        for (int i = 0; i < nheld; i++)
                if (held[i] == cfg) {
                        held[i] = held[--nheld];
                        break;
                }
        config_free(cfg);
}

/* ---- fixture: a temporary directory with secrets files ------------------- */

static char tmpdir[64];

static void put_file(const char *name, const char *content, size_t len)
{
        char path[256];
        snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
        FILE *f = fopen(path, "w");
        ck_assert_msg(f != NULL, "cannot create %s", path);
        ck_assert_uint_eq(fwrite(content, 1, len, f), len);
        ck_assert_int_eq(fclose(f), 0);
}

#define PUT(name, lit) put_file(name, lit, sizeof(lit) - 1)

/* Unchecked fixtures run in the parent process, so the directory is removed
 * even when a forked test fails (a failing child never reaches a checked
 * teardown). */
static void make_tmpdir(void)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_config.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(tmpdir));
        PUT("pg_pw", "pg-file-secret\n");
        PUT("hd_pw", "hd-file-secret\r\n");
        PUT("redis_pw", "redis-file-secret\n\n");
        PUT("admin_pw", "admin-file-secret");
        PUT("token", "token-file-secret\n");
        PUT("multi", "line1\nline2\n");
        PUT("canary", "CANARY-s3cret-file\n");
        PUT("empty", "");
        PUT("newlines", "\n\r\n");
        char big[5000];
        memset(big, 'x', sizeof(big));
        put_file("big", big, sizeof(big));
        /* TLS files: contents do not matter to the loader, modes do */
        PUT("ca.pem", "not parsed by the loader\n");
        PUT("key600", "k\n");
        PUT("key644", "k\n");
        PUT("key640", "k\n");
        char path[300];
        snprintf(path, sizeof(path), "%s/key600", tmpdir);
        ck_assert_int_eq(chmod(path, 0600), 0);
        snprintf(path, sizeof(path), "%s/key644", tmpdir);
        ck_assert_int_eq(chmod(path, 0644), 0);
        snprintf(path, sizeof(path), "%s/key640", tmpdir);
        ck_assert_int_eq(chmod(path, 0640), 0);
}

static void remove_tmpdir(void)
{
        DIR *d = opendir(tmpdir);
        if (d == NULL)
                return;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                        continue;
                char path[512];
                snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
                unlink(path);
        }
        closedir(d);
        rmdir(tmpdir);
}

/* Checked: runs after each test, also after a failed one with CK_FORK=no. */
static void release_held(void)
{
        while (nheld > 0)
                config_free(held[--nheld]);
}

/* A malloc'd copy of s with every "@D" replaced by the temp directory. */
static char *expand(const char *s)
{
        size_t dl = strlen(tmpdir), n = 0;
        for (const char *p = s; (p = strstr(p, "@D")) != NULL; p += 2)
                n++;
        char *out = malloc(strlen(s) + n * dl + 1);
        ck_assert_ptr_nonnull(out);
        char *o = out;
        while (*s != '\0') {
                if (s[0] == '@' && s[1] == 'D') {
                        memcpy(o, tmpdir, dl);
                        o += dl;
                        s += 2;
                } else {
                        *o++ = *s++;
                }
        }
        *o = '\0';
        return out;
}

/* Writes `text` (expanded) to @D/NAME; returns the path (static). */
static const char *write_conf(const char *name, const char *text)
{
        static char path[256];
        char *t = expand(text);
        snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(t, f);
        ck_assert_int_eq(fclose(f), 0);
        free(t);
        return path;
}

#define MAX_ENV 28

/* An environment built from a table row: expanded, NULL-terminated. */
struct env {
        char *v[MAX_ENV + 1];
};

static char *const *env_build(struct env *e, const char *const *vars, size_t n)
{
        memset(e, 0, sizeof(*e));
        for (size_t i = 0, k = 0; i < n && vars[i] != NULL; i++) {
                ck_assert_uint_lt(k, MAX_ENV);
                e->v[k++] = expand(vars[i]);
        }
        return e->v;
}

static void env_free(struct env *e)
{
        for (int i = 0; e->v[i] != NULL; i++)
                free(e->v[i]);
}

struct ovr {
        const char *listen, *log_format, *log_level;
};

/* Loads a configuration from an optional file text, a table environment and
 * optional command-line overrides. */
static struct config *load(const char *file_text, const char *const *vars, size_t nvars,
                           const struct ovr *o, char *err, size_t errlen)
{
        struct config_overrides ov = {0};
        if (file_text != NULL)
                ov.file = write_conf("test.conf", file_text);
        if (o != NULL) {
                ov.listen = o->listen;
                ov.log_format = o->log_format;
                ov.log_level = o->log_level;
        }
        struct env e;
        char *const *envp = env_build(&e, vars, nvars);
        struct config *cfg = hold(config_load(&ov, envp, err, errlen));
        env_free(&e);
        return cfg;
}

/* ---- fields, as strings, for table-driven expectations ------------------- */

enum fld {
        /* target */
        F_KIND,
        F_HOST,
        F_PORT,
        F_DB,
        F_QUEUES,
        F_DBNAME,
        F_USER,
        F_PASSWORD,
        F_ADMIN_USER,
        F_ADMIN_PASSWORD,
        F_SSLMODE,
        F_INTERVAL,
        F_TIMEOUT,
        F_RETRY,
        F_RISE,
        F_FALL,
        F_LATENCY,
        F_CRITICAL,
        F_APP_USER,
        F_EXPECT_PRIMARY,
        F_CONN_WARN,
        F_MAXWAIT,
        F_CLIENTS_WARN,
        F_POOL_MIN,
        F_POOL_MAX,
        F_QUEUE_WARN,
        F_HEADROOM,
        /* daemon (target NULL) */
        D_FILE,
        D_LISTEN,
        D_LOGFMT,
        D_LOGLEVEL,
        D_INTERVAL,
        D_TIMEOUT,
        D_RETRY,
        D_RISE,
        D_FALL,
        D_STARTUP,
        D_RECONNECT,
        D_LATENCY,
        D_TOKEN,
        D_NAMESERVERS,
        D_HTTP_TIMEOUT,
        D_HTTP_MAX,
        D_HTTP_PER_IP,
        D_HTTP_MEM,
        D_DEFAULT_TARGETS,
};

static const char *const fld_names[] = {
    [F_KIND] = "F_KIND",
    [F_HOST] = "F_HOST",
    [F_PORT] = "F_PORT",
    [F_DB] = "F_DB",
    [F_QUEUES] = "F_QUEUES",
    [F_DBNAME] = "F_DBNAME",
    [F_USER] = "F_USER",
    [F_PASSWORD] = "F_PASSWORD",
    [F_ADMIN_USER] = "F_ADMIN_USER",
    [F_ADMIN_PASSWORD] = "F_ADMIN_PASSWORD",
    [F_SSLMODE] = "F_SSLMODE",
    [F_INTERVAL] = "F_INTERVAL",
    [F_TIMEOUT] = "F_TIMEOUT",
    [F_RETRY] = "F_RETRY",
    [F_RISE] = "F_RISE",
    [F_FALL] = "F_FALL",
    [F_LATENCY] = "F_LATENCY",
    [F_CRITICAL] = "F_CRITICAL",
    [F_APP_USER] = "F_APP_USER",
    [F_EXPECT_PRIMARY] = "F_EXPECT_PRIMARY",
    [F_CONN_WARN] = "F_CONN_WARN",
    [F_MAXWAIT] = "F_MAXWAIT",
    [F_CLIENTS_WARN] = "F_CLIENTS_WARN",
    [F_POOL_MIN] = "F_POOL_MIN",
    [F_POOL_MAX] = "F_POOL_MAX",
    [F_QUEUE_WARN] = "F_QUEUE_WARN",
    [F_HEADROOM] = "F_HEADROOM",
    [D_FILE] = "D_FILE",
    [D_LISTEN] = "D_LISTEN",
    [D_LOGFMT] = "D_LOGFMT",
    [D_LOGLEVEL] = "D_LOGLEVEL",
    [D_INTERVAL] = "D_INTERVAL",
    [D_TIMEOUT] = "D_TIMEOUT",
    [D_RETRY] = "D_RETRY",
    [D_RISE] = "D_RISE",
    [D_FALL] = "D_FALL",
    [D_STARTUP] = "D_STARTUP",
    [D_RECONNECT] = "D_RECONNECT",
    [D_LATENCY] = "D_LATENCY",
    [D_TOKEN] = "D_TOKEN",
    [D_NAMESERVERS] = "D_NAMESERVERS",
    [D_HTTP_TIMEOUT] = "D_HTTP_TIMEOUT",
    [D_HTTP_MAX] = "D_HTTP_MAX",
    [D_HTTP_PER_IP] = "D_HTTP_PER_IP",
    [D_HTTP_MEM] = "D_HTTP_MEM",
    [D_DEFAULT_TARGETS] = "D_DEFAULT_TARGETS",
};

static const char *str_or_null(const char *s)
{
        return s != NULL ? s : "(null)";
}

static const char *target_field(const struct target_conf *t, enum fld f, char *b, size_t n)
{
        switch (f) {
        case F_KIND:
                return target_kind_name(t->kind);
        case F_HOST:
                return str_or_null(t->host);
        case F_PORT:
                snprintf(b, n, "%d", t->port);
                return b;
        case F_DB:
                snprintf(b, n, "%d", t->db);
                return b;
        case F_QUEUES:
                b[0] = '\0';
                for (int i = 0; i < t->nqueues; i++) {
                        size_t l = strlen(b);
                        snprintf(b + l, n - l, "%s%s", i ? "," : "", t->queues[i]);
                }
                return b;
        case F_DBNAME:
                return str_or_null(t->dbname);
        case F_USER:
                return str_or_null(t->user);
        case F_PASSWORD:
                return str_or_null(t->password);
        case F_ADMIN_USER:
                return str_or_null(t->admin_user);
        case F_ADMIN_PASSWORD:
                return str_or_null(t->admin_password);
        case F_SSLMODE:
                return str_or_null(t->sslmode);
        case F_INTERVAL:
                snprintf(b, n, "%lld", (long long)t->interval_ms);
                return b;
        case F_TIMEOUT:
                snprintf(b, n, "%lld", (long long)t->timeout_ms);
                return b;
        case F_RETRY:
                snprintf(b, n, "%lld", (long long)t->retry_interval_ms);
                return b;
        case F_RISE:
                snprintf(b, n, "%d", t->rise);
                return b;
        case F_FALL:
                snprintf(b, n, "%d", t->fall);
                return b;
        case F_LATENCY:
                snprintf(b, n, "%lld", (long long)t->latency_target_ms);
                return b;
        case F_CRITICAL:
                return t->critical ? "yes" : "no";
        case F_APP_USER:
                return str_or_null(t->app_user);
        case F_EXPECT_PRIMARY:
                return t->expect_primary ? "yes" : "no";
        case F_CONN_WARN:
                snprintf(b, n, "%g", t->connections_warn);
                return b;
        case F_MAXWAIT:
                snprintf(b, n, "%lld", (long long)t->maxwait_warn_ms);
                return b;
        case F_CLIENTS_WARN:
                snprintf(b, n, "%g", t->clients_warn);
                return b;
        case F_POOL_MIN:
                snprintf(b, n, "%ld", t->pool_size_min);
                return b;
        case F_POOL_MAX:
                snprintf(b, n, "%ld", t->pool_size_max);
                return b;
        case F_QUEUE_WARN:
                snprintf(b, n, "%ld", t->queue_warn);
                return b;
        case F_HEADROOM:
                snprintf(b, n, "%g", t->headroom_warn);
                return b;
        default:
                ck_abort_msg("field %d is not a target field", (int)f);
        }
        return NULL;
}

static const char *daemon_field(const struct config *c, enum fld f, char *b, size_t n)
{
        switch (f) {
        case D_FILE:
                return str_or_null(c->file);
        case D_LISTEN:
                if (strchr(c->listen_host, ':') != NULL)
                        snprintf(b, n, "[%s]:%d", c->listen_host, c->listen_port);
                else
                        snprintf(b, n, "%s:%d", c->listen_host, c->listen_port);
                return b;
        case D_LOGFMT:
                return c->log_format == LOG_JSON ? "json" : "text";
        case D_LOGLEVEL:
                return log_level_name(c->log_level);
        case D_INTERVAL:
                snprintf(b, n, "%lld", (long long)c->interval_ms);
                return b;
        case D_TIMEOUT:
                snprintf(b, n, "%lld", (long long)c->timeout_ms);
                return b;
        case D_RETRY:
                snprintf(b, n, "%lld", (long long)c->retry_interval_ms);
                return b;
        case D_RISE:
                snprintf(b, n, "%d", c->rise);
                return b;
        case D_FALL:
                snprintf(b, n, "%d", c->fall);
                return b;
        case D_STARTUP:
                snprintf(b, n, "%lld", (long long)c->startup_target_ms);
                return b;
        case D_RECONNECT:
                snprintf(b, n, "%lld", (long long)c->reconnect_target_ms);
                return b;
        case D_LATENCY:
                snprintf(b, n, "%lld", (long long)c->latency_target_ms);
                return b;
        case D_TOKEN:
                return str_or_null(c->status_token);
        case D_NAMESERVERS:
                return str_or_null(c->nameservers);
        case D_HTTP_TIMEOUT:
                snprintf(b, n, "%lld", (long long)c->http_connection_timeout_ms);
                return b;
        case D_HTTP_MAX:
                snprintf(b, n, "%ld", c->http_max_connections);
                return b;
        case D_HTTP_PER_IP:
                snprintf(b, n, "%ld", c->http_max_connections_per_ip);
                return b;
        case D_HTTP_MEM:
                snprintf(b, n, "%ld", c->http_memory_limit);
                return b;
        case D_DEFAULT_TARGETS:
                return c->default_targets ? "yes" : "no";
        default:
                ck_abort_msg("field %d is not a daemon field", (int)f);
        }
        return NULL;
}

struct expect {
        const char *target; /* NULL: a [daemon] field */
        enum fld f;
        const char *want; /* "@D" expanded; "(null)" for NULL */
};

/* Checks one expectation; on a mismatch writes why and returns false (the
 * caller frees what it holds before failing, so CK_FORK=no runs under
 * valgrind stay leak-free even when a test fails). */
static bool expect_ok(const struct config *cfg, const struct expect *ex, const char *row, char *why,
                      size_t whylen)
{
        char buf[512];
        const char *got;
        if (ex->target == NULL) {
                got = daemon_field(cfg, ex->f, buf, sizeof(buf));
        } else {
                const struct target_conf *t = config_find_target(cfg, ex->target);
                if (t == NULL) {
                        snprintf(why, whylen, "%s: no target '%s'", row, ex->target);
                        return false;
                }
                got = target_field(t, ex->f, buf, sizeof(buf));
        }
        char *want = expand(ex->want);
        bool ok = strcmp(got, want) == 0;
        if (!ok)
                snprintf(why, whylen, "%s: %s %s: got '%s', want '%s'", row,
                         ex->target ? ex->target : "[daemon]", fld_names[ex->f], got, want);
        free(want);
        return ok;
}

/* Same target names, in any order. */
static bool names_ok(const struct config *cfg, const char *names, const char *row, char *why,
                     size_t whylen)
{
        char buf[512];
        snprintf(buf, sizeof(buf), "%s", names);
        size_t n = 0;
        for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok != NULL;
             tok = strtok_r(NULL, ",", &save)) {
                if (config_find_target(cfg, tok) == NULL) {
                        snprintf(why, whylen, "%s: no target '%s'", row, tok);
                        return false;
                }
                n++;
        }
        if (cfg->ntargets != n) {
                snprintf(why, whylen, "%s: %zu targets, want %zu (%s)", row, cfg->ntargets, n,
                         names);
                return false;
        }
        return true;
}

/* Checks names (may be NULL) and expectations; frees cfg either way. */
static void check_and_free(struct config *cfg, const char *names, const struct expect *ex,
                           size_t nex, const char *row)
{
        char why[1024] = "";
        bool ok = names == NULL || names_ok(cfg, names, row, why, sizeof(why));
        for (size_t k = 0; ok && k < nex && ex[k].want != NULL; k++)
                ok = expect_ok(cfg, &ex[k], row, why, sizeof(why));
        release(cfg);
        ck_assert_msg(ok, "%s", why);
}

/* ---- successful loads ---------------------------------------------------- */

#define DEFAULT_NAMES "postgres,pgbouncer,redis-cache,redis-channels,redis-celery"

/* The built-in defaults of SPEC 2, 3, 5 and 6. */
#define DEFAULT_EXPECT                                                                             \
        {"postgres", F_KIND, "postgres"}, {"postgres", F_HOST, "postgres"},                        \
            {"postgres", F_PORT, "5432"}, {"postgres", F_DBNAME, "hdms"},                          \
            {"postgres", F_USER, "hdms"}, {"postgres", F_PASSWORD, "(null)"},                      \
            {"postgres", F_APP_USER, "hdms"}, {"postgres", F_INTERVAL, "2000"},                    \
            {"postgres", F_TIMEOUT, "1000"}, {"postgres", F_RETRY, "250"},                         \
            {"postgres", F_RISE, "2"}, {"postgres", F_FALL, "2"}, {"postgres", F_CRITICAL, "yes"}, \
            {"postgres", F_EXPECT_PRIMARY, "yes"}, {"postgres", F_CONN_WARN, "0.8"},               \
            {"postgres", F_LATENCY, "50"}, {"pgbouncer", F_KIND, "pgbouncer"},                     \
            {"pgbouncer", F_HOST, "pgbouncer"}, {"pgbouncer", F_PORT, "6432"},                     \
            {"pgbouncer", F_DBNAME, "hdms"}, {"pgbouncer", F_USER, "hdms"},                        \
            {"pgbouncer", F_PASSWORD, "(null)"}, {"pgbouncer", F_ADMIN_USER, "pgbouncer"},         \
            {"pgbouncer", F_ADMIN_PASSWORD, "(null)"}, {"pgbouncer", F_MAXWAIT, "1000"},           \
            {"pgbouncer", F_CLIENTS_WARN, "0.9"}, {"pgbouncer", F_POOL_MIN, "25"},                 \
            {"pgbouncer", F_POOL_MAX, "50"}, {"pgbouncer", F_TIMEOUT, "1000"},                     \
            {"redis-cache", F_KIND, "redis"}, {"redis-cache", F_HOST, "redis"},                    \
            {"redis-cache", F_PORT, "6379"}, {"redis-cache", F_DB, "0"},                           \
            {"redis-cache", F_USER, "(null)"}, {"redis-cache", F_PASSWORD, "(null)"},              \
            {"redis-cache", F_QUEUES, ""}, {"redis-cache", F_TIMEOUT, "1000"},                     \
            {"redis-cache", F_QUEUE_WARN, "1000"}, {"redis-cache", F_HEADROOM, "0.1"},             \
            {"redis-channels", F_KIND, "redis"}, {"redis-channels", F_HOST, "redis"},              \
            {"redis-channels", F_PORT, "6379"}, {"redis-channels", F_DB, "1"},                     \
            {"redis-channels", F_QUEUES, ""}, {"redis-celery", F_KIND, "redis"},                   \
            {"redis-celery", F_HOST, "redis"}, {"redis-celery", F_PORT, "6379"},                   \
            {"redis-celery", F_DB, "2"}, {"redis-celery", F_QUEUES, "celery"},                     \
            {"redis-celery", F_TIMEOUT, "1000"}, {"redis-celery", F_RETRY, "250"},                 \
            {"redis-celery", F_RISE, "2"}, {"redis-celery", F_FALL, "2"},                          \
            {NULL, D_LISTEN, "127.0.0.1:8080"}, {NULL, D_LOGFMT, "text"},                          \
            {NULL, D_LOGLEVEL, "info"}, {NULL, D_INTERVAL, "2000"}, {NULL, D_RETRY, "250"},        \
            {NULL, D_RISE, "2"}, {NULL, D_FALL, "2"}, {NULL, D_TOKEN, "(null)"},                   \
            {NULL, D_NAMESERVERS, "(null)"}, {NULL, D_STARTUP, "10000"},                           \
            {NULL, D_RECONNECT, "5000"}, {NULL, D_LATENCY, "50"}, {NULL, D_HTTP_TIMEOUT, "10000"}, \
            {NULL, D_HTTP_MAX, "256"}, {NULL, D_HTTP_PER_IP, "32"}, {NULL, D_HTTP_MEM, "262144"},  \
            {NULL, D_FILE, "(null)"},                                                              \
        {                                                                                          \
                NULL, D_DEFAULT_TARGETS, "no"                                                      \
        }

/* The SPEC 6 sample, with the reporting-db timeout shortened to 1500ms:
 * the sample's "timeout = 2s" equals its interval and is refused. */
#define SPEC_SAMPLE                                                                                \
        "[daemon]\n"                                                                               \
        "listen = 0.0.0.0:8080\n"                                                                  \
        "interval = 2s\n"                                                                          \
        "\n"                                                                                       \
        "[target orders-cache]\n"                                                                  \
        "kind = redis            ; redis | postgres | pgbouncer\n"                                 \
        "host = 10.0.0.7\n"                                                                        \
        "port = 6379\n"                                                                            \
        "db = 3\n"                                                                                 \
        "password_file = @D/redis_pw\n"                                                            \
        "latency_target = 20ms\n"                                                                  \
        "critical = no\n"                                                                          \
        "\n"                                                                                       \
        "[target reporting-db]\n"                                                                  \
        "kind = postgres\n"                                                                        \
        "host = reports.internal\n"                                                                \
        "port = 5432\n"                                                                            \
        "dbname = reports\n"                                                                       \
        "user = healthcheck\n"                                                                     \
        "password_file = @D/pg_pw\n"                                                               \
        "timeout = 1500ms\n"                                                                       \
        "rise = 3\n"                                                                               \
        "fall = 2\n"

static const struct load_case {
        const char *name;
        bool null_env; /* pass envp = NULL */
        const char *file;
        const char *env[MAX_ENV];
        struct ovr ov;
        const char *names; /* comma-separated, any order; NULL: not checked */
        struct expect ex[80];
} load_cases[] = {
    {"defaults, no environment", true, NULL, {NULL}, {0}, DEFAULT_NAMES, {DEFAULT_EXPECT}},
    {"defaults, empty environment", false, NULL, {NULL}, {0}, DEFAULT_NAMES, {DEFAULT_EXPECT}},
    {"unrelated variables are ignored",
     false,
     NULL,
     {"PATH=/usr/bin", "HOME=/root", "POSTGRES=x", "REDIS_HOSTNAME=x", "HEALTHD=x"},
     {0},
     DEFAULT_NAMES,
     {DEFAULT_EXPECT}},
    {"every stack variable",
     false,
     NULL,
     {"POSTGRES_HOST=db.internal",
      "POSTGRES_PORT=15432",
      "POSTGRES_DB=appdb",
      "POSTGRES_USER=appuser",
      "POSTGRES_PASSWORD=apppw",
      "PGBOUNCER_HOST=pool.internal",
      "PGBOUNCER_PORT=16432",
      "PGBOUNCER_ADMIN_USER=padmin",
      "PGBOUNCER_ADMIN_PASSWORD=padminpw",
      "REDIS_HOST=cache.internal",
      "REDIS_PORT=16379",
      "REDIS_USERNAME=ruser",
      "REDIS_PASSWORD=rpw",
      "CELERY_QUEUES=celery,default,reports",
      "HEALTHD_LISTEN=0.0.0.0:9000",
      "HEALTHD_INTERVAL=5s",
      "HEALTHD_TIMEOUT=2s",
      "HEALTHD_RETRY_INTERVAL=100ms",
      "HEALTHD_STATUS_TOKEN=tok",
      "HEALTHD_NAMESERVERS=10.0.0.2,10.0.0.3:5353",
      "HEALTHD_LOG_FORMAT=json",
      "HEALTHD_LOG_LEVEL=debug",
      "HEALTHD_RISE=3",
      "HEALTHD_FALL=4"},
     {0},
     DEFAULT_NAMES,
     {{"postgres", F_HOST, "db.internal"},
      {"postgres", F_PORT, "15432"},
      {"postgres", F_DBNAME, "appdb"},
      {"postgres", F_USER, "appuser"},
      {"postgres", F_PASSWORD, "apppw"},
      {"postgres", F_APP_USER, "appuser"},
      {"postgres", F_INTERVAL, "5000"},
      {"postgres", F_TIMEOUT, "2000"},
      {"postgres", F_RETRY, "100"},
      {"postgres", F_RISE, "3"},
      {"postgres", F_FALL, "4"},
      {"pgbouncer", F_HOST, "pool.internal"},
      {"pgbouncer", F_PORT, "16432"},
      {"pgbouncer", F_DBNAME, "appdb"},
      {"pgbouncer", F_USER, "appuser"},
      {"pgbouncer", F_PASSWORD, "apppw"},
      {"pgbouncer", F_ADMIN_USER, "padmin"},
      {"pgbouncer", F_ADMIN_PASSWORD, "padminpw"},
      {"redis-cache", F_HOST, "cache.internal"},
      {"redis-cache", F_PORT, "16379"},
      {"redis-cache", F_DB, "0"},
      {"redis-cache", F_USER, "ruser"},
      {"redis-cache", F_PASSWORD, "rpw"},
      {"redis-channels", F_HOST, "cache.internal"},
      {"redis-channels", F_USER, "ruser"},
      {"redis-channels", F_PASSWORD, "rpw"},
      {"redis-channels", F_QUEUES, ""},
      {"redis-celery", F_HOST, "cache.internal"},
      {"redis-celery", F_PORT, "16379"},
      {"redis-celery", F_DB, "2"},
      {"redis-celery", F_PASSWORD, "rpw"},
      {"redis-celery", F_QUEUES, "celery,default,reports"},
      {"redis-celery", F_INTERVAL, "5000"},
      {"redis-celery", F_TIMEOUT, "2000"},
      {NULL, D_LISTEN, "0.0.0.0:9000"},
      {NULL, D_INTERVAL, "5000"},
      {NULL, D_TIMEOUT, "2000"},
      {NULL, D_RETRY, "100"},
      {NULL, D_TOKEN, "tok"},
      {NULL, D_NAMESERVERS, "10.0.0.2,10.0.0.3:5353"},
      {NULL, D_LOGFMT, "json"},
      {NULL, D_LOGLEVEL, "debug"},
      {NULL, D_RISE, "3"},
      {NULL, D_FALL, "4"}}},
    {"HEALTHD_PG_* and HEALTHD_APP_USER over POSTGRES_*",
     false,
     NULL,
     {"POSTGRES_USER=appuser", "POSTGRES_PASSWORD=apppw", "HEALTHD_PG_USER=monitor",
      "HEALTHD_PG_PASSWORD=monpw", "HEALTHD_APP_USER=django"},
     {0},
     DEFAULT_NAMES,
     {{"postgres", F_USER, "monitor"},
      {"postgres", F_PASSWORD, "monpw"},
      {"postgres", F_APP_USER, "django"},
      {"pgbouncer", F_USER, "monitor"},
      {"pgbouncer", F_PASSWORD, "monpw"},
      {"pgbouncer", F_ADMIN_USER, "pgbouncer"},
      {"pgbouncer", F_ADMIN_PASSWORD, "(null)"}}},
    {"HEALTHD_PG_* fall back to POSTGRES_USER/PASSWORD",
     false,
     NULL,
     {"POSTGRES_USER=appuser", "POSTGRES_PASSWORD=apppw"},
     {0},
     DEFAULT_NAMES,
     {{"postgres", F_USER, "appuser"},
      {"postgres", F_PASSWORD, "apppw"},
      {"postgres", F_APP_USER, "appuser"},
      {"pgbouncer", F_USER, "appuser"},
      {"pgbouncer", F_PASSWORD, "apppw"},
      {"redis-cache", F_PASSWORD, "(null)"}}},
    {"HEALTHD_PG_USER alone",
     false,
     NULL,
     {"HEALTHD_PG_USER=monitor"},
     {0},
     DEFAULT_NAMES,
     {{"postgres", F_USER, "monitor"},
      {"postgres", F_PASSWORD, "(null)"},
      {"postgres", F_APP_USER, "hdms"},
      {"pgbouncer", F_USER, "monitor"}}},
    {"HEALTHD_PG_PASSWORD alone",
     false,
     NULL,
     {"POSTGRES_PASSWORD=apppw", "HEALTHD_PG_PASSWORD=monpw"},
     {0},
     DEFAULT_NAMES,
     {{"postgres", F_USER, "hdms"},
      {"postgres", F_PASSWORD, "monpw"},
      {"pgbouncer", F_PASSWORD, "monpw"}}},
    {"CELERY_QUEUES with blanks",
     false,
     NULL,
     {"CELERY_QUEUES=high, default ,low"},
     {0},
     DEFAULT_NAMES,
     {{"redis-celery", F_QUEUES, "high,default,low"},
      {"redis-cache", F_QUEUES, ""},
      {"redis-channels", F_QUEUES, ""}}},
    {"CELERY_QUEUES with empty items",
     false,
     NULL,
     {"CELERY_QUEUES= q1,,q2, "},
     {0},
     DEFAULT_NAMES,
     {{"redis-celery", F_QUEUES, "q1,q2"}}},
    {"CELERY_QUEUES, sixteen",
     false,
     NULL,
     {"CELERY_QUEUES=a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p"},
     {0},
     DEFAULT_NAMES,
     {{"redis-celery", F_QUEUES, "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p"}}},
    {"CELERY_QUEUES, a 63-byte name",
     false,
     NULL,
     {"CELERY_QUEUES=celery," A63},
     {0},
     DEFAULT_NAMES,
     {{"redis-celery", F_QUEUES, "celery," A63}}},
    {"http_connection_timeout, the minimum",
     false,
     "[daemon]\nhttp_connection_timeout = 1s\n",
     {NULL},
     {0},
     NULL,
     {{NULL, D_HTTP_TIMEOUT, "1000"}}},
    {"an empty HEALTHD_STATUS_TOKEN is no token (Compose passes unset variables so)",
     false,
     NULL,
     {"HEALTHD_STATUS_TOKEN="},
     {0},
     DEFAULT_NAMES,
     {{NULL, D_TOKEN, "(null)"}}},
    {"X_FILE secrets, trailing newlines cut",
     false,
     NULL,
     {"POSTGRES_PASSWORD_FILE=@D/pg_pw", "PGBOUNCER_ADMIN_PASSWORD_FILE=@D/admin_pw",
      "REDIS_PASSWORD_FILE=@D/redis_pw", "HEALTHD_STATUS_TOKEN_FILE=@D/token"},
     {0},
     DEFAULT_NAMES,
     {{"postgres", F_PASSWORD, "pg-file-secret"},
      {"pgbouncer", F_PASSWORD, "pg-file-secret"},
      {"pgbouncer", F_ADMIN_PASSWORD, "admin-file-secret"},
      {"redis-cache", F_PASSWORD, "redis-file-secret"},
      {"redis-channels", F_PASSWORD, "redis-file-secret"},
      {"redis-celery", F_PASSWORD, "redis-file-secret"},
      {NULL, D_TOKEN, "token-file-secret"}}},
    {"HEALTHD_PG_PASSWORD_FILE with CRLF",
     false,
     NULL,
     {"POSTGRES_PASSWORD_FILE=@D/pg_pw", "HEALTHD_PG_PASSWORD_FILE=@D/hd_pw"},
     {0},
     DEFAULT_NAMES,
     {{"postgres", F_PASSWORD, "hd-file-secret"}, {"pgbouncer", F_PASSWORD, "hd-file-secret"}}},
    {"a secrets file keeps inner newlines",
     false,
     NULL,
     {"REDIS_PASSWORD_FILE=@D/multi"},
     {0},
     DEFAULT_NAMES,
     {{"redis-cache", F_PASSWORD, "line1\nline2"}}},
    {"timeout defaults to interval / 2 under 2s",
     false,
     NULL,
     {"HEALTHD_INTERVAL=1s"},
     {0},
     DEFAULT_NAMES,
     {{"postgres", F_INTERVAL, "1000"},
      {"postgres", F_TIMEOUT, "500"},
      {"redis-celery", F_TIMEOUT, "500"},
      {NULL, D_TIMEOUT, "0"}}},
    {"timeout defaults to 1s at most",
     false,
     NULL,
     {"HEALTHD_INTERVAL=10s"},
     {0},
     DEFAULT_NAMES,
     {{"postgres", F_INTERVAL, "10000"}, {"postgres", F_TIMEOUT, "1000"}}},
    {"short interval",
     false,
     NULL,
     {"HEALTHD_INTERVAL=300ms"},
     {0},
     DEFAULT_NAMES,
     {{"pgbouncer", F_TIMEOUT, "150"}}},
    {"HEALTHD_TIMEOUT",
     false,
     NULL,
     {"HEALTHD_INTERVAL=10s", "HEALTHD_TIMEOUT=3s", "HEALTHD_RETRY_INTERVAL=1m"},
     {0},
     DEFAULT_NAMES,
     {{"postgres", F_TIMEOUT, "3000"},
      {"redis-cache", F_TIMEOUT, "3000"},
      {"redis-cache", F_RETRY, "60000"}}},
    {"HEALTHD_* daemon keys",
     false,
     NULL,
     {"HEALTHD_STARTUP_TARGET=20s", "HEALTHD_RECONNECT_TARGET=3s", "HEALTHD_LATENCY_TARGET=20ms",
      "HEALTHD_HTTP_CONNECTION_TIMEOUT=5s", "HEALTHD_HTTP_MAX_CONNECTIONS=100",
      "HEALTHD_HTTP_MAX_CONNECTIONS_PER_IP=8", "HEALTHD_HTTP_MEMORY_LIMIT=65536"},
     {0},
     DEFAULT_NAMES,
     {{NULL, D_STARTUP, "20000"},
      {NULL, D_RECONNECT, "3000"},
      {NULL, D_LATENCY, "20"},
      {"redis-cache", F_LATENCY, "20"},
      {NULL, D_HTTP_TIMEOUT, "5000"},
      {NULL, D_HTTP_MAX, "100"},
      {NULL, D_HTTP_PER_IP, "8"},
      {NULL, D_HTTP_MEM, "65536"}}},
    {"HEALTHD_LISTEN IPv6",
     false,
     NULL,
     {"HEALTHD_LISTEN=[::1]:9000"},
     {0},
     DEFAULT_NAMES,
     {{NULL, D_LISTEN, "[::1]:9000"}}},
    {"empty variables mean unset",
     false,
     NULL,
     {"POSTGRES_HOST=", "POSTGRES_PORT=", "POSTGRES_USER=", "POSTGRES_DB=", "REDIS_HOST=",
      "REDIS_PORT=", "REDIS_USERNAME=", "HEALTHD_LISTEN=", "HEALTHD_INTERVAL=", "CELERY_QUEUES="},
     {0},
     DEFAULT_NAMES,
     {{"postgres", F_HOST, "postgres"},
      {"postgres", F_PORT, "5432"},
      {"postgres", F_USER, "hdms"},
      {"postgres", F_DBNAME, "hdms"},
      {"redis-cache", F_HOST, "redis"},
      {"redis-cache", F_PORT, "6379"},
      {"redis-cache", F_USER, "(null)"},
      {"redis-celery", F_QUEUES, "celery"},
      {NULL, D_LISTEN, "127.0.0.1:8080"},
      {NULL, D_INTERVAL, "2000"}}},
    /* Compose passes "REDIS_PASSWORD=" for a Redis without a password (SPEC
     * 9: optional password); the default is none, so no AUTH is sent. */
    {"empty REDIS_PASSWORD means none",
     false,
     NULL,
     {"REDIS_PASSWORD="},
     {0},
     DEFAULT_NAMES,
     {{"redis-cache", F_PASSWORD, "(null)"}, {"redis-celery", F_PASSWORD, "(null)"}}},
    {"SPEC 6 sample file",
     false,
     SPEC_SAMPLE,
     {NULL},
     {0},
     "orders-cache,reporting-db",
     {{"orders-cache", F_KIND, "redis"},
      {"orders-cache", F_HOST, "10.0.0.7"},
      {"orders-cache", F_PORT, "6379"},
      {"orders-cache", F_DB, "3"},
      {"orders-cache", F_PASSWORD, "redis-file-secret"},
      {"orders-cache", F_LATENCY, "20"},
      {"orders-cache", F_CRITICAL, "no"},
      {"orders-cache", F_INTERVAL, "2000"},
      {"orders-cache", F_TIMEOUT, "1000"},
      {"orders-cache", F_RISE, "2"},
      {"reporting-db", F_KIND, "postgres"},
      {"reporting-db", F_HOST, "reports.internal"},
      {"reporting-db", F_PORT, "5432"},
      {"reporting-db", F_DBNAME, "reports"},
      {"reporting-db", F_USER, "healthcheck"},
      {"reporting-db", F_PASSWORD, "pg-file-secret"},
      {"reporting-db", F_TIMEOUT, "1500"},
      {"reporting-db", F_RISE, "3"},
      {"reporting-db", F_FALL, "2"},
      {"reporting-db", F_CRITICAL, "yes"},
      {NULL, D_LISTEN, "0.0.0.0:8080"},
      {NULL, D_FILE, "@D/test.conf"}}},
    {"file targets ignore the stack's variables",
     false,
     SPEC_SAMPLE,
     {"REDIS_PASSWORD_FILE=@D/missing", "POSTGRES_PORT=notaport"},
     {0},
     "orders-cache,reporting-db",
     {{"orders-cache", F_PASSWORD, "redis-file-secret"}}},
    {"default_targets = yes keeps the default set",
     false,
     "[daemon]\n"
     "default_targets = yes\n"
     "[target orders-cache]\n"
     "kind = redis\n"
     "host = 10.0.0.7\n"
     "db = 3\n",
     {"REDIS_HOST=cache.internal"},
     {0},
     "orders-cache," DEFAULT_NAMES,
     {{"orders-cache", F_HOST, "10.0.0.7"},
      {"orders-cache", F_DB, "3"},
      {"redis-cache", F_HOST, "cache.internal"},
      {"redis-celery", F_QUEUES, "celery"},
      {NULL, D_DEFAULT_TARGETS, "yes"}}},
    {"default_targets = yes, a file target replaces its namesake",
     false,
     "[daemon]\n"
     "default_targets = yes\n"
     "[target redis-cache]\n"
     "kind = redis\n"
     "host = other\n"
     "db = 5\n",
     {NULL},
     {0},
     DEFAULT_NAMES,
     {{"redis-cache", F_HOST, "other"},
      {"redis-cache", F_DB, "5"},
      {"redis-channels", F_HOST, "redis"}}},
    {"default_targets = no with no targets keeps the defaults",
     false,
     "[daemon]\n"
     "default_targets = no\n",
     {NULL},
     {0},
     DEFAULT_NAMES,
     {{"postgres", F_HOST, "postgres"}}},
    {"a [daemon]-only file keeps the defaults and sets their timings",
     false,
     "# timings for the default stack\n"
     "[daemon]\n"
     "interval = 3s\n"
     "retry_interval = 500ms\n"
     "rise = 5\n"
     "fall = 1\n",
     {NULL},
     {0},
     DEFAULT_NAMES,
     {{"postgres", F_INTERVAL, "3000"},
      {"postgres", F_TIMEOUT, "1000"},
      {"postgres", F_RETRY, "500"},
      {"redis-celery", F_RISE, "5"},
      {"redis-celery", F_FALL, "1"},
      {NULL, D_FILE, "@D/test.conf"}}},
    {"[daemon] timings are the targets' defaults, target keys win",
     false,
     "[daemon]\n"
     "interval = 4s\n"
     "timeout = 1s\n"
     "retry_interval = 100ms\n"
     "rise = 3\n"
     "fall = 5\n"
     "latency_target = 30ms\n"
     "[target a]\n"
     "kind = redis\n"
     "[target b]\n"
     "kind = pgbouncer\n"
     "interval = 10s\n"
     "timeout = 3s\n"
     "retry_interval = 1s\n"
     "rise = 1\n"
     "latency_target = 5ms\n",
     {NULL},
     {0},
     "a,b",
     {{"a", F_INTERVAL, "4000"},
      {"a", F_TIMEOUT, "1000"},
      {"a", F_RETRY, "100"},
      {"a", F_RISE, "3"},
      {"a", F_FALL, "5"},
      {"a", F_LATENCY, "30"},
      {"a", F_PORT, "6379"},
      {"a", F_CRITICAL, "yes"},
      {"b", F_INTERVAL, "10000"},
      {"b", F_TIMEOUT, "3000"},
      {"b", F_RETRY, "1000"},
      {"b", F_RISE, "1"},
      {"b", F_FALL, "5"},
      {"b", F_LATENCY, "5"},
      {"b", F_PORT, "6432"}}},
    {"target timeout unset: min(1s, interval / 2) of the target's interval",
     false,
     "[target a]\n"
     "kind = redis\n"
     "interval = 600ms\n"
     "[target b]\n"
     "kind = postgres\n"
     "interval = 1m\n",
     {NULL},
     {0},
     "a,b",
     {{"a", F_TIMEOUT, "300"}, {"b", F_TIMEOUT, "1000"}}},
    {"every key with a value",
     false,
     "[target p]\n"
     "kind = postgres\n"
     "host = db.internal\n"
     "port = 15432\n"
     "dbname = app\n"
     "user = monitor\n"
     "password = pw1\n"
     "sslmode = verify-full\n"
     "app_user = django\n"
     "expect_primary = no\n"
     "connections_warn = 90%\n"
     "critical = off\n"
     "[target b]\n"
     "kind = pgbouncer\n"
     "admin_user = adm\n"
     "admin_password = apw\n"
     "sslmode = disable\n"
     "maxwait_warn = 500ms\n"
     "clients_warn = 0.75\n"
     "pool_size_min = 10\n"
     "pool_size_max = 20\n"
     "[target r]\n"
     "kind = redis\n"
     "db = 15\n"
     "queues = q1, q2\n"
     "queue_warn = 50\n"
     "headroom_warn = 20%\n"
     "user = acl\n"
     "password = pw2\n"
     "[target s]\n"
     "kind = pgbouncer\n"
     "admin_password_file = @D/admin_pw\n",
     {NULL},
     {0},
     "p,b,r,s",
     {{"p", F_HOST, "db.internal"},  {"p", F_PORT, "15432"},
      {"p", F_DBNAME, "app"},        {"p", F_USER, "monitor"},
      {"p", F_PASSWORD, "pw1"},      {"p", F_SSLMODE, "verify-full"},
      {"p", F_APP_USER, "django"},   {"p", F_EXPECT_PRIMARY, "no"},
      {"p", F_CONN_WARN, "0.9"},     {"p", F_CRITICAL, "no"},
      {"b", F_ADMIN_USER, "adm"},    {"b", F_ADMIN_PASSWORD, "apw"},
      {"b", F_SSLMODE, "disable"},   {"b", F_MAXWAIT, "500"},
      {"b", F_CLIENTS_WARN, "0.75"}, {"b", F_POOL_MIN, "10"},
      {"b", F_POOL_MAX, "20"},       {"r", F_DB, "15"},
      {"r", F_QUEUES, "q1,q2"},      {"r", F_QUEUE_WARN, "50"},
      {"r", F_HEADROOM, "0.2"},      {"r", F_USER, "acl"},
      {"r", F_PASSWORD, "pw2"},      {"s", F_ADMIN_PASSWORD, "admin-file-secret"}}},
    {"[daemon] keys",
     false,
     "[daemon]\n"
     "listen = [::]:8081\n"
     "log_format = json\n"
     "log_level = warn\n"
     "startup_target = 20s\n"
     "reconnect_target = 3s\n"
     "latency_target = 30ms\n"
     "status_token_file = @D/token\n"
     "nameservers = 10.0.0.2,10.0.0.3:5353\n"
     "http_connection_timeout = 5s\n"
     "http_max_connections = 100\n"
     "http_max_connections_per_ip = 10\n"
     "http_memory_limit = 131072\n",
     {NULL},
     {0},
     DEFAULT_NAMES,
     {{NULL, D_LISTEN, "[::]:8081"},
      {NULL, D_LOGFMT, "json"},
      {NULL, D_LOGLEVEL, "warn"},
      {NULL, D_STARTUP, "20000"},
      {NULL, D_RECONNECT, "3000"},
      {NULL, D_LATENCY, "30"},
      {"postgres", F_LATENCY, "30"},
      {NULL, D_TOKEN, "token-file-secret"},
      {NULL, D_NAMESERVERS, "10.0.0.2,10.0.0.3:5353"},
      {NULL, D_HTTP_TIMEOUT, "5000"},
      {NULL, D_HTTP_MAX, "100"},
      {NULL, D_HTTP_PER_IP, "10"},
      {NULL, D_HTTP_MEM, "131072"}}},
    {"CRLF line endings and comments",
     false,
     "; written on Windows\r\n"
     "[daemon]\r\n"
     "listen = 0.0.0.0:8082\r\n"
     "# a comment\r\n"
     "[target a]\r\n"
     "kind = redis ; inline comment\r\n"
     "host = h\r\n",
     {NULL},
     {0},
     "a",
     {{NULL, D_LISTEN, "0.0.0.0:8082"}, {"a", F_KIND, "redis"}, {"a", F_HOST, "h"}}},
    {"a target name of 63 characters",
     false,
     "[target a123456789b123456789c123456789d123456789e123456789f123456789g12]\n"
     "kind = redis\n",
     {NULL},
     {0},
     "a123456789b123456789c123456789d123456789e123456789f123456789g12",
     {{"a123456789b123456789c123456789d123456789e123456789f123456789g12", F_KIND, "redis"}}},
    {"a 198-byte line is accepted",
     false,
     "[target a]\n"
     "kind = redis\n"
     "host = " A191 "\n",
     {NULL},
     {0},
     "a",
     {{"a", F_HOST, A191}}},
    /* Precedence: defaults < file < environment < command line. */
    {"precedence: file over defaults",
     false,
     "[daemon]\n"
     "listen = 0.0.0.0:1111\n"
     "log_format = json\n"
     "log_level = debug\n"
     "interval = 5s\n"
     "rise = 4\n",
     {NULL},
     {0},
     DEFAULT_NAMES,
     {{NULL, D_LISTEN, "0.0.0.0:1111"},
      {NULL, D_LOGFMT, "json"},
      {NULL, D_LOGLEVEL, "debug"},
      {"postgres", F_INTERVAL, "5000"},
      {"postgres", F_RISE, "4"}}},
    {"precedence: environment over file",
     false,
     "[daemon]\n"
     "listen = 0.0.0.0:1111\n"
     "log_format = json\n"
     "log_level = debug\n"
     "interval = 5s\n"
     "rise = 4\n",
     {"HEALTHD_LISTEN=0.0.0.0:2222", "HEALTHD_LOG_LEVEL=warn", "HEALTHD_INTERVAL=3s"},
     {0},
     DEFAULT_NAMES,
     {{NULL, D_LISTEN, "0.0.0.0:2222"},
      {NULL, D_LOGFMT, "json"},
      {NULL, D_LOGLEVEL, "warn"},
      {"postgres", F_INTERVAL, "3000"},
      {"postgres", F_RISE, "4"}}},
    {"precedence: command line over environment",
     false,
     "[daemon]\n"
     "listen = 0.0.0.0:1111\n"
     "log_format = json\n"
     "log_level = debug\n"
     "interval = 5s\n"
     "rise = 4\n",
     {"HEALTHD_LISTEN=0.0.0.0:2222", "HEALTHD_LOG_LEVEL=warn", "HEALTHD_LOG_FORMAT=json",
      "HEALTHD_INTERVAL=3s"},
     {"0.0.0.0:3333", "text", "error"},
     DEFAULT_NAMES,
     {{NULL, D_LISTEN, "0.0.0.0:3333"},
      {NULL, D_LOGFMT, "text"},
      {NULL, D_LOGLEVEL, "error"},
      {"postgres", F_INTERVAL, "3000"},
      {"postgres", F_RISE, "4"}}},
    {"precedence: command line over defaults",
     false,
     NULL,
     {NULL},
     {"[::1]:8090", "json", "debug"},
     DEFAULT_NAMES,
     {{NULL, D_LISTEN, "[::1]:8090"}, {NULL, D_LOGFMT, "json"}, {NULL, D_LOGLEVEL, "debug"}}},
};

START_TEST(test_load)
{
        const struct load_case *lc = &load_cases[_i];
        char err[1024] = "";
        struct config *cfg;
        if (lc->null_env) {
                ck_assert_ptr_null(lc->file);
                struct config_overrides ov = {0};
                ov.listen = lc->ov.listen;
                ov.log_format = lc->ov.log_format;
                ov.log_level = lc->ov.log_level;
                cfg = hold(config_load(&ov, NULL, err, sizeof(err)));
        } else {
                cfg = load(lc->file, lc->env, MAX_ENV, &lc->ov, err, sizeof(err));
        }
        ck_assert_msg(cfg != NULL, "%s: config_load failed: %s", lc->name, err);
        check_and_free(cfg, lc->names, lc->ex, (size_t)N(lc->ex), lc->name);
}
END_TEST

/* The default set comes in the order of SPEC 2's table; a NULL ov works. */
START_TEST(test_default_order)
{
        static const char *const names[] = {"postgres", "pgbouncer", "redis-cache",
                                            "redis-channels", "redis-celery"};
        static const enum target_kind kinds[] = {KIND_POSTGRES, KIND_PGBOUNCER, KIND_REDIS,
                                                 KIND_REDIS, KIND_REDIS};
        char *empty[] = {NULL};
        char err[512];
        struct config *cfg = hold(config_load(NULL, empty, err, sizeof(err)));
        ck_assert_msg(cfg != NULL, "%s", err);
        ck_assert_uint_eq(cfg->ntargets, 5);
        for (size_t i = 0; i < 5; i++) {
                ck_assert_str_eq(cfg->targets[i].name, names[i]);
                ck_assert_int_eq(cfg->targets[i].kind, kinds[i]);
                ck_assert(cfg->targets[i].critical);
        }
        ck_assert_ptr_null(config_find_target(cfg, "nope"));
        release(cfg);
}
END_TEST

/* The process's own environment is never read. */
START_TEST(test_ignores_process_environment)
{
        ck_assert_int_eq(setenv("POSTGRES_HOST", "from-process", 1), 0);
        ck_assert_int_eq(setenv("HEALTHD_LISTEN", "0.0.0.0:1", 1), 0);
        ck_assert_int_eq(setenv("REDIS_PASSWORD_FILE", "/nonexistent/x", 1), 0);
        char *empty[] = {NULL};
        char err[512];
        for (int k = 0; k < 2; k++) {
                struct config *cfg = hold(config_load(NULL, k ? empty : NULL, err, sizeof(err)));
                ck_assert_msg(cfg != NULL, "%s", err);
                ck_assert_str_eq(config_find_target(cfg, "postgres")->host, "postgres");
                ck_assert_str_eq(cfg->listen_host, "127.0.0.1");
                ck_assert_int_eq(cfg->listen_port, 8080);
                release(cfg);
        }
        unsetenv("POSTGRES_HOST");
        unsetenv("HEALTHD_LISTEN");
        unsetenv("REDIS_PASSWORD_FILE");
}
END_TEST

/* The sample configuration shipped in etc/ loads (tests run from the top
 * directory, as `make unit` does). */
START_TEST(test_sample_file)
{
        static const char *const paths[] = {"etc/hdms-healthd.conf", "../../etc/hdms-healthd.conf"};
        const char *path = NULL;
        for (int k = 0; k < N(paths) && path == NULL; k++)
                if (access(paths[k], R_OK) == 0)
                        path = paths[k];
        ck_assert_msg(path != NULL, "etc/hdms-healthd.conf not found");
        struct config_overrides ov = {.file = path};
        char *empty[] = {NULL};
        char err[1024] = "";
        struct config *cfg = hold(config_load(&ov, empty, err, sizeof(err)));
        ck_assert_msg(cfg != NULL, "%s", err);
        static const struct expect ex[] = {
            {"postgres", F_KIND, "postgres"},   {"postgres", F_TIMEOUT, "1000"},
            {"pgbouncer", F_POOL_MIN, "25"},    {"pgbouncer", F_POOL_MAX, "50"},
            {"redis-cache", F_DB, "0"},         {"redis-channels", F_DB, "1"},
            {"redis-celery", F_DB, "2"},        {"redis-celery", F_QUEUES, "celery"},
            {NULL, D_LISTEN, "127.0.0.1:8080"}, {NULL, D_HTTP_PER_IP, "32"},
        };
        check_and_free(cfg, DEFAULT_NAMES, ex, (size_t)N(ex), path);
}
END_TEST

/* ---- line lengths -------------------------------------------------------- */

static const struct {
        size_t len; /* bytes of line 3 before its newline */
        bool ok;
} line_cases[] = {{20, true},   {150, true},   {198, true},  {201, false},
                  {250, false}, {1000, false}, {5000, false}};

START_TEST(test_line_length)
{
        size_t len = line_cases[_i].len;
        char *text = malloc(len + 128);
        ck_assert_ptr_nonnull(text);
        int off = snprintf(text, len + 128, "[target a]\nkind = redis\nhost = ");
        memset(text + off, 'h', len - 7);
        snprintf(text + off + len - 7, 64, "\nport = 6380\n");
        char err[1024] = "";
        struct config *cfg = load(text, NULL, 0, NULL, err, sizeof(err));
        free(text);
        if (line_cases[_i].ok) {
                ck_assert_msg(cfg != NULL, "%zu bytes refused: %s", len, err);
                ck_assert_uint_eq(strlen(config_find_target(cfg, "a")->host), len - 7);
                ck_assert_int_eq(config_find_target(cfg, "a")->port, 6380);
                release(cfg);
        } else {
                ck_assert_msg(cfg == NULL, "%zu bytes accepted", len);
                char where[300];
                snprintf(where, sizeof(where), "%s/test.conf:3:", tmpdir);
                ck_assert_msg(strstr(err, where) != NULL, "'%s' does not name '%s'", err, where);
        }
}
END_TEST

/* ---- errors in the file -------------------------------------------------- */

static const struct {
        const char *text;
        int lines[3]; /* acceptable line numbers; the first is the best */
        const char *must[3];
} file_errors[] = {
    /* unknown keys */
    {"[daemon]\nlisten = 127.0.0.1:8080\ncolour = blue\n", {3}, {"colour"}},
    {"[target a]\nkind = redis\nhots = x\n", {3}, {"hots"}},
    {"[daemon]\nkind = redis\n", {2}, {"kind"}},
    {"[target a]\nkind = redis\nlisten = :8080\n", {3}, {"listen"}},
    /* unknown sections: the line of the header */
    {"[daemon]\ninterval = 2s\n\n[deamon]\nlisten = :8080\n", {4}, {"deamon"}},
    {"[targets a]\nkind = redis\n", {1}, {"targets a"}},
    {"listen = :8080\n", {1}, {"listen"}},
    /* bad target names */
    {"[target bad.name]\nkind = redis\n", {1}, {"bad.name"}},
    {"[target two words]\nkind = redis\n", {1}, {"two words"}},
    {"[target a123456789b123456789c123456789d123456789e123456789f123456789g123]\nkind = redis\n",
     {1},
     {"a123456789b123456789c123456789d123456789e123456789f123456789g123"}},
    /* duplicate targets, apart and adjacent */
    {"[target orders-cache]\nkind = redis\n[target other]\nkind = redis\n"
     "[target orders-cache]\nkind = redis\n",
     {5},
     {"orders-cache"}},
    {"[target orders-cache]\nkind = redis\n[target orders-cache]\nhost = other\n",
     {3},
     {"orders-cache"}},
    /* duplicate keys, also the indented line inih takes as a continuation */
    {"[target a]\nkind = redis\nport = 6379\nport = 6380\n", {4}, {"port"}},
    {"[daemon]\nlisten = :1\ninterval = 2s\nlisten = :2\n", {4}, {"listen"}},
    {"[target a]\nkind = redis\nport = 6380\n  db = 3\n", {4}, {"port", "indented"}},
    /* missing kind, also for an empty section */
    {"[target a]\nhost = x\nport = 1\n", {1}, {"kind"}},
    {"[target a]\n; no kind here\n\nhost = x\n", {1}, {"kind"}},
    {"[daemon]\ninterval = 2s\n[target empty]\n", {3}, {"empty", "kind"}},
    {"[target empty]\n[target b]\nkind = redis\n", {1}, {"empty", "kind"}},
    /* keys of another kind */
    {"[target a]\nkind = postgres\ndb = 3\n", {3}, {"db"}},
    {"[target a]\nqueues = x\nkind = pgbouncer\n", {2}, {"queues"}},
    {"[target a]\nkind = redis\nadmin_user = x\n", {3}, {"admin_user"}},
    {"[target a]\nkind = redis\nsslmode = require\n", {3}, {"sslmode"}},
    {"[target a]\nkind = pgbouncer\napp_user = x\n", {3}, {"app_user"}},
    {"[target a]\nkind = postgres\nmaxwait_warn = 1s\n", {3}, {"maxwait_warn"}},
    {"[target a]\nkind = pgbouncer\nheadroom_warn = 0.1\n", {3}, {"headroom_warn"}},
    {"[target a]\nkind = mysql\n", {2}, {"kind", "mysql"}},
    /* bad durations */
    {"[daemon]\ninterval = 2 s\n", {2}, {"interval"}},
    {"[daemon]\ninterval = 5\n", {2}, {"interval"}},
    {"[target a]\nkind = redis\ntimeout = -1s\n", {3}, {"timeout"}},
    {"[target a]\nkind = redis\nretry_interval = 1441m\n", {3}, {"retry_interval"}},
    {"[target a]\nkind = redis\nlatency_target = fast\n", {3}, {"latency_target"}},
    {"[target a]\nkind = pgbouncer\nmaxwait_warn = 1x\n", {3}, {"maxwait_warn"}},
    {"[daemon]\nhttp_connection_timeout = 10\n", {2}, {"http_connection_timeout"}},
    /* 0 would turn libmicrohttpd's idle timeout off; it counts whole seconds */
    {"[daemon]\nhttp_connection_timeout = 0\n", {2}, {"http_connection_timeout", "1s"}},
    {"[daemon]\nhttp_connection_timeout = 999ms\n", {2}, {"http_connection_timeout", "1s"}},
    /* bad booleans */
    {"[target a]\nkind = redis\ncritical = maybe\n", {3}, {"critical"}},
    {"[daemon]\ndefault_targets = sure\n", {2}, {"default_targets"}},
    {"[target a]\nkind = postgres\nexpect_primary = 2\n", {3}, {"expect_primary"}},
    /* bad ports */
    {"[target a]\nkind = redis\nport = 0\n", {3}, {"port"}},
    {"[target a]\nkind = redis\nport = 65536\n", {3}, {"port"}},
    {"[target a]\nkind = redis\nport = http\n", {3}, {"port"}},
    /* integers out of range */
    {"[target a]\nkind = redis\ndb = 16\n", {3}, {"db"}},
    {"[target a]\nkind = redis\nrise = 0\n", {3}, {"rise"}},
    {"[target a]\nkind = redis\nfall = 101\n", {3}, {"fall"}},
    {"[daemon]\nrise = -1\n", {2}, {"rise"}},
    {"[daemon]\nhttp_max_connections = 0\n", {2}, {"http_max_connections"}},
    {"[daemon]\nhttp_memory_limit = 1024\n", {2}, {"http_memory_limit"}},
    {"[target a]\nkind = pgbouncer\npool_size_min = -1\n", {3}, {"pool_size_min"}},
    {"[target a]\nkind = redis\nqueue_warn = 1.5\n", {3}, {"queue_warn"}},
    /* bad ratios */
    {"[target a]\nkind = postgres\nconnections_warn = 1.5\n", {3}, {"connections_warn"}},
    {"[target a]\nkind = redis\nheadroom_warn = 120%\n", {3}, {"headroom_warn"}},
    {"[target a]\nkind = pgbouncer\nclients_warn = high\n", {3}, {"clients_warn"}},
    /* other bad values */
    {"[target a]\nkind = postgres\nsslmode = required\n", {3}, {"sslmode"}},
    {"[daemon]\nlisten = localhost\n", {2}, {"listen"}},
    {"[daemon]\nlisten = 1.2.3.4:99999\n", {2}, {"listen"}},
    {"[daemon]\nlog_format = xml\n", {2}, {"log_format"}},
    {"[daemon]\nlog_level = verbose\n", {2}, {"log_level"}},
    {"[target a]\nkind = redis\nhost =\n", {3}, {"host"}},
    {"[target a]\nkind = redis\nqueues = a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q\n", {3}, {"queues"}},
    {"[target a]\nkind = redis\nqueues = , ,\n", {3}, {"queues"}},
    /* a queue name the probe would cut, so its metric would stay NaN */
    {"[target a]\nkind = redis\nqueues = celery," A63 "b\n", {3}, {"queues", "63 bytes"}},
    {"[target a]\nkind = redis\nqueues = " A63 "b,celery\n", {3}, {"queues", "63 bytes"}},
    /* timeout >= interval: the line of the key, else of the section */
    {"[target a]\nkind = redis\ninterval = 1s\ntimeout = 1s\n", {4, 1}, {"timeout"}},
    {"[daemon]\ntimeout = 1500ms\n[target a]\nkind = redis\ninterval = 1s\n",
     {5, 3, 2},
     {"timeout"}},
    {"[daemon]\ninterval = 1s\ntimeout = 2s\n", {3, 2}, {"timeout"}},
    /* other rules across keys */
    {"[daemon]\ninterval = 5ms\n", {2}, {"interval"}},
    {"[target a]\nkind = redis\ninterval = 5ms\n", {3, 1}, {"interval"}},
    {"[target a]\nkind = redis\nretry_interval = 0\n", {3, 1}, {"retry_interval"}},
    {"[target b]\nkind = pgbouncer\npool_size_min = 60\n", {3, 1}, {"pool_size_min"}},
    {"[daemon]\nhttp_max_connections = 16\nhttp_max_connections_per_ip = 32\n",
     {3, 2},
     {"http_max_connections_per_ip"}},
    /* syntax: the first bad line wins over later ones */
    {"[daemon]\nlisten = :8080\nthis line has no equals sign\n", {3}, {NULL}},
    {"[daemon]\nlisten = :8080\n[target a\nkind = redis\n", {3}, {NULL}},
    /* long lines, and line numbers after a long-but-valid line */
    {"[target a]\nkind = redis\nhost = " A250 "\n", {3}, {NULL}},
    {"; " A250 "\n[daemon]\nlisten = :8080\n", {1}, {NULL}},
    {"[target a]\nkind = redis\nhost = " A191 "\nbogus = 1\n", {4}, {"bogus"}},
    /* secrets files */
    {"[target a]\nkind = redis\npassword_file = @D/nope\n", {3}, {"password_file", "nope"}},
    {"[target a]\nkind = pgbouncer\nadmin_password_file = @D/nope\n", {3}, {"admin_password_file"}},
    {"[daemon]\nstatus_token_file = @D/nope\n", {2}, {"status_token_file"}},
    /* an empty token would let an empty Bearer token or Basic password in */
    {"[daemon]\nstatus_token =\n", {2}, {"status_token", "empty"}},
    {"[daemon]\nstatus_token_file = @D/empty\n", {2}, {"status_token_file", "empty"}},
    {"[daemon]\nstatus_token_file = @D/newlines\n", {2}, {"status_token_file", "empty"}},
    {"[target a]\nkind = redis\npassword_file = @D/big\n", {3}, {"password_file"}},
    /* TLS (SPEC 13): files readable at load, the key private as libpq wants */
    {"[target a]\nkind = postgres\nsslrootcert = @D/nope\n", {3}, {"sslrootcert", "@D/nope"}},
    {"[target a]\nkind = pgbouncer\nsslrootcert = /dev/null\n", {3}, {"sslrootcert", "regular"}},
    {"[target a]\nkind = postgres\nsslcert = @D/ca.pem\nsslkey = @D/key644\n",
     {4},
     {"sslkey", "group or world"}},
    {"[target a]\nkind = postgres\nsslcert = @D/ca.pem\n", {3, 1}, {"sslcert", "sslkey"}},
    {"[target a]\nkind = postgres\nsslkey = @D/key600\n", {3, 1}, {"sslkey", "sslcert"}},
    {"[target a]\nkind = redis\nsslrootcert = @D/ca.pem\n", {3}, {"sslrootcert"}},
    {"[target a]\nkind = redis\ntls = yes\n", {3}, {"tls", "hiredis 0.14.1"}},
    {"[target a]\nkind = postgres\ncert_expiry_warn = 3651d\n", {3}, {"cert_expiry_warn"}},
    {"[target a]\nkind = postgres\ncert_expiry_warn = 14\n", {3}, {"cert_expiry_warn"}},
    {"[daemon]\ntls_cert_file = @D/nope\n", {2}, {"tls_cert_file"}},
    {"[daemon]\ntls_cert_file = @D/ca.pem\n", {2}, {"tls_cert_file", "tls_key_file"}},
    {"[daemon]\ntls_key_file = @D/key600\n", {2}, {"tls_key_file", "tls_cert_file"}},
    /* notifiers (SPEC 12) */
    {"[notify a]\nurl = http://x\n", {1}, {"[notify a]", "kind"}},
    {"[notify a]\nkind = webhook\n", {1}, {"[notify a]", "url"}},
    {"[notify a]\nkind = slack\n", {2}, {"kind", "alertmanager or webhook"}},
    {"[target r]\nkind = redis\n[notify a]\nkind = webhook\nurl = http://x\ntargets = r, nope\n",
     {6},
     {"targets", "'nope'"}},
    {"[notify a]\nkind = webhook\nurl = ftp://x/y\n", {3}, {"url", "http"}},
    {"[notify a]\nkind = webhook\nurl = http://x\n[notify a]\nkind = webhook\n",
     {4},
     {"defined twice"}},
    {"[notify a]\nkind = webhook\nurl = http://x\nqueue_max = 0\n", {4}, {"queue_max"}},
    {"[notify a]\nkind = webhook\nurl = http://x\nhost = y\n", {4}, {"host", "unknown"}},
    {"[notify a b]\nkind = webhook\n", {1}, {"a b"}},
    {"[notify a]\nkind = webhook\nurl_file = @D/missing\n", {3}, {"url_file"}},
    {"[notify a]\nkind = webhook\nurl = http://x\nbearer_token =\n", {4}, {"bearer_token"}},
    {"[daemon]\nexternal_url = healthd.example\n", {2}, {"external_url"}},
};

/* The file text on one line ("|" for newlines), for failure messages. */
static const char *oneline(const char *text, char *buf, size_t len)
{
        size_t o = 0;
        for (; *text != '\0' && o + 1 < len; text++)
                buf[o++] = *text == '\n' ? '|' : *text;
        buf[o] = '\0';
        return buf;
}

START_TEST(test_file_error)
{
        char err[1024] = "", text[100];
        const char *row = oneline(file_errors[_i].text, text, sizeof(text));
        struct config *cfg = load(file_errors[_i].text, NULL, 0, NULL, err, sizeof(err));
        bool accepted = cfg != NULL;
        release(cfg);
        ck_assert_msg(!accepted, "row %d (%s): accepted", _i, row);
        /* file:LINE: with one of the acceptable lines */
        bool found = false;
        for (int k = 0; k < 3 && file_errors[_i].lines[k] > 0; k++) {
                char where[300];
                snprintf(where, sizeof(where), "%s/test.conf:%d:", tmpdir,
                         file_errors[_i].lines[k]);
                if (strstr(err, where) != NULL)
                        found = true;
        }
        ck_assert_msg(found, "row %d (%s): '%s' does not name test.conf:%d:", _i, row, err,
                      file_errors[_i].lines[0]);
        for (int k = 0; k < 3 && file_errors[_i].must[k] != NULL; k++) {
                char *m = expand(file_errors[_i].must[k]);
                bool named = strstr(err, m) != NULL;
                free(m);
                ck_assert_msg(named, "row %d (%s): '%s' does not name '%s'", _i, row, err,
                              file_errors[_i].must[k]);
        }
}
END_TEST

START_TEST(test_file_missing)
{
        char path[256], err[1024] = "";
        snprintf(path, sizeof(path), "%s/none.conf", tmpdir);
        struct config_overrides ov = {.file = path};
        char *empty[] = {NULL};
        ck_assert_ptr_null(hold(config_load(&ov, empty, err, sizeof(err))));
        ck_assert_msg(strstr(err, path) != NULL, "'%s' does not name the file", err);
}
END_TEST

/* ---- errors in the environment and on the command line ------------------- */

static const struct {
        const char *env[4];
        struct ovr ov;
        const char *must;
} env_errors[] = {
    {{"REDIS_PASSWORD_FILE=@D/missing"}, {0}, "REDIS_PASSWORD_FILE"},
    {{"POSTGRES_PASSWORD_FILE=@D/missing"}, {0}, "POSTGRES_PASSWORD_FILE"},
    {{"HEALTHD_PG_PASSWORD_FILE=@D/missing"}, {0}, "HEALTHD_PG_PASSWORD_FILE"},
    {{"PGBOUNCER_ADMIN_PASSWORD_FILE=@D/missing"}, {0}, "PGBOUNCER_ADMIN_PASSWORD_FILE"},
    {{"HEALTHD_STATUS_TOKEN_FILE=@D/missing"}, {0}, "HEALTHD_STATUS_TOKEN_FILE"},
    {{"HEALTHD_STATUS_TOKEN_FILE=@D/empty"}, {0}, "HEALTHD_STATUS_TOKEN_FILE: '"},
    {{"HEALTHD_STATUS_TOKEN_FILE=@D/newlines"}, {0}, "HEALTHD_STATUS_TOKEN_FILE: '"},
    {{"HEALTHD_HTTP_CONNECTION_TIMEOUT=0"}, {0}, "HEALTHD_HTTP_CONNECTION_TIMEOUT: '0'"},
    {{"REDIS_PASSWORD_FILE=@D/big"}, {0}, "REDIS_PASSWORD_FILE"},
    {{"REDIS_PASSWORD=ok", "REDIS_PASSWORD_FILE=@D/missing"}, {0}, "REDIS_PASSWORD_FILE"},
    {{"POSTGRES_PORT=abc"}, {0}, "POSTGRES_PORT"},
    {{"PGBOUNCER_PORT=0"}, {0}, "PGBOUNCER_PORT"},
    {{"HEALTHD_WEBHOOK_URL=hooks.example/x"}, {0}, "HEALTHD_WEBHOOK_URL"},
    {{"HEALTHD_ALERTMANAGER_URL_FILE=@D/missing"}, {0}, "HEALTHD_ALERTMANAGER_URL_FILE"},
    {{"REDIS_PORT=70000"}, {0}, "REDIS_PORT"},
    {{"HEALTHD_INTERVAL=fast"}, {0}, "HEALTHD_INTERVAL"},
    {{"HEALTHD_INTERVAL=5ms"}, {0}, "environment: HEALTHD_INTERVAL (interval): must be at"},
    {{"HEALTHD_TIMEOUT=3s"}, {0}, "environment: HEALTHD_TIMEOUT (timeout): must be shorter"},
    {{"HEALTHD_INTERVAL=1s", "HEALTHD_TIMEOUT=1s"}, {0}, "timeout"},
    {{"HEALTHD_LISTEN=nocolon"}, {0}, "HEALTHD_LISTEN"},
    {{"HEALTHD_LOG_LEVEL=loud"}, {0}, "HEALTHD_LOG_LEVEL"},
    {{"HEALTHD_LOG_FORMAT=xml"}, {0}, "HEALTHD_LOG_FORMAT"},
    {{"HEALTHD_RISE=0"}, {0}, "HEALTHD_RISE"},
    {{"CELERY_QUEUES=,,,"}, {0}, "CELERY_QUEUES"},
    {{"CELERY_QUEUES=a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q"}, {0}, "CELERY_QUEUES"},
    {{"CELERY_QUEUES=celery," A63 "b"}, {0}, "CELERY_QUEUES: queue name"},
    {{"HEALTHD_HTTP_MAX_CONNECTIONS_PER_IP=300"}, {0}, "HEALTHD_HTTP_MAX_CONNECTIONS_PER_IP"},
    {{"POSTGRES_SSLMODE=verify"}, {0}, "POSTGRES_SSLMODE"},
    {{"PGBOUNCER_SSLMODE=on"}, {0}, "PGBOUNCER_SSLMODE"},
    {{"POSTGRES_SSLROOTCERT=@D/nope"}, {0}, "POSTGRES_SSLROOTCERT: cannot read"},
    {{"PGBOUNCER_SSLROOTCERT=@D/nope"}, {0}, "PGBOUNCER_SSLROOTCERT: cannot read"},
    {{"HEALTHD_TLS_CERT_FILE=@D/ca.pem"}, {0}, "tls_key_file"},
    {{"HEALTHD_TLS_KEY_FILE=@D/nope"}, {0}, "HEALTHD_TLS_KEY_FILE"},
    {{NULL}, {"nocolon", NULL, NULL}, "--listen"},
    {{NULL}, {"127.0.0.1:0", NULL, NULL}, "--listen"},
    {{NULL}, {NULL, "xml", NULL}, "--log-format"},
    {{NULL}, {NULL, NULL, "loud"}, "--log-level"},
};

START_TEST(test_env_error)
{
        char err[1024] = "";
        struct config *cfg = load(NULL, env_errors[_i].env, N(env_errors[_i].env),
                                  &env_errors[_i].ov, err, sizeof(err));
        bool accepted = cfg != NULL;
        release(cfg);
        ck_assert_msg(!accepted, "row %d: accepted", _i);
        ck_assert_msg(strstr(err, env_errors[_i].must) != NULL, "row %d: '%s' does not name '%s'",
                      _i, err, env_errors[_i].must);
}
END_TEST

/* HEALTHD_ALERTMANAGER_URL / HEALTHD_WEBHOOK_URL make notifiers with SPEC
 * 12's defaults; empty is off; a file section of the same name gets the
 * variable's URL (the environment wins, as for every key). */
START_TEST(test_notify_env)
{
        char err[1024] = "";
        const char *env[] = {"HEALTHD_WEBHOOK_URL=http://h:8000/x",
                             "HEALTHD_ALERTMANAGER_URL=", "HEALTHD_INSTANCE=box",
                             "HEALTHD_EXTERNAL_URL=https://hd.example"};
        struct config *cfg = load(NULL, env, N(env), NULL, err, sizeof(err));
        ck_assert_msg(cfg != NULL, "%s", err);
        ck_assert_int_eq(cfg->nnotifiers, 1);
        const struct notify_conf *n = &cfg->notifiers[0];
        ck_assert_str_eq(n->name, "webhook");
        ck_assert_int_eq(n->kind, NOTIFY_WEBHOOK);
        ck_assert_str_eq(n->url, "http://h:8000/x");
        ck_assert_ptr_null(n->bearer_token);
        ck_assert_ptr_null(n->targets);
        ck_assert_int_eq(n->min_duration_ms, 0);
        ck_assert(!n->notify_warn);
        ck_assert(n->send_resolved);
        ck_assert_int_eq(n->timeout_ms, 5000);
        ck_assert_int_eq(n->repeat_interval_ms, 60000);
        ck_assert_int_eq(n->queue_max, 100);
        ck_assert(notify_conf_watches(n, "redis-cache"));
        ck_assert_str_eq(cfg->instance, "box");
        ck_assert_str_eq(cfg->external_url, "https://hd.example");
        release(cfg);

        const char *env2[] = {"HEALTHD_ALERTMANAGER_URL=http://am:9093"};
        cfg = load("[target r]\nkind = redis\n[notify alertmanager]\nkind = alertmanager\n"
                   "url = http://old:9093\ntargets = r\nmin_duration = 2s\n",
                   env2, N(env2), NULL, err, sizeof(err));
        ck_assert_msg(cfg != NULL, "%s", err);
        ck_assert_int_eq(cfg->nnotifiers, 1);
        n = &cfg->notifiers[0];
        ck_assert_str_eq(n->url, "http://am:9093");
        ck_assert_int_eq(n->min_duration_ms, 2000);
        ck_assert(notify_conf_watches(n, "r"));
        ck_assert(!notify_conf_watches(n, "s"));
        ck_assert_ptr_nonnull(cfg->instance); /* the host name */
        ck_assert_ptr_null(cfg->external_url);
        release(cfg);
}
END_TEST

/* ---- config_print -------------------------------------------------------- */

static char *print_config(const struct config *cfg)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        ck_assert_ptr_nonnull(f);
        config_print(cfg, f);
        ck_assert_int_eq(fclose(f), 0);
        return buf;
}

static int count(const char *hay, const char *needle)
{
        int n = 0;
        for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
                n++;
        return n;
}

static const struct {
        const char *file;
        const char *env[8];
        int redacted; /* how many secrets are set */
} canary_cases[] = {
    {NULL,
     {"POSTGRES_PASSWORD=CANARY-s3cret-1", "PGBOUNCER_ADMIN_PASSWORD=CANARY-s3cret-2",
      "REDIS_PASSWORD=CANARY-s3cret-3", "HEALTHD_STATUS_TOKEN=CANARY-s3cret-4"},
     7},
    {NULL,
     {"HEALTHD_PG_PASSWORD=CANARY-s3cret-5", "REDIS_PASSWORD_FILE=@D/canary",
      "PGBOUNCER_ADMIN_PASSWORD_FILE=@D/canary", "HEALTHD_STATUS_TOKEN_FILE=@D/canary"},
     7},
    {NULL, {"HEALTHD_PG_PASSWORD_FILE=@D/canary"}, 2},
    {"[daemon]\n"
     "status_token = CANARY-s3cret-6\n"
     "[target p]\n"
     "kind = postgres\n"
     "password = CANARY-s3cret-7\n"
     "[target b]\n"
     "kind = pgbouncer\n"
     "password_file = @D/canary\n"
     "admin_password = CANARY-s3cret-8\n"
     "[target r]\n"
     "kind = redis\n"
     "user = CANARY-not-a-secret\n"
     "password_file = @D/canary\n",
     {NULL},
     5},
    {"[daemon]\n"
     "status_token_file = @D/canary\n"
     "[target b]\n"
     "kind = pgbouncer\n"
     "admin_password_file = @D/canary\n",
     {NULL},
     2},
    /* a notifier's URL shows its origin only; a token never */
    {"[notify w]\n"
     "kind = webhook\n"
     "url = https://user:s3cret@hooks.example/CANARY-s3cret-9?token=s3cret\n"
     "bearer_token = CANARY-s3cret-10\n",
     {NULL},
     2},
    {NULL,
     {"HEALTHD_WEBHOOK_URL=http://h/s3cret", "HEALTHD_ALERTMANAGER_URL=http://u:s3cret@am:9093"},
     2},
};

START_TEST(test_print_redacts)
{
        char err[1024] = "";
        struct config *cfg = load(canary_cases[_i].file, canary_cases[_i].env,
                                  N(canary_cases[_i].env), NULL, err, sizeof(err));
        ck_assert_msg(cfg != NULL, "%s", err);
        char *text = print_config(cfg);
        release(cfg);
        bool leaked = strstr(text, "s3cret") != NULL;
        int redacted = count(text, "<redacted>");
        if (leaked || redacted != canary_cases[_i].redacted)
                fprintf(stderr, "row %d printed:\n%s\n", _i, text);
        free(text);
        ck_assert_msg(!leaked, "row %d: a secret is printed", _i);
        ck_assert_int_eq(redacted, canary_cases[_i].redacted);
}
END_TEST

/* What --check-config prints is itself a configuration that loads to the
 * same targets. */
static const struct {
        const char *file;
        const char *env[8];
} roundtrip_cases[] = {
    {NULL, {NULL}},
    {NULL,
     {"CELERY_QUEUES=a,b", "HEALTHD_LISTEN=[::1]:9000", "HEALTHD_INTERVAL=1500ms",
      "HEALTHD_NAMESERVERS=10.0.0.2", "REDIS_USERNAME=acl", "POSTGRES_USER=app",
      "HEALTHD_LOG_FORMAT=json", "HEALTHD_RETRY_INTERVAL=1m"}},
    {SPEC_SAMPLE, {NULL}},
    {"[daemon]\n"
     "timeout = 700ms\n"
     "startup_target = 90s\n"
     "[target p]\n"
     "kind = postgres\n"
     "connections_warn = 12.5%\n"
     "expect_primary = no\n"
     "sslmode = verify-ca\n"
     "[target b]\n"
     "kind = pgbouncer\n"
     "clients_warn = 0.333\n"
     "maxwait_warn = 1500ms\n",
     {NULL}},
};

START_TEST(test_print_roundtrip)
{
        char err[1024] = "";
        struct config *a = load(roundtrip_cases[_i].file, roundtrip_cases[_i].env,
                                N(roundtrip_cases[_i].env), NULL, err, sizeof(err));
        ck_assert_msg(a != NULL, "%s", err);
        for (size_t i = 0; i < a->ntargets; i++) {
                /* secrets are redacted, so compare without them */
                free(a->targets[i].password);
                a->targets[i].password = NULL;
        }
        char *text = print_config(a);
        ck_assert_ptr_nonnull(strstr(text, "[daemon]"));
        struct config_overrides ov = {.file = write_conf("printed.conf", text)};
        char *empty[] = {NULL};
        struct config *b = hold(config_load(&ov, empty, err, sizeof(err)));
        ck_assert_msg(b != NULL, "printed config refused: %s\n%s", err, text);
        ck_assert_uint_eq(a->ntargets, b->ntargets);
        for (size_t i = 0; i < a->ntargets; i++)
                ck_assert_msg(target_conf_equal(&a->targets[i], &b->targets[i]),
                              "target %s differs after printing:\n%s", a->targets[i].name, text);
        static const enum fld dfields[] = {
            D_LISTEN,       D_LOGFMT,   D_LOGLEVEL,    D_INTERVAL,  D_TIMEOUT, D_RETRY,
            D_RISE,         D_FALL,     D_STARTUP,     D_RECONNECT, D_LATENCY, D_NAMESERVERS,
            D_HTTP_TIMEOUT, D_HTTP_MAX, D_HTTP_PER_IP, D_HTTP_MEM,
        };
        for (int k = 0; k < N(dfields); k++) {
                char ba[256], bb[256];
                ck_assert_str_eq(daemon_field(a, dfields[k], ba, sizeof(ba)),
                                 daemon_field(b, dfields[k], bb, sizeof(bb)));
        }
        free(text);
        release(a);
        release(b);
}
END_TEST

/* ---- target_conf_equal --------------------------------------------------- */

#define EQ_TEMPLATE                                                                                \
        "[daemon]\n%s\n"                                                                           \
        "[target r]\nkind = redis\n%s\n"                                                           \
        "[target p]\nkind = postgres\n%s\n"                                                        \
        "[target b]\nkind = pgbouncer\n%s\n"

/* Two loads differing in one line of one section ('d' [daemon], 'r', 'p',
 * 'b' a target).  `equal`: whether that target (for 'd': every target) is
 * still the same; the others always are. */
static const struct {
        char section;
        const char *a, *b;
        bool equal;
} eq_cases[] = {
    {'r', "", "", true},
    {'r', "", "host = other", false},
    {'r', "host = a", "host = b", false},
    {'r', "host = a", "host = a", true},
    {'r', "", "port = 6379", true},
    {'r', "", "port = 6380", false},
    {'r', "", "db = 0", true},
    {'r', "", "db = 1", false},
    {'r', "queues = a,b", "queues = b,a", false},
    {'r', "queues = a,b", "queues = a, b", true},
    {'r', "queues = a,b", "queues = a,b,c", false},
    {'r', "", "user = acl", false},
    {'r', "password = x", "password = y", false},
    {'r', "", "password_file = @D/redis_pw", false},
    {'r', "password = redis-file-secret", "password_file = @D/redis_pw", true},
    {'r', "", "interval = 3s", false},
    {'r', "", "interval = 2s", true},
    {'r', "", "timeout = 500ms", false},
    {'r', "", "retry_interval = 100ms", false},
    {'r', "", "rise = 3", false},
    {'r', "", "rise = 2", true},
    {'r', "", "fall = 3", false},
    {'r', "", "latency_target = 20ms", false},
    {'r', "", "critical = no", false},
    {'r', "", "critical = yes", true},
    {'r', "", "queue_warn = 10", false},
    {'r', "", "headroom_warn = 0.2", false},
    {'r', "", "headroom_warn = 10%", true},
    {'p', "", "host = db", false},
    {'p', "", "dbname = other", false},
    {'p', "", "user = other", false},
    {'p', "", "app_user = django", false},
    {'p', "", "expect_primary = no", false},
    {'p', "", "connections_warn = 0.9", false},
    {'p', "", "sslmode = require", false},
    {'p', "", "sslmode = prefer", true},
    {'p', "", "sslrootcert = @D/ca.pem", false},
    {'p', "", "sslcert = @D/ca.pem\nsslkey = @D/key600", false},
    {'p', "", "cert_expiry_warn = 30d", false},
    {'p', "", "cert_expiry_warn = 14d", true},
    {'p', "", "cert_expiry_warn = 336h", true},
    {'b', "", "sslrootcert = @D/ca.pem", false},
    {'b', "", "admin_user = adm", false},
    {'b', "", "admin_password = x", false},
    {'b', "", "maxwait_warn = 2s", false},
    {'b', "", "clients_warn = 0.5", false},
    {'b', "", "pool_size_min = 10", false},
    {'b', "", "pool_size_max = 40", false},
    {'d', "", "interval = 3s", false},
    {'d', "", "rise = 3", false},
    {'d', "", "latency_target = 10ms", false},
    {'d', "", "listen = 0.0.0.0:9999", true},
    {'d', "", "log_level = debug", true},
    {'d', "", "retry_interval = 250ms", true},
};

static struct config *load_eq(const char *sec_line, char section)
{
        char text[1024];
        snprintf(text, sizeof(text), EQ_TEMPLATE, section == 'd' ? sec_line : "",
                 section == 'r' ? sec_line : "", section == 'p' ? sec_line : "",
                 section == 'b' ? sec_line : "");
        char err[1024] = "";
        struct config *cfg = load(text, NULL, 0, NULL, err, sizeof(err));
        ck_assert_msg(cfg != NULL, "%s", err);
        ck_assert_uint_eq(cfg->ntargets, 3);
        return cfg;
}

START_TEST(test_target_conf_equal)
{
        struct config *a = load_eq(eq_cases[_i].a, eq_cases[_i].section);
        struct config *b = load_eq(eq_cases[_i].b, eq_cases[_i].section);
        for (size_t i = 0; i < 3; i++) {
                const struct target_conf *ta = &a->targets[i], *tb = &b->targets[i];
                ck_assert_str_eq(ta->name, tb->name);
                bool changed = eq_cases[_i].section == 'd' || ta->name[0] == eq_cases[_i].section;
                bool want = changed ? eq_cases[_i].equal : true;
                ck_assert_msg(target_conf_equal(ta, tb) == want, "row %d: target %s: equal=%d", _i,
                              ta->name, !want);
                ck_assert_msg(target_conf_equal(tb, ta) == want, "row %d: not symmetric", _i);
                ck_assert(target_conf_equal(ta, ta));
        }
        /* different targets are never equal */
        ck_assert(!target_conf_equal(&a->targets[0], &a->targets[1]));
        ck_assert(!target_conf_equal(&a->targets[1], &a->targets[2]));
        release(a);
        release(b);
}
END_TEST

/* Two loads of the default set from the same environment are equal. */
START_TEST(test_target_conf_equal_defaults)
{
        const char *env[] = {"REDIS_PASSWORD=pw", "CELERY_QUEUES=a,b", "POSTGRES_HOST=db"};
        char err[512];
        struct config *a = load(NULL, env, N(env), NULL, err, sizeof(err));
        struct config *b = load(NULL, env, N(env), NULL, err, sizeof(err));
        ck_assert_ptr_nonnull(a);
        ck_assert_ptr_nonnull(b);
        ck_assert_uint_eq(a->ntargets, b->ntargets);
        for (size_t i = 0; i < a->ntargets; i++)
                ck_assert(target_conf_equal(&a->targets[i], &b->targets[i]));
        release(b);
        const char *env2[] = {"REDIS_PASSWORD=other", "CELERY_QUEUES=a,b", "POSTGRES_HOST=db"};
        b = load(NULL, env2, N(env2), NULL, err, sizeof(err));
        ck_assert_ptr_nonnull(b);
        ck_assert(target_conf_equal(&a->targets[0], &b->targets[0])); /* postgres */
        ck_assert(target_conf_equal(&a->targets[1], &b->targets[1])); /* pgbouncer */
        for (size_t i = 2; i < 5; i++)
                ck_assert(!target_conf_equal(&a->targets[i], &b->targets[i]));
        release(a);
        release(b);
}
END_TEST

/* ---- config_keep_targets ------------------------------------------------- */

static const struct {
        const char *names[6];
        size_t n;
        const char *want; /* kept, in order */
} keep_cases[] = {
    {{"redis-celery", "postgres", "nope"}, 3, "postgres,redis-celery"},
    {{NULL}, 0, ""},
    {{"postgres", "pgbouncer", "redis-cache", "redis-channels", "redis-celery"}, 5, DEFAULT_NAMES},
    {{"nope"}, 1, ""},
    {{"redis-cache", "redis-cache"}, 2, "redis-cache"},
    {{"redis-channels"}, 1, "redis-channels"},
};

START_TEST(test_keep_targets)
{
        const char *env[] = {"REDIS_PASSWORD=pw", "CELERY_QUEUES=a,b", "POSTGRES_HOST=db"};
        char err[512];
        struct config *cfg = load(NULL, env, N(env), NULL, err, sizeof(err));
        ck_assert_ptr_nonnull(cfg);
        config_keep_targets(cfg, keep_cases[_i].names, keep_cases[_i].n);
        char got[256] = "";
        for (size_t i = 0; i < cfg->ntargets; i++) {
                size_t l = strlen(got);
                snprintf(got + l, sizeof(got) - l, "%s%s", i ? "," : "", cfg->targets[i].name);
        }
        ck_assert_str_eq(got, keep_cases[_i].want);
        /* what is kept is intact */
        const struct target_conf *t = config_find_target(cfg, "redis-celery");
        if (t != NULL) {
                ck_assert_int_eq(t->nqueues, 2);
                ck_assert_str_eq(t->queues[1], "b");
                ck_assert_str_eq(t->password, "pw");
                ck_assert_int_eq(t->db, 2);
        }
        t = config_find_target(cfg, "postgres");
        if (t != NULL)
                ck_assert_str_eq(t->host, "db");
        release(cfg);
}
END_TEST

/* ---- parse_listen -------------------------------------------------------- */

static const struct {
        const char *in;
        size_t hostlen;
        int rc;
        const char *host;
        int port;
} listen_cases[] = {
    {"127.0.0.1:8080", 64, 0, "127.0.0.1", 8080},
    {"0.0.0.0:80", 64, 0, "0.0.0.0", 80},
    {"10.1.2.3:65535", 64, 0, "10.1.2.3", 65535},
    {"127.0.0.1:1", 64, 0, "127.0.0.1", 1},
    {"[::1]:9000", 64, 0, "::1", 9000},
    {"[::]:8080", 64, 0, "::", 8080},
    {"[fe80::1]:443", 64, 0, "fe80::1", 443},
    {":8080", 64, 0, "0.0.0.0", 8080},
    /* numeric addresses only */
    {"localhost:8080", 64, -1, NULL, 0},
    {"hdms-healthd:1", 64, -1, NULL, 0},
    {"256.0.0.1:80", 64, -1, NULL, 0},
    {"[localhost]:80", 64, -1, NULL, 0},
    {"8080", 64, -1, NULL, 0},
    {"127.0.0.1", 64, -1, NULL, 0},
    {"127.0.0.1:", 64, -1, NULL, 0},
    {"127.0.0.1:0", 64, -1, NULL, 0},
    {"127.0.0.1:65536", 64, -1, NULL, 0},
    {"127.0.0.1:80x", 64, -1, NULL, 0},
    {"127.0.0.1:-1", 64, -1, NULL, 0},
    {"127.0.0.1:+80", 64, -1, NULL, 0},
    {"127.0.0.1: 80", 64, -1, NULL, 0},
    {"[::1]", 64, -1, NULL, 0},
    {"[::1]8080", 64, -1, NULL, 0},
    {"[::1:8080", 64, -1, NULL, 0},
    {"", 64, -1, NULL, 0},
    /* the host buffer is too small */
    {"10.1.2.3:80", 8, -1, NULL, 0},
    {"[::1]:80", 4, 0, "::1", 80},
};

START_TEST(test_parse_listen)
{
        char host[64] = "untouched";
        int port = -7;
        int rc = parse_listen(listen_cases[_i].in, host, listen_cases[_i].hostlen, &port);
        ck_assert_msg(rc == listen_cases[_i].rc, "'%s': rc %d", listen_cases[_i].in, rc);
        if (rc == 0) {
                ck_assert_str_eq(host, listen_cases[_i].host);
                ck_assert_int_eq(port, listen_cases[_i].port);
        }
}
END_TEST

START_TEST(test_kind_names)
{
        ck_assert_str_eq(target_kind_name(KIND_REDIS), "redis");
        ck_assert_str_eq(target_kind_name(KIND_POSTGRES), "postgres");
        ck_assert_str_eq(target_kind_name(KIND_PGBOUNCER), "pgbouncer");
        ck_assert_str_eq(target_kind_name((enum target_kind)7), "unknown");
}
END_TEST

/* The one level list: every name parses back to its level, and the
 * configuration accepts exactly these names. */
START_TEST(test_level_names)
{
        static const char *const want[] = {"debug", "info", "warn", "error"};
        ck_assert_int_eq(LOG_NLEVELS, N(want));
        for (int i = 0; i < N(want); i++) {
                enum log_level l = LOG_ERROR;
                ck_assert_str_eq(log_level_name((enum log_level)i), want[i]);
                ck_assert_int_eq(log_level_parse(want[i], &l), 0);
                ck_assert_int_eq((int)l, i);
        }
        enum log_level l = LOG_INFO;
        ck_assert_int_eq(log_level_parse("warning", &l), -1);
        ck_assert_int_eq(log_level_parse("", &l), -1);
        ck_assert_int_eq(log_level_parse("DEBUG", &l), -1);
        ck_assert_int_eq((int)l, LOG_INFO);
}
END_TEST

static Suite *config_suite(void)
{
        Suite *s = suite_create("config");
        TCase *tc = tcase_create("load");
        tcase_add_unchecked_fixture(tc, make_tmpdir, remove_tmpdir);
        tcase_add_checked_fixture(tc, NULL, release_held);
        tcase_add_loop_test(tc, test_load, 0, N(load_cases));
        tcase_add_test(tc, test_default_order);
        tcase_add_test(tc, test_ignores_process_environment);
        tcase_add_test(tc, test_sample_file);
        tcase_add_loop_test(tc, test_line_length, 0, N(line_cases));
        suite_add_tcase(s, tc);

        tc = tcase_create("errors");
        tcase_add_unchecked_fixture(tc, make_tmpdir, remove_tmpdir);
        tcase_add_checked_fixture(tc, NULL, release_held);
        tcase_add_loop_test(tc, test_file_error, 0, N(file_errors));
        tcase_add_test(tc, test_file_missing);
        tcase_add_loop_test(tc, test_env_error, 0, N(env_errors));
        tcase_add_test(tc, test_notify_env);
        suite_add_tcase(s, tc);

        tc = tcase_create("print");
        tcase_add_unchecked_fixture(tc, make_tmpdir, remove_tmpdir);
        tcase_add_checked_fixture(tc, NULL, release_held);
        tcase_add_loop_test(tc, test_print_redacts, 0, N(canary_cases));
        tcase_add_loop_test(tc, test_print_roundtrip, 0, N(roundtrip_cases));
        suite_add_tcase(s, tc);

        tc = tcase_create("reload");
        tcase_add_unchecked_fixture(tc, make_tmpdir, remove_tmpdir);
        tcase_add_checked_fixture(tc, NULL, release_held);
        tcase_add_loop_test(tc, test_target_conf_equal, 0, N(eq_cases));
        tcase_add_test(tc, test_target_conf_equal_defaults);
        tcase_add_loop_test(tc, test_keep_targets, 0, N(keep_cases));
        suite_add_tcase(s, tc);

        tc = tcase_create("listen");
        tcase_add_loop_test(tc, test_parse_listen, 0, N(listen_cases));
        tcase_add_test(tc, test_kind_names);
        tcase_add_test(tc, test_level_names);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(config_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
