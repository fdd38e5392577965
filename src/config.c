/* Configuration loading: one declarative key table serves the INI file, the
 * environment (HEALTHD_<KEY> for every [daemon] key) and --check-config. */
#include "config.h"
#include "textutil.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum key_type {
        T_STR,
        T_SECRET,
        T_SECRET_FILE, /* reads a file into the secret at .off */
        T_INT,
        T_LONG,
        T_PORT,
        T_DUR,
        T_BOOL,
        T_RATIO,
        T_KIND,
        T_QUEUES,
        T_LISTEN,
        T_LOGFMT,
        T_LOGLEVEL,
        T_SSLMODE,
};

#define K_REDIS (1u << KIND_REDIS)
#define K_PG (1u << KIND_POSTGRES)
#define K_PGB (1u << KIND_PGBOUNCER)
#define K_ALL (K_REDIS | K_PG | K_PGB)

struct key {
        const char *name;
        enum key_type type;
        size_t off;
        long min, max;  /* T_INT, T_LONG */
        unsigned kinds; /* target keys: kinds it applies to */
};

#define D(f) offsetof(struct config, f)
#define T(f) offsetof(struct target_conf, f)

static const struct key daemon_keys[] = {
    {"listen", T_LISTEN, 0, 0, 0, 0},
    {"log_format", T_LOGFMT, D(log_format), 0, 0, 0},
    {"log_level", T_LOGLEVEL, D(log_level), 0, 0, 0},
    {"interval", T_DUR, D(interval_ms), 0, 0, 0},
    {"timeout", T_DUR, D(timeout_ms), 0, 0, 0},
    {"retry_interval", T_DUR, D(retry_interval_ms), 0, 0, 0},
    {"rise", T_INT, D(rise), 1, 100, 0},
    {"fall", T_INT, D(fall), 1, 100, 0},
    {"startup_target", T_DUR, D(startup_target_ms), 0, 0, 0},
    {"reconnect_target", T_DUR, D(reconnect_target_ms), 0, 0, 0},
    {"latency_target", T_DUR, D(latency_target_ms), 0, 0, 0},
    {"status_token", T_SECRET, D(status_token), 0, 0, 0},
    {"status_token_file", T_SECRET_FILE, D(status_token), 0, 0, 0},
    {"nameservers", T_STR, D(nameservers), 0, 0, 0},
    {"http_connection_timeout", T_DUR, D(http_connection_timeout_ms), 0, 0, 0},
    {"http_max_connections", T_LONG, D(http_max_connections), 1, 65536, 0},
    {"http_max_connections_per_ip", T_LONG, D(http_max_connections_per_ip), 1, 65536, 0},
    {"http_memory_limit", T_LONG, D(http_memory_limit), 16384, 64L << 20, 0},
    {"default_targets", T_BOOL, D(default_targets), 0, 0, 0},
    {"state_file", T_STR, D(state_file), 0, 0, 0},
    {"state_interval", T_DUR, D(state_interval_ms), 0, 0, 0},
    {"events_max", T_LONG, D(events_max), 10, 100000, 0},
};

static const struct key target_keys[] = {
    {"kind", T_KIND, T(kind), 0, 0, K_ALL},
    {"host", T_STR, T(host), 0, 0, K_ALL},
    {"port", T_PORT, T(port), 0, 0, K_ALL},
    {"db", T_INT, T(db), 0, 15, K_REDIS},
    {"queues", T_QUEUES, 0, 0, 0, K_REDIS},
    {"dbname", T_STR, T(dbname), 0, 0, K_PG | K_PGB},
    {"user", T_STR, T(user), 0, 0, K_ALL},
    {"password", T_SECRET, T(password), 0, 0, K_ALL},
    {"password_file", T_SECRET_FILE, T(password), 0, 0, K_ALL},
    {"admin_user", T_STR, T(admin_user), 0, 0, K_PGB},
    {"admin_password", T_SECRET, T(admin_password), 0, 0, K_PGB},
    {"admin_password_file", T_SECRET_FILE, T(admin_password), 0, 0, K_PGB},
    {"sslmode", T_SSLMODE, T(sslmode), 0, 0, K_PG | K_PGB},
    {"interval", T_DUR, T(interval_ms), 0, 0, K_ALL},
    {"timeout", T_DUR, T(timeout_ms), 0, 0, K_ALL},
    {"retry_interval", T_DUR, T(retry_interval_ms), 0, 0, K_ALL},
    {"rise", T_INT, T(rise), 1, 100, K_ALL},
    {"fall", T_INT, T(fall), 1, 100, K_ALL},
    {"latency_target", T_DUR, T(latency_target_ms), 0, 0, K_ALL},
    {"critical", T_BOOL, T(critical), 0, 0, K_ALL},
    {"app_user", T_STR, T(app_user), 0, 0, K_PG},
    {"expect_primary", T_BOOL, T(expect_primary), 0, 0, K_PG},
    {"connections_warn", T_RATIO, T(connections_warn), 0, 0, K_PG},
    {"maxwait_warn", T_DUR, T(maxwait_warn_ms), 0, 0, K_PGB},
    {"clients_warn", T_RATIO, T(clients_warn), 0, 0, K_PGB},
    {"pool_size_min", T_LONG, T(pool_size_min), 0, 100000, K_PGB},
    {"pool_size_max", T_LONG, T(pool_size_max), 0, 100000, K_PGB},
    {"queue_warn", T_LONG, T(queue_warn), 0, 2000000000L, K_REDIS},
    {"headroom_warn", T_RATIO, T(headroom_warn), 0, 0, K_REDIS},
};

#define NKEYS(a) (sizeof(a) / sizeof((a)[0]))

