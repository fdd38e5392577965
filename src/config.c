/* Configuration loading: the order (built-in defaults < file < environment
 * < command line), the rules that span keys, and the printed form.  The keys
 * and their types are in config_keys.c, the INI file in config_ini.c, the
 * Compose default targets in config_compose.c. */
#include "config_impl.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- targets ---- */

/* A new target: the table's defaults, the keys inherited from [daemon]
 * marked "not set", and no kind yet (the file must give one). */
static void target_init(struct target_conf *t, const char *name)
{
        memset(t, 0, sizeof(*t));
        snprintf(t->name, sizeof(t->name), "%s", name);
        t->kind = (enum target_kind) - 1;
        config_key_defaults(K_ALL, t);
}

void cfg_target_clear(struct target_conf *t)
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
        free(t->sslrootcert);
        free(t->sslcert);
        free(t->sslkey);
        free(t->app_user);
}

struct target_conf *cfg_target_add(struct config *cfg, const char *name)
{
        struct target_conf *n = realloc(cfg->targets, (cfg->ntargets + 1) * sizeof(*n));
        if (n == NULL)
                abort();
        cfg->targets = n;
        target_init(&n[cfg->ntargets], name);
        return &n[cfg->ntargets++];
}

bool cfg_valid_target_name(const char *s)
{
        if (*s == '\0' || strlen(s) >= TARGET_NAME_MAX)
                return false;
        for (; *s != '\0'; s++)
                if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
                        return false;
        return true;
}

/* ---- notifiers ---- */

static void notify_clear(struct notify_conf *n)
{
        if (n->url != NULL)
                explicit_bzero(n->url, strlen(n->url));
        free(n->url);
        if (n->bearer_token != NULL)
                explicit_bzero(n->bearer_token, strlen(n->bearer_token));
        free(n->bearer_token);
        free(n->ca_file);
        free(n->targets);
        for (size_t i = 0; i < n->ntarget_names; i++)
                free(n->target_names[i]);
        free(n->target_names);
}

struct notify_conf *cfg_notify_add(struct config *cfg, const char *name)
{
        struct notify_conf *v = realloc(cfg->notifiers, (cfg->nnotifiers + 1) * sizeof(*v));
        if (v == NULL)
                abort();
        cfg->notifiers = v;
        struct notify_conf *n = &v[cfg->nnotifiers++];
        memset(n, 0, sizeof(*n));
        snprintf(n->name, sizeof(n->name), "%s", name);
        n->kind = (enum notify_kind) - 1;
        config_key_defaults(S_NOTIFY, n);
        return n;
}

struct notify_conf *cfg_notify_find(struct config *cfg, const char *name)
{
        for (size_t i = 0; i < cfg->nnotifiers; i++)
                if (strcmp(cfg->notifiers[i].name, name) == 0)
                        return &cfg->notifiers[i];
        return NULL;
}

bool notify_conf_watches(const struct notify_conf *n, const char *target)
{
        if (n->targets == NULL)
                return true;
        for (size_t i = 0; i < n->ntarget_names; i++)
                if (strcmp(n->target_names[i], target) == 0)
                        return true;
        return false;
}

/* HEALTHD_ALERTMANAGER_URL and HEALTHD_WEBHOOK_URL (or their _FILE): a
 * notifier named alertmanager or webhook with the defaults, or the URL of
 * the file's section of that name (the environment wins over the file, as
 * for every key).  Empty: nothing. */
static int env_notifiers(struct config *cfg, char *const *envp, char *err, size_t errlen)
{
        static const struct {
                const char *var, *name;
                enum notify_kind kind;
        } vars[] = {
            {"HEALTHD_ALERTMANAGER_URL", "alertmanager", NOTIFY_ALERTMANAGER},
            {"HEALTHD_WEBHOOK_URL", "webhook", NOTIFY_WEBHOOK},
        };
        for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
                char fname[64], why[512];
                snprintf(fname, sizeof(fname), "%s_FILE", vars[i].var);
                const char *path = cfg_env_get(envp, fname);
                const char *v = cfg_env_get(envp, vars[i].var);
                const char *var = vars[i].var;
                const struct key *k;
                if (path != NULL && path[0] != '\0') {
                        k = config_key_find_notify("url_file");
                        v = path;
                        var = fname;
                } else if (v != NULL && v[0] != '\0') {
                        k = config_key_find_notify("url");
                } else {
                        continue;
                }
                struct notify_conf *n = cfg_notify_find(cfg, vars[i].name);
                bool added = n == NULL;
                if (added) {
                        if (cfg->nnotifiers >= MAX_NOTIFIERS) {
                                snprintf(err, errlen, "environment: %s: more than %d notifiers",
                                         var, MAX_NOTIFIERS);
                                return -1;
                        }
                        n = cfg_notify_add(cfg, vars[i].name);
                        n->kind = vars[i].kind;
                }
                if (config_key_set(k, n, v, why, sizeof(why)) != 0) {
                        snprintf(err, errlen, "environment: %s: %s", var, why);
                        return -1;
                }
        }
        return 0;
}