static const char *const sslmodes[] = {"disable", "allow",     "prefer",
                                       "require", "verify-ca", "verify-full"};

/* ---- small helpers ---- */

static char *xstrdup(const char *s)
{
        if (s == NULL)
                return NULL;
        char *d = strdup(s);
        if (d == NULL)
                abort();
        return d;
}

static void set_str(char **slot, const char *v)
{
        free(*slot);
        *slot = xstrdup(v);
}

static const char *env_get(char *const *envp, const char *name)
{
        size_t n = strlen(name);
        for (; envp != NULL && *envp != NULL; envp++)
                if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
                        return *envp + n + 1;
        return NULL;
}

/* Reads a secret from a file: the whole file, trailing newlines cut. */
static int read_secret_file(const char *path, char **out, char *why, size_t whylen)
{
        FILE *f = fopen(path, "re");
        if (f == NULL) {
                snprintf(why, whylen, "cannot read '%s': %s", path, strerror(errno));
                return -1;
        }
        char buf[4096];
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        int more = fgetc(f) != EOF;
        fclose(f);
        if (more) {
                snprintf(why, whylen, "'%s' is larger than %zu bytes", path, sizeof(buf) - 1);
                return -1;
        }
        buf[n] = '\0';
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
                buf[--n] = '\0';
        if (memchr(buf, '\0', n) != NULL) {
                snprintf(why, whylen, "'%s' holds a NUL byte", path);
                return -1;
        }
        set_str(out, buf);
        explicit_bzero(buf, sizeof(buf));
        return 0;
}

int parse_listen(const char *s, char *host, size_t hostlen, int *port)
{
        const char *colon;
        const char *h = s;
        size_t hl;
        if (s[0] == '[') {
                const char *end = strchr(s, ']');
                if (end == NULL || end[1] != ':')
                        return -1;
                h = s + 1;
                hl = (size_t)(end - h);
                colon = end + 1;
        } else {
                colon = strrchr(s, ':');
                if (colon == NULL)
                        return -1;
                hl = (size_t)(colon - s);
        }
        long p;
        if (parse_int_range(colon + 1, 1, 65535, &p) != 0)
                return -1;
        if (hl == 0) {
                h = "0.0.0.0";
                hl = strlen(h);
        }
        if (hl >= hostlen)
                return -1;
        memcpy(host, h, hl);
        host[hl] = '\0';
        unsigned char buf[sizeof(struct in6_addr)];
        if (inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1)
                return -1;
        *port = (int)p;
        return 0;
}

/* Parses one value into base+k->off.  `cfg` is the whole config (listen
 * and queues need it); `tc` is the target or NULL. */
static int set_value(const struct key *k, struct config *cfg, struct target_conf *tc,
                     const char *value, char *why, size_t whylen)
{
        char *base = tc != NULL ? (char *)tc : (char *)cfg;
        void *slot = base + k->off;
        long l;
        int64_t ms;
        bool b;
        double r;

        switch (k->type) {
        case T_STR:
                if (value[0] == '\0') {
                        snprintf(why, whylen, "empty value");
                        return -1;
                }
                if (strlen(value) > 255) {
                        snprintf(why, whylen, "value longer than 255 bytes");
                        return -1;
                }
                set_str(slot, value);
                return 0;
        case T_SECRET:
                set_str(slot, value);
                return 0;
        case T_SECRET_FILE:
                return read_secret_file(value, slot, why, whylen);
        case T_INT:
        case T_LONG:
                if (parse_int_range(value, k->min, k->max, &l) != 0) {
                        snprintf(why, whylen, "'%s' is not a whole number from %ld to %ld", value,
                                 k->min, k->max);
                        return -1;
                }
                if (k->type == T_INT)
                        *(int *)slot = (int)l;
                else
                        *(long *)slot = l;
                return 0;
        case T_PORT:
                if (parse_int_range(value, 1, 65535, &l) != 0) {
                        snprintf(why, whylen, "'%s' is not a port number (1-65535)", value);
                        return -1;
                }
                *(int *)slot = (int)l;
                return 0;
        case T_DUR:
                if (parse_duration_ms(value, &ms) != 0 || ms > 86400000) {
                        snprintf(why, whylen,
                                 "'%s' is not a duration (a number with ms, s or m, up to 24h)",
                                 value);
                        return -1;
                }
                *(int64_t *)slot = ms;
                return 0;
        case T_BOOL:
                if (parse_bool(value, &b) != 0) {
                        snprintf(why, whylen, "'%s' is not yes or no", value);
                        return -1;
                }
                *(bool *)slot = b;
                return 0;
        case T_RATIO:
                if (parse_ratio(value, &r) != 0) {
                        snprintf(why, whylen, "'%s' is not a ratio (0.8 or 80%%)", value);
                        return -1;
                }
                *(double *)slot = r;
                return 0;
        case T_KIND:
                if (strcmp(value, "redis") == 0)
                        *(enum target_kind *)slot = KIND_REDIS;
                else if (strcmp(value, "postgres") == 0)
                        *(enum target_kind *)slot = KIND_POSTGRES;
                else if (strcmp(value, "pgbouncer") == 0)
                        *(enum target_kind *)slot = KIND_PGBOUNCER;
                else {
                        snprintf(why, whylen, "'%s' is not redis, postgres or pgbouncer", value);
                        return -1;
                }
                return 0;
        case T_QUEUES: {
                for (int i = 0; i < tc->nqueues; i++) {
                        free(tc->queues[i]);
                        tc->queues[i] = NULL;
                }
                tc->nqueues = 0;
                const char *p = value;
                while (*p != '\0') {
                        while (*p == ' ' || *p == ',')
                                p++;
                        const char *e = p;
                        while (*e != '\0' && *e != ',' && *e != ' ')
                                e++;
                        if (e == p)
                                break;
                        if (tc->nqueues == MAX_QUEUES) {
                                snprintf(why, whylen, "more than %d queues", MAX_QUEUES);
                                return -1;
                        }
                        tc->queues[tc->nqueues++] = strndup(p, (size_t)(e - p));
                        p = e;
                }
                if (tc->nqueues == 0) {
                        snprintf(why, whylen, "no queue named");
                        return -1;
                }
                return 0;
        }
        case T_LISTEN: {
                char host[256];
                int port;
                if (parse_listen(value, host, sizeof(host), &port) != 0) {
                        snprintf(why, whylen, "'%s' is not a numeric ADDRESS:PORT", value);
                        return -1;
                }
                set_str(&cfg->listen_host, host);
                cfg->listen_port = port;
                return 0;
        }
        case T_LOGFMT:
                if (strcmp(value, "text") == 0)
                        *(enum log_format *)slot = LOG_TEXT;
                else if (strcmp(value, "json") == 0)
                        *(enum log_format *)slot = LOG_JSON;
                else {
                        snprintf(why, whylen, "'%s' is not text or json", value);
                        return -1;
                }
                return 0;
        case T_LOGLEVEL: {
                static const char *const names[] = {"debug", "info", "warn", "error"};
                for (int i = 0; i < 4; i++)
                        if (strcmp(value, names[i]) == 0) {
                                *(enum log_level *)slot = (enum log_level)i;
                                return 0;
                        }
                snprintf(why, whylen, "'%s' is not debug, info, warn or error", value);
                return -1;
        }
        case T_SSLMODE:
                for (size_t i = 0; i < NKEYS(sslmodes); i++)
                        if (strcmp(value, sslmodes[i]) == 0) {
                                set_str(slot, value);
                                return 0;
                        }
                snprintf(why, whylen, "'%s' is not a libpq sslmode", value);
                return -1;
        }
        return -1;
}

static const struct key *find_key(const struct key *keys, size_t n, const char *name)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(keys[i].name, name) == 0)
                        return &keys[i];
        return NULL;
}

/* ---- targets ---- */

static void target_init(struct target_conf *t, const char *name)
{
        memset(t, 0, sizeof(*t));
        snprintf(t->name, sizeof(t->name), "%s", name);
        t->kind = (enum target_kind) - 1;
        t->port = 0;
        t->interval_ms = t->timeout_ms = t->retry_interval_ms = t->latency_target_ms = -1;
        t->rise = t->fall = -1;
        t->critical = true;
        t->expect_primary = true;
        t->connections_warn = 0.8;
        t->maxwait_warn_ms = 1000;
        t->clients_warn = 0.9;
        t->pool_size_min = 25;
        t->pool_size_max = 50;
        t->queue_warn = 1000;
        t->headroom_warn = 0.1;
}

static void target_clear(struct target_conf *t)
{
        free(t->host);
        for (int i = 0; i < t->nqueues; i++)
                free(t->queues[i]);
        free(t->dbname);
        free(t->user);
        if (t->password != NULL)
                explicit_bzero(t->password, strlen(t->password));
        free(t->password);
        free(t->admin_user);
        if (t->admin_password != NULL)
                explicit_bzero(t->admin_password, strlen(t->admin_password));
        free(t->admin_password);
        free(t->sslmode);
        free(t->app_user);
}

static struct target_conf *target_add(struct config *cfg, const char *name)
{
        struct target_conf *n = realloc(cfg->targets, (cfg->ntargets + 1) * sizeof(*n));
        if (n == NULL)
                abort();
        cfg->targets = n;
        target_init(&n[cfg->ntargets], name);
        return &n[cfg->ntargets++];
}

static bool valid_target_name(const char *s)
{
        if (*s == '\0' || strlen(s) >= TARGET_NAME_MAX)
                return false;
        for (; *s != '\0'; s++)
                if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
                        return false;
        return true;
}

/* ---- the file ---- */

#define MAX_SEEN 64
#define MAX_TARGETS 4096

struct parse_state {
        struct config *cfg;
        const char *file;
        FILE *fp;
        int line;        /* the line the reader last handed out */
        int header_line; /* the line of the last [section] header read */
        bool in_section; /* a [section] header was read */
        int fail_line;   /* the line of the error in err */
        int *dlines;     /* per daemon key, the line that set it */
        bool too_long;
        char *err;
        size_t errlen;
        bool failed;
        /* current section */
        char section[128];
        struct target_conf *target; /* NULL in [daemon] */
        int section_line;
        int kind_line;
        /* keys seen in this section, for duplicates and kind checks */
        const struct key *seen[MAX_SEEN];
        int seen_line[MAX_SEEN];
        int nseen;
        /* per target, the line of its section header, for cross-key errors */
        int *target_lines;
        int file_targets;
};

static void fail_at(struct parse_state *ps, int line, const char *key, const char *fmt, ...)
{
        if (ps->failed)
                return;
        ps->failed = true;
        ps->fail_line = line;
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (key != NULL)
                snprintf(ps->err, ps->errlen, "%s:%d: [%s] %s: %s", ps->file, line, ps->section,
                         key, msg);
        else
                snprintf(ps->err, ps->errlen, "%s:%d: %s", ps->file, line, msg);
}

static void finish_section(struct parse_state *ps);

/* Called by the reader for each [section] line, before inih sees it: inih
 * cuts section names at 49 bytes and does not report empty sections. */