/* Splits each notifier's `targets` and checks every name is a configured
 * target; checks a URL is set.  After the default targets are added, so
 * that `targets` may name them.  nlines: see config_ini_load (NULL: no
 * file). */
static int finish_notifiers(struct config *cfg, const int *nlines, char *err, size_t errlen)
{
        if (cfg->instance == NULL) {
                char host[256];
                if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
                        snprintf(host, sizeof(host), "localhost");
                host[sizeof(host) - 1] = '\0';
                cfg->instance = cfg_strdup(host);
        }
        for (size_t i = 0; i < cfg->nnotifiers; i++) {
                struct notify_conf *n = &cfg->notifiers[i];
                char where[300];
                int sline = nlines != NULL && i < MAX_NOTIFIERS ? nlines[2 * i] : 0;
                int tline = nlines != NULL && i < MAX_NOTIFIERS ? nlines[2 * i + 1] : 0;
                if (sline > 0)
                        snprintf(where, sizeof(where), "%s:%d: [notify %s]", cfg->file, sline,
                                 n->name);
                else
                        snprintf(where, sizeof(where), "[notify %s]", n->name);
                if (n->url == NULL) {
                        snprintf(err, errlen,
                                 "%s url: missing: every notifier needs url or url_file", where);
                        return -1;
                }
                if (n->targets == NULL)
                        continue;
                const char *p = n->targets;
                while (*p != '\0') {
                        while (*p == ' ' || *p == ',')
                                p++;
                        size_t l = strcspn(p, ", ");
                        if (l == 0)
                                break;
                        char name[TARGET_NAME_MAX + 1];
                        snprintf(name, sizeof(name), "%.*s",
                                 (int)(l < TARGET_NAME_MAX ? l : TARGET_NAME_MAX), p);
                        if (l >= TARGET_NAME_MAX || config_find_target(cfg, name) == NULL) {
                                if (tline > 0)
                                        snprintf(where, sizeof(where), "%s:%d: [notify %s]",
                                                 cfg->file, tline, n->name);
                                snprintf(err, errlen, "%s targets: no target named '%.*s'", where,
                                         (int)(l < 80 ? l : 80), p);
                                return -1;
                        }
                        bool dup = false;
                        for (size_t j = 0; j < n->ntarget_names; j++)
                                dup = dup || strcmp(n->target_names[j], name) == 0;
                        if (!dup) {
                                char **v =
                                    realloc(n->target_names, (n->ntarget_names + 1) * sizeof(*v));
                                if (v == NULL)
                                        abort();
                                n->target_names = v;
                                v[n->ntarget_names++] = cfg_strdup(name);
                        }
                        p += l;
                }
                if (n->ntarget_names == 0) {
                        if (tline > 0)
                                snprintf(where, sizeof(where), "%s:%d: [notify %s]", cfg->file,
                                         tline, n->name);
                        snprintf(err, errlen,
                                 "%s targets: no target named (leave the key out for all)", where);
                        return -1;
                }
        }
        return 0;
}

/* The variable of a [daemon] key: HEALTHD_ and the name in upper case. */
static void env_name(const struct key *k, char *name, size_t len)
{
        size_t j = (size_t)snprintf(name, len, "HEALTHD_");
        for (const char *p = k->name; *p != '\0' && j + 1 < len; p++)
                name[j++] = (char)toupper((unsigned char)*p);
        name[j] = '\0';
}