static void begin_section(struct parse_state *ps, const char *section)
{
        finish_section(ps);
        if (ps->failed)
                return;
        snprintf(ps->section, sizeof(ps->section), "%s", section);
        ps->section_line = ps->line;
        ps->nseen = 0;
        ps->target = NULL;
        ps->in_section = true;
        if (strcmp(section, "daemon") == 0)
                return;
        if (strncmp(section, "target ", 7) == 0) {
                const char *tn = section + 7;
                if (!valid_target_name(tn)) {
                        fail_at(ps, ps->section_line, NULL,
                                "[%s]: a target name is 1-63 letters, digits, '-' or '_'", section);
                        return;
                }
                for (size_t i = 0; i < ps->cfg->ntargets; i++)
                        if (strcmp(ps->cfg->targets[i].name, tn) == 0) {
                                fail_at(ps, ps->section_line, NULL, "target '%s' defined twice",
                                        tn);
                                return;
                        }
                if (ps->cfg->ntargets >= MAX_TARGETS) {
                        fail_at(ps, ps->line, NULL, "more than %d targets", MAX_TARGETS);
                        return;
                }
                ps->target_lines[ps->cfg->ntargets] = ps->section_line;
                ps->target = target_add(ps->cfg, tn);
                ps->file_targets++;
                return;
        }
        fail_at(ps, ps->section_line, NULL,
                "unknown section [%s] (expected [daemon] or [target NAME])", section);
}

static char *line_reader(char *str, int num, void *stream)
{
        struct parse_state *ps = stream;
        char *r = fgets(str, num, ps->fp);
        if (r == NULL)
                return NULL;
        ps->line++;
        const char *p = str;
        while (*p == ' ' || *p == '\t')
                p++;
        if (*p == '[' && p != str) {
                /* inih reads an indented line as the previous value's continuation */
                fail_at(ps, ps->line, NULL,
                        "indented section header (an indented line continues the previous "
                        "value)");
        } else if (*p == '[') {
                ps->header_line = ps->line;
                const char *end = strchr(p, ']');
                if (end != NULL) {
                        char name[128];
                        size_t l = (size_t)(end - p - 1);
                        if (l >= sizeof(name))
                                l = sizeof(name) - 1;
                        memcpy(name, p + 1, l);
                        name[l] = '\0';
                        begin_section(ps, name);
                } else {
                        ps->in_section = false; /* inih reports the syntax error */
                }
        }
        size_t n = strlen(str);
        if (n == (size_t)num - 1 && str[n - 1] != '\n' && !feof(ps->fp)) {
                fail_at(ps, ps->line, NULL, "line longer than %d bytes", num - 2);
                /* swallow the rest of the line so later line numbers stay right */
                int c;
                while ((c = fgetc(ps->fp)) != EOF && c != '\n')
                        ;
        }
        return r;
}

static void finish_section(struct parse_state *ps)
{
        struct target_conf *t = ps->target;
        if (t == NULL || ps->failed)
                return;
        if ((int)t->kind < 0) {
                fail_at(ps, ps->section_line, "kind",
                        "missing: every target needs kind = redis, postgres or pgbouncer");
                return;
        }
        for (int i = 0; i < ps->nseen; i++)
                if (!(ps->seen[i]->kinds & (1u << t->kind))) {
                        fail_at(ps, ps->seen_line[i], ps->seen[i]->name,
                                "not a key of kind %s targets", target_kind_name(t->kind));
                        return;
                }
}

static int on_ini_pair(void *user, const char *section, const char *name, const char *value)
{
        struct parse_state *ps = user;
        (void)section; /* cut at 49 bytes by inih: the reader tracks sections */
        if (ps->failed)
                return 1;
        if (!ps->in_section) {
                fail_at(ps, ps->line, name,
                        "outside any section (put it under [daemon] or [target NAME])");
                return 1;
        }
        const struct key *k = ps->target != NULL ? find_key(target_keys, NKEYS(target_keys), name)
                                                 : find_key(daemon_keys, NKEYS(daemon_keys), name);
        if (k == NULL) {
                fail_at(ps, ps->line, name, "unknown key");
                return 1;
        }
        for (int i = 0; i < ps->nseen; i++)
                if (ps->seen[i] == k) {
                        fail_at(ps, ps->line, name,
                                "given twice (first on line %d; an indented line continues "
                                "the previous value)",
                                ps->seen_line[i]);
                        return 1;
                }
        if (ps->nseen < MAX_SEEN) {
                ps->seen[ps->nseen] = k;
                ps->seen_line[ps->nseen++] = ps->line;
        }
        if (ps->target == NULL)
                ps->dlines[k - daemon_keys] = ps->line;
        char why[256];
        if (set_value(k, ps->cfg, ps->target, value, why, sizeof(why)) != 0)
                fail_at(ps, ps->line, name, "%s", why);
        return 1;
}

static int load_file(struct config *cfg, const char *file, int *lines, int *dlines, char *err,
                     size_t errlen)
{
        struct parse_state *ps = calloc(1, sizeof(*ps));
        if (ps == NULL)
                abort();
        ps->cfg = cfg;
        ps->file = file;
        ps->err = err;
        ps->errlen = errlen;
        ps->target_lines = lines;
        ps->dlines = dlines;
        ps->fp = fopen(file, "re");
        if (ps->fp == NULL) {
                snprintf(err, errlen, "%s: cannot open: %s", file, strerror(errno));
                free(ps);
                return -1;
        }
        int rc = ini_parse_stream(line_reader, ps, on_ini_pair, ps);
        finish_section(ps);
        fclose(ps->fp);
        if (rc > 0 && (!ps->failed || rc < ps->fail_line)) {
                ps->failed = false; /* the first bad line wins */
                fail_at(ps, rc, NULL, "syntax error (expected [section], key = value or comment)");
        } else if (!ps->failed && rc != 0)
                fail_at(ps, 0, NULL, "cannot parse (error %d)", rc);
        int ret = ps->failed ? -1 : ps->file_targets;
        free(ps);
        return ret;
}

/* ---- defaults and environment ---- */

static void daemon_defaults(struct config *cfg)
{
        cfg->listen_host = xstrdup("127.0.0.1");
        cfg->listen_port = 8080;
        cfg->log_format = LOG_TEXT;
        cfg->log_level = LOG_INFO;
        cfg->interval_ms = 2000;
        cfg->timeout_ms = 0;
        cfg->retry_interval_ms = 250;
        cfg->rise = 2;
        cfg->fall = 2;
        cfg->startup_target_ms = 10000;
        cfg->reconnect_target_ms = 5000;
        cfg->latency_target_ms = 50;
        cfg->http_connection_timeout_ms = 10000;
        cfg->http_max_connections = 256;
        cfg->http_max_connections_per_ip = 32;
        cfg->http_memory_limit = 256 * 1024;
        cfg->state_interval_ms = 60000;
        cfg->events_max = 1000;
}

static const char *envd(char *const *envp, const char *name, const char *def)
{
        const char *v = env_get(envp, name);
        return v != NULL && v[0] != '\0' ? v : def;
}

/* A secret from NAME or NAME_FILE (the Docker secrets convention). */
static int env_secret(char *const *envp, const char *name, char **slot, char *err, size_t errlen)
{
        char fname[96];
        snprintf(fname, sizeof(fname), "%s_FILE", name);
        const char *path = env_get(envp, fname);
        if (path != NULL && path[0] != '\0') {
                char why[256];
                if (read_secret_file(path, slot, why, sizeof(why)) != 0) {
                        snprintf(err, errlen, "environment: %s: %s", fname, why);
                        return -1;
                }
                return 0;
        }
        const char *v = env_get(envp, name);
        if (v != NULL && v[0] != '\0')
                set_str(slot, v);
        return 0;
}

static int env_port(char *const *envp, const char *name, int def, int *out, char *err,
                    size_t errlen)
{
        const char *v = env_get(envp, name);
        long p;
        if (v == NULL || v[0] == '\0') {
                *out = def;
                return 0;
        }
        if (parse_int_range(v, 1, 65535, &p) != 0) {
                snprintf(err, errlen, "environment: %s: '%s' is not a port number (1-65535)", name,
                         v);
                return -1;
        }
        *out = (int)p;
        return 0;
}

static int add_default_targets(struct config *cfg, char *const *envp, char *err, size_t errlen)
{
        const char *pg_user = envd(envp, "POSTGRES_USER", "hdms");
        const char *db = envd(envp, "POSTGRES_DB", "hdms");
        char *pg_password = NULL, *hd_password = NULL;
        int rc = -1;

        if (env_secret(envp, "POSTGRES_PASSWORD", &pg_password, err, errlen) != 0 ||
            env_secret(envp, "HEALTHD_PG_PASSWORD", &hd_password, err, errlen) != 0)
                goto out;
        const char *hd_user = envd(envp, "HEALTHD_PG_USER", pg_user);
        const char *hd_pw = hd_password != NULL ? hd_password : pg_password;
        const char *app_user = envd(envp, "HEALTHD_APP_USER", pg_user);

        struct target_conf *t = target_add(cfg, "postgres");
        t->kind = KIND_POSTGRES;
        t->host = xstrdup(envd(envp, "POSTGRES_HOST", "postgres"));
        if (env_port(envp, "POSTGRES_PORT", 5432, &t->port, err, errlen) != 0)
                goto out;
        t->dbname = xstrdup(db);
        t->user = xstrdup(hd_user);
        t->password = xstrdup(hd_pw);
        t->app_user = xstrdup(app_user);

        t = target_add(cfg, "pgbouncer");
        t->kind = KIND_PGBOUNCER;
        t->host = xstrdup(envd(envp, "PGBOUNCER_HOST", "pgbouncer"));
        if (env_port(envp, "PGBOUNCER_PORT", 6432, &t->port, err, errlen) != 0)
                goto out;
        t->dbname = xstrdup(db);
        t->user = xstrdup(hd_user);
        t->password = xstrdup(hd_pw);
        t->admin_user = xstrdup(envd(envp, "PGBOUNCER_ADMIN_USER", "pgbouncer"));
        if (env_secret(envp, "PGBOUNCER_ADMIN_PASSWORD", &t->admin_password, err, errlen) != 0)
                goto out;

        static const char *const names[] = {"redis-cache", "redis-channels", "redis-celery"};
        for (int i = 0; i < 3; i++) {
                t = target_add(cfg, names[i]);
                t->kind = KIND_REDIS;
                t->db = i;
                t->host = xstrdup(envd(envp, "REDIS_HOST", "redis"));
                if (env_port(envp, "REDIS_PORT", 6379, &t->port, err, errlen) != 0)
                        goto out;
                const char *u = env_get(envp, "REDIS_USERNAME");
                t->user = u != NULL && u[0] != '\0' ? xstrdup(u) : NULL;
                if (env_secret(envp, "REDIS_PASSWORD", &t->password, err, errlen) != 0)
                        goto out;
                if (i == 2) {
                        char why[128];
                        const struct key *qk = find_key(target_keys, NKEYS(target_keys), "queues");
                        if (set_value(qk, cfg, t, envd(envp, "CELERY_QUEUES", "celery"), why,
                                      sizeof(why)) != 0) {
                                snprintf(err, errlen, "environment: CELERY_QUEUES: %s", why);
                                goto out;
                        }
                }
        }
        rc = 0;
out:
        if (pg_password != NULL)
                explicit_bzero(pg_password, strlen(pg_password));
        if (hd_password != NULL)
                explicit_bzero(hd_password, strlen(hd_password));
        free(pg_password);
        free(hd_password);
        return rc;
}