/* HEALTHD_<KEY> for every [daemon] key; secrets also as HEALTHD_<KEY>_FILE. */
static int apply_env(struct config *cfg, char *const *envp, int *dlines, char *err, size_t errlen)
{
        for (size_t i = 0; i < config_nkeys; i++) {
                const struct key *k = &config_keys[i];
                if ((k->sections & S_DAEMON) == 0)
                        continue;
                char name[96];
                env_name(k, name, sizeof(name));
                const char *v = cfg_env_get(envp, name);
                if (v == NULL || v[0] == '\0')
                        continue;
                dlines[i] = -1;
                char why[256];
                if (config_key_set(k, cfg, v, why, sizeof(why)) != 0) {
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
                config_key_fill_target(t, cfg);
                if (t->timeout_ms == 0)
                        t->timeout_ms = t->interval_ms / 2 < 1000 ? t->interval_ms / 2 : 1000;
                if (t->kind == KIND_REDIS && t->nqueues == 0 && t->db == 2 &&
                    strcmp(t->name, "redis-celery") == 0)
                        t->queues[t->nqueues++] = cfg_strdup("celery");

                const char *key = NULL, *why = NULL;
                if (t->interval_ms < 10)
                        key = "interval", why = "must be at least 10ms";
                else if (t->timeout_ms >= t->interval_ms)
                        key = "timeout", why = "must be shorter than interval";
                else if (t->retry_interval_ms < 1)
                        key = "retry_interval", why = "must be at least 1ms";
                else if (t->kind == KIND_PGBOUNCER && t->pool_size_min > t->pool_size_max)
                        key = "pool_size_min", why = "is above pool_size_max";
                /* Without its partner libpq would look in ~/.postgresql,
                 * which a daemon's user rarely has: say so now. */
                else if (t->sslcert != NULL && t->sslkey == NULL)
                        key = "sslcert", why = "needs sslkey (the client certificate's key)";
                else if (t->sslkey != NULL && t->sslcert == NULL)
                        key = "sslkey", why = "needs sslcert (the certificate of that key)";
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
        const struct key *k = config_key_find(false, key);
        int line = dlines[k - config_keys];
        if (line > 0)
                snprintf(buf, len, "%s:%d: [daemon] %s", cfg->file, line, key);
        else if (line < 0) {
                char name[96];
                env_name(k, name, sizeof(name));
                snprintf(buf, len, "environment: %s (%s)", name, key);
        } else
                snprintf(buf, len, "[daemon] %s", key);
}

struct config *config_load(const struct config_overrides *ov, char *const *envp, char *err,
                           size_t errlen)
{
        char where[400];
        struct config *cfg = calloc(1, sizeof(*cfg));
        int *dlines = calloc(config_nkeys, sizeof(int));
        int *lines = calloc(MAX_TARGETS + 8, sizeof(int));
        int *nlines = calloc(2 * MAX_NOTIFIERS, sizeof(int));
        if (cfg == NULL || dlines == NULL || lines == NULL || nlines == NULL)
                abort();
        config_key_defaults(S_DAEMON, cfg);
        err[0] = '\0';
        int file_targets = 0;

        if (ov != NULL && ov->file != NULL) {
                cfg->file = cfg_strdup(ov->file);
                file_targets = config_ini_load(cfg, ov->file, lines, dlines, nlines, err, errlen);
                if (file_targets < 0)
                        goto fail;
        }
        if (apply_env(cfg, envp, dlines, err, errlen) != 0 ||
            env_notifiers(cfg, envp, err, errlen) != 0)
                goto fail;
        if (ov != NULL) {
                const struct {
                        const char *key, *option, *value;
                } cmdline[] = {
                    {"listen", "--listen", ov->listen},
                    {"log_format", "--log-format", ov->log_format},
                    {"log_level", "--log-level", ov->log_level},
                };
                for (size_t i = 0; i < sizeof(cmdline) / sizeof(cmdline[0]); i++) {
                        char why[256];
                        if (cmdline[i].value == NULL)
                                continue;
                        const struct key *k = config_key_find(false, cmdline[i].key);
                        if (config_key_set(k, cfg, cmdline[i].value, why, sizeof(why)) != 0) {
                                snprintf(err, errlen, "command line: %s: %s", cmdline[i].option,
                                         why);
                                goto fail;
                        }
                }
        }
        if (file_targets == 0 || cfg->default_targets) {
                size_t before = cfg->ntargets;
                if (config_compose_targets(cfg, envp, err, errlen) != 0)
                        goto fail;
                /* A file target of the same name wins over a default one. */
                for (size_t i = before; i < cfg->ntargets;) {
                        bool dup = false;
                        for (size_t j = 0; j < before; j++)
                                if (strcmp(cfg->targets[i].name, cfg->targets[j].name) == 0)
                                        dup = true;
                        if (dup) {
                                cfg_target_clear(&cfg->targets[i]);
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
                const struct key *k = config_key_find(false, "http_max_connections_per_ip");
                daemon_where(cfg, dlines,
                             dlines[k - config_keys] != 0 ? "http_max_connections_per_ip"
                                                          : "http_max_connections",
                             where, sizeof(where));
                snprintf(err, errlen,
                         "%s: http_max_connections_per_ip (%ld) is above http_max_connections "
                         "(%ld)",
                         where, cfg->http_max_connections_per_ip, cfg->http_max_connections);
                goto fail;
        }
        if ((cfg->tls_cert_file == NULL) != (cfg->tls_key_file == NULL)) {
                const char *given = cfg->tls_cert_file != NULL ? "tls_cert_file" : "tls_key_file";
                daemon_where(cfg, dlines, given, where, sizeof(where));
                snprintf(err, errlen, "%s: needs %s too (HTTPS takes a certificate and its key)",
                         where, cfg->tls_cert_file != NULL ? "tls_key_file" : "tls_cert_file");
                goto fail;
        }
        if (finish_targets(cfg, cfg->file, lines, err, errlen) != 0 ||
            finish_notifiers(cfg, nlines, err, errlen) != 0)
                goto fail;
        free(nlines);
        free(lines);
        free(dlines);
        return cfg;
fail:
        free(nlines);
        free(lines);
        free(dlines);
        config_free(cfg);
        return NULL;
}

void config_free(struct config *cfg)
{
        if (cfg == NULL)
                return;
        for (size_t i = 0; i < cfg->ntargets; i++)
                cfg_target_clear(&cfg->targets[i]);
        free(cfg->targets);
        free(cfg->file);
        free(cfg->listen_host);
        if (cfg->status_token != NULL)
                explicit_bzero(cfg->status_token, strlen(cfg->status_token));
        free(cfg->status_token);
        free(cfg->nameservers);
        free(cfg->state_file);
        free(cfg->tls_cert_file);
        free(cfg->tls_key_file);
        free(cfg->instance);
        free(cfg->external_url);
        for (size_t i = 0; i < cfg->nnotifiers; i++)
                notify_clear(&cfg->notifiers[i]);
        free(cfg->notifiers);
        free(cfg);
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
                        cfg_target_clear(&cfg->targets[i]);
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
            !str_eq(a->sslrootcert, b->sslrootcert) || !str_eq(a->sslcert, b->sslcert) ||
            !str_eq(a->sslkey, b->sslkey) || !str_eq(a->app_user, b->app_user))
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
               a->queue_warn == b->queue_warn && a->headroom_warn == b->headroom_warn &&
               a->cert_expiry_warn_ms == b->cert_expiry_warn_ms;
}

bool notify_conf_equal(const struct notify_conf *a, const struct notify_conf *b)
{
        return strcmp(a->name, b->name) == 0 && a->kind == b->kind && str_eq(a->url, b->url) &&
               str_eq(a->bearer_token, b->bearer_token) && str_eq(a->ca_file, b->ca_file) &&
               str_eq(a->targets, b->targets) && a->min_duration_ms == b->min_duration_ms &&
               a->notify_warn == b->notify_warn && a->send_resolved == b->send_resolved &&
               a->timeout_ms == b->timeout_ms && a->repeat_interval_ms == b->repeat_interval_ms &&
               a->queue_max == b->queue_max;
}

/* ---- printing ---- */

void config_print(const struct config *cfg, FILE *out)
{
        fprintf(out, "; effective configuration%s%s\n", cfg->file ? " from " : "",
                cfg->file ? cfg->file : " (built-in defaults and environment)");
        fprintf(out, "[daemon]\n");
        for (size_t i = 0; i < config_nkeys; i++)
                if (config_keys[i].sections & S_DAEMON)
                        config_key_print(out, &config_keys[i], cfg);
        for (size_t ti = 0; ti < cfg->ntargets; ti++) {
                const struct target_conf *t = &cfg->targets[ti];
                fprintf(out, "\n[target %s]\n", t->name);
                for (size_t i = 0; i < config_nkeys; i++) {
                        const struct key *k = &config_keys[i];
                        if (k->sections & (1u << t->kind))
                                config_key_print(out, k, t);
                }
        }
        for (size_t ni = 0; ni < cfg->nnotifiers; ni++) {
                const struct notify_conf *n = &cfg->notifiers[ni];
                fprintf(out, "\n[notify %s]\n", n->name);
                for (size_t i = 0; i < config_nkeys; i++)
                        if (config_keys[i].sections & S_NOTIFY)
                                config_key_print(out, &config_keys[i], n);
        }
}