/* HEALTHD_<KEY> for every [daemon] key; secrets also as HEALTHD_<KEY>_FILE. */
static int apply_env(struct config *cfg, char *const *envp, int *dlines, char *err, size_t errlen)
{
        for (size_t i = 0; i < NKEYS(daemon_keys); i++) {
                const struct key *k = &daemon_keys[i];
                char name[96] = "HEALTHD_";
                size_t j = 8;
                for (const char *p = k->name; *p != '\0' && j < sizeof(name) - 1; p++)
                        name[j++] = (char)toupper((unsigned char)*p);
                name[j] = '\0';
                const char *v = env_get(envp, name);
                if (v == NULL || v[0] == '\0')
                        continue;
                dlines[i] = -1;
                char why[256];
                if (set_value(k, cfg, NULL, v, why, sizeof(why)) != 0) {
                        snprintf(err, errlen, "environment: %s: %s", name, why);
                        return -1;
                }
        }
        return 0;
}

/* Fills the target keys left unset from the daemon's, then checks the
 * rules that span keys. */
static int finish_targets(struct config *cfg, const char *file, const int *lines, char *err,
                          size_t errlen)
{
        for (size_t i = 0; i < cfg->ntargets; i++) {
                struct target_conf *t = &cfg->targets[i];
                if (t->interval_ms < 0)
                        t->interval_ms = cfg->interval_ms;
                if (t->retry_interval_ms < 0)
                        t->retry_interval_ms = cfg->retry_interval_ms;
                if (t->timeout_ms < 0)
                        t->timeout_ms = cfg->timeout_ms;
                if (t->timeout_ms == 0)
                        t->timeout_ms = t->interval_ms / 2 < 1000 ? t->interval_ms / 2 : 1000;
                if (t->rise < 0)
                        t->rise = cfg->rise;
                if (t->fall < 0)
                        t->fall = cfg->fall;
                if (t->latency_target_ms < 0)
                        t->latency_target_ms = cfg->latency_target_ms;
                if (t->host == NULL)
                        t->host = xstrdup("localhost");
                if (t->port == 0)
                        t->port = t->kind == KIND_REDIS      ? 6379
                                  : t->kind == KIND_POSTGRES ? 5432
                                                             : 6432;
                if (t->kind != KIND_REDIS) {
                        if (t->dbname == NULL)
                                t->dbname = xstrdup("postgres");
                        if (t->user == NULL)
                                t->user = xstrdup("postgres");
                        if (t->sslmode == NULL)
                                t->sslmode = xstrdup("prefer");
                }
                if (t->kind == KIND_PGBOUNCER && t->admin_user == NULL)
                        t->admin_user = xstrdup("pgbouncer");
                if (t->kind == KIND_REDIS && t->nqueues == 0 && t->db == 2 &&
                    strcmp(t->name, "redis-celery") == 0)
                        t->queues[t->nqueues++] = xstrdup("celery");

                const char *key = NULL, *why = NULL;
                if (t->interval_ms < 10)
                        key = "interval", why = "must be at least 10ms";
                else if (t->timeout_ms >= t->interval_ms)
                        key = "timeout", why = "must be shorter than interval";
                else if (t->retry_interval_ms < 1)
                        key = "retry_interval", why = "must be at least 1ms";
                else if (t->kind == KIND_PGBOUNCER && t->pool_size_min > t->pool_size_max)
                        key = "pool_size_min", why = "is above pool_size_max";
                if (why != NULL) {
                        char where[300];
                        if (lines != NULL && lines[i] > 0)
                                snprintf(where, sizeof(where), "%s:%d: [target %s]", file, lines[i],
                                         t->name);
                        else
                                snprintf(where, sizeof(where), "[target %s]", t->name);
                        snprintf(err, errlen, "%s %s: %s (interval %lldms, timeout %lldms)", where,
                                 key, why, (long long)t->interval_ms, (long long)t->timeout_ms);
                        return -1;
                }
        }
        if (cfg->http_max_connections_per_ip > cfg->http_max_connections) {
                snprintf(err, errlen,
                         "http_max_connections_per_ip (%ld) is above http_max_connections (%ld)",
                         cfg->http_max_connections_per_ip, cfg->http_max_connections);
                return -1;
        }
        return 0;
}

/* Where a [daemon] key got its value, for errors spanning keys. */
static void daemon_where(const struct config *cfg, const int *dlines, const char *key, char *buf,
                         size_t len)
{
        const struct key *k = find_key(daemon_keys, NKEYS(daemon_keys), key);
        int line = dlines[k - daemon_keys];
        if (line > 0)
                snprintf(buf, len, "%s:%d: [daemon] %s", cfg->file, line, key);
        else if (line < 0)
                snprintf(buf, len, "environment: HEALTHD_%s (%s)", key, key);
        else
                snprintf(buf, len, "[daemon] %s", key);
}

struct config *config_load(const struct config_overrides *ov, char *const *envp, char *err,
                           size_t errlen)
{
        int dlines[NKEYS(daemon_keys)] = {0};
        char where[400];
        struct config *cfg = calloc(1, sizeof(*cfg));
        if (cfg == NULL)
                abort();
        daemon_defaults(cfg);
        err[0] = '\0';
        int file_targets = 0;
        int *lines = calloc(MAX_TARGETS + 8, sizeof(int));
        if (lines == NULL)
                abort();
        char why[256];

        if (ov != NULL && ov->file != NULL) {
                cfg->file = xstrdup(ov->file);
                file_targets = load_file(cfg, ov->file, lines, dlines, err, errlen);
                if (file_targets < 0)
                        goto fail;
        }
        if (apply_env(cfg, envp, dlines, err, errlen) != 0)
                goto fail;
        if (ov != NULL && ov->listen != NULL) {
                const struct key *k = find_key(daemon_keys, NKEYS(daemon_keys), "listen");
                if (set_value(k, cfg, NULL, ov->listen, why, sizeof(why)) != 0) {
                        snprintf(err, errlen, "command line: --listen: %s", why);
                        goto fail;
                }
        }
        if (ov != NULL && ov->log_format != NULL) {
                const struct key *k = find_key(daemon_keys, NKEYS(daemon_keys), "log_format");
                if (set_value(k, cfg, NULL, ov->log_format, why, sizeof(why)) != 0) {
                        snprintf(err, errlen, "command line: --log-format: %s", why);
                        goto fail;
                }
        }
        if (ov != NULL && ov->log_level != NULL) {
                const struct key *k = find_key(daemon_keys, NKEYS(daemon_keys), "log_level");
                if (set_value(k, cfg, NULL, ov->log_level, why, sizeof(why)) != 0) {
                        snprintf(err, errlen, "command line: --log-level: %s", why);
                        goto fail;
                }
        }
        if (file_targets == 0 || cfg->default_targets) {
                size_t before = cfg->ntargets;
                if (add_default_targets(cfg, envp, err, errlen) != 0)
                        goto fail;
                /* A file target of the same name wins over a default one. */
                for (size_t i = before; i < cfg->ntargets;) {
                        bool dup = false;
                        for (size_t j = 0; j < before; j++)
                                if (strcmp(cfg->targets[i].name, cfg->targets[j].name) == 0)
                                        dup = true;
                        if (dup) {
                                target_clear(&cfg->targets[i]);
                                memmove(&cfg->targets[i], &cfg->targets[i + 1],
                                        (cfg->ntargets - i - 1) * sizeof(cfg->targets[0]));
                                cfg->ntargets--;
                        } else {
                                i++;
                        }
                }
        }
        if (cfg->interval_ms < 10) {
                daemon_where(cfg, dlines, "interval", where, sizeof(where));
                snprintf(err, errlen, "%s: must be at least 10ms", where);
                goto fail;
        }
        if (cfg->timeout_ms > 0 && cfg->timeout_ms >= cfg->interval_ms) {
                daemon_where(cfg, dlines, "timeout", where, sizeof(where));
                snprintf(err, errlen, "%s: must be shorter than interval", where);
                goto fail;
        }
        if (cfg->http_max_connections_per_ip > cfg->http_max_connections) {
                const struct key *k =
                    find_key(daemon_keys, NKEYS(daemon_keys), "http_max_connections_per_ip");
                daemon_where(cfg, dlines,
                             dlines[k - daemon_keys] != 0 ? "http_max_connections_per_ip"
                                                          : "http_max_connections",
                             where, sizeof(where));
                snprintf(err, errlen,
                         "%s: http_max_connections_per_ip (%ld) is above http_max_connections "
                         "(%ld)",
                         where, cfg->http_max_connections_per_ip, cfg->http_max_connections);
                goto fail;
        }
        if (cfg->state_interval_ms < 100) {
                daemon_where(cfg, dlines, "state_interval", where, sizeof(where));
                snprintf(err, errlen, "%s: must be at least 100ms", where);
                goto fail;
        }
        if (finish_targets(cfg, cfg->file, lines, err, errlen) != 0)
                goto fail;
        free(lines);
        return cfg;
fail:
        free(lines);
        config_free(cfg);
        return NULL;
}

void config_free(struct config *cfg)
{
        if (cfg == NULL)
                return;
        for (size_t i = 0; i < cfg->ntargets; i++)
                target_clear(&cfg->targets[i]);
        free(cfg->targets);
        free(cfg->file);
        free(cfg->listen_host);
        if (cfg->status_token != NULL)
                explicit_bzero(cfg->status_token, strlen(cfg->status_token));
        free(cfg->status_token);
        free(cfg->nameservers);
        free(cfg->state_file);
        free(cfg);
}

const char *target_kind_name(enum target_kind kind)
{
        switch (kind) {
        case KIND_REDIS:
                return "redis";
        case KIND_POSTGRES:
                return "postgres";
        case KIND_PGBOUNCER:
                return "pgbouncer";
        }
        return "unknown";
}

const struct target_conf *config_find_target(const struct config *cfg, const char *name)
{
        for (size_t i = 0; i < cfg->ntargets; i++)
                if (strcmp(cfg->targets[i].name, name) == 0)
                        return &cfg->targets[i];
        return NULL;
}

void config_keep_targets(struct config *cfg, const char *const *names, size_t n)
{
        size_t out = 0;
        for (size_t i = 0; i < cfg->ntargets; i++) {
                bool keep = false;
                for (size_t j = 0; j < n; j++)
                        if (strcmp(cfg->targets[i].name, names[j]) == 0)
                                keep = true;
                if (keep)
                        cfg->targets[out++] = cfg->targets[i];
                else
                        target_clear(&cfg->targets[i]);
        }
        cfg->ntargets = out;
}

static bool str_eq(const char *a, const char *b)
{
        if (a == NULL || b == NULL)
                return a == b;
        return strcmp(a, b) == 0;
}

bool target_conf_equal(const struct target_conf *a, const struct target_conf *b)
{
        if (strcmp(a->name, b->name) != 0 || a->kind != b->kind || a->port != b->port ||
            a->db != b->db || a->nqueues != b->nqueues || !str_eq(a->host, b->host) ||
            !str_eq(a->dbname, b->dbname) || !str_eq(a->user, b->user) ||
            !str_eq(a->password, b->password) || !str_eq(a->admin_user, b->admin_user) ||
            !str_eq(a->admin_password, b->admin_password) || !str_eq(a->sslmode, b->sslmode) ||
            !str_eq(a->app_user, b->app_user))
                return false;
        for (int i = 0; i < a->nqueues; i++)
                if (!str_eq(a->queues[i], b->queues[i]))
                        return false;
        return a->interval_ms == b->interval_ms && a->timeout_ms == b->timeout_ms &&
               a->retry_interval_ms == b->retry_interval_ms && a->rise == b->rise &&
               a->fall == b->fall && a->latency_target_ms == b->latency_target_ms &&
               a->critical == b->critical && a->expect_primary == b->expect_primary &&
               a->connections_warn == b->connections_warn &&
               a->maxwait_warn_ms == b->maxwait_warn_ms && a->clients_warn == b->clients_warn &&
               a->pool_size_min == b->pool_size_min && a->pool_size_max == b->pool_size_max &&
               a->queue_warn == b->queue_warn && a->headroom_warn == b->headroom_warn;
}

/* ---- printing ---- */

/* One "key = value" line.  The compact "key=value" form is used where the
 * spaced one would not read back the same: a value starting with ';' (an
 * inline comment after a space) or a line over inih's 200 bytes. */
static void print_kv(FILE *out, const char *key, const char *value)
{
        if (value[0] == ';' || strlen(key) + strlen(value) + 4 > 198)
                fprintf(out, "%s=%s\n", key, value);
        else
                fprintf(out, "%s = %s\n", key, value);
}

/* The shortest decimal that parse_ratio() reads back as the same double. */
static void format_ratio(char *buf, size_t len, double v)
{
        for (int prec = 0; prec <= 17; prec++) {
                double back;
                snprintf(buf, len, "%.*f", prec, v);
                if (parse_ratio(buf, &back) == 0 && back == v)
                        return;
        }
        snprintf(buf, len, "%.17f", v);
}

static void print_dur(FILE *out, const char *name, int64_t ms)
{
        char v[32];
        if (ms % 60000 == 0 && ms != 0)
                snprintf(v, sizeof(v), "%lldm", (long long)(ms / 60000));
        else if (ms % 1000 == 0 && ms != 0)
                snprintf(v, sizeof(v), "%llds", (long long)(ms / 1000));
        else
                snprintf(v, sizeof(v), "%lldms", (long long)ms);
        print_kv(out, name, v);
}

static void print_key(FILE *out, const struct key *k, const struct config *cfg,
                      const struct target_conf *t)
{
        const char *base = t != NULL ? (const char *)t : (const char *)cfg;
        const void *slot = base + k->off;
        char buf[1024];
        switch (k->type) {
        case T_STR:
        case T_SSLMODE: {
                const char *s = *(char *const *)slot;
                if (s != NULL)
                        print_kv(out, k->name, s);
                break;
        }
        case T_SECRET:
                if (*(char *const *)slot != NULL)
                        print_kv(out, k->name, "<redacted>");
                break;
        case T_SECRET_FILE:
                break;
        case T_INT:
                fprintf(out, "%s = %d\n", k->name, *(const int *)slot);
                break;
        case T_LONG:
                fprintf(out, "%s = %ld\n", k->name, *(const long *)slot);
                break;
        case T_PORT:
                fprintf(out, "%s = %d\n", k->name, *(const int *)slot);
                break;
        case T_DUR:
                print_dur(out, k->name, *(const int64_t *)slot);
                break;
        case T_BOOL:
                fprintf(out, "%s = %s\n", k->name, *(const bool *)slot ? "yes" : "no");
                break;
        case T_RATIO:
                format_ratio(buf, sizeof(buf), *(const double *)slot);
                print_kv(out, k->name, buf);
                break;
        case T_KIND:
                fprintf(out, "%s = %s\n", k->name, target_kind_name(t->kind));
                break;
        case T_QUEUES:
                if (t->nqueues > 0) {
                        size_t n = 0;
                        buf[0] = '\0';
                        for (int i = 0; i < t->nqueues && n < sizeof(buf); i++)
                                n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s",
                                                      i ? "," : "", t->queues[i]);
                        print_kv(out, k->name, buf);
                }
                break;
        case T_LISTEN:
                if (strchr(cfg->listen_host, ':') != NULL)
                        fprintf(out, "%s = [%s]:%d\n", k->name, cfg->listen_host, cfg->listen_port);
                else
                        fprintf(out, "%s = %s:%d\n", k->name, cfg->listen_host, cfg->listen_port);
                break;
        case T_LOGFMT:
                fprintf(out, "%s = %s\n", k->name, cfg->log_format == LOG_JSON ? "json" : "text");
                break;
        case T_LOGLEVEL: {
                static const char *const names[] = {"debug", "info", "warn", "error"};
                fprintf(out, "%s = %s\n", k->name, names[cfg->log_level]);
                break;
        }
        }
}

void config_print(const struct config *cfg, FILE *out)
{
        fprintf(out, "; effective configuration%s%s\n", cfg->file ? " from " : "",
                cfg->file ? cfg->file : " (built-in defaults and environment)");
        fprintf(out, "[daemon]\n");
        for (size_t i = 0; i < NKEYS(daemon_keys); i++)
                print_key(out, &daemon_keys[i], cfg, NULL);
        for (size_t ti = 0; ti < cfg->ntargets; ti++) {
                const struct target_conf *t = &cfg->targets[ti];
                fprintf(out, "\n[target %s]\n", t->name);
                for (size_t i = 0; i < NKEYS(target_keys); i++) {
                        const struct key *k = &target_keys[i];
                        if (k->kinds & (1u << t->kind))
                                print_key(out, k, cfg, t);
                }
        }
}
