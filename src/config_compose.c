/* The default targets: the Compose stack's postgres, pgbouncer and the three
 * Redis logical databases, addressed and authenticated by the same
 * environment variables that the stack's .env gives the Django services
 * (SPEC 6).  Used when no file defines a target, or with
 * [daemon] default_targets = yes. */
#include "config_impl.h"
#include "textutil.h"

#include <stdlib.h>
#include <string.h>

static const char *envd(char *const *envp, const char *name, const char *def)
{
        const char *v = cfg_env_get(envp, name);
        return v != NULL && v[0] != '\0' ? v : def;
}

/* A secret from NAME or NAME_FILE (the Docker secrets convention). */
static int env_secret(char *const *envp, const char *name, char **slot, char *err, size_t errlen)
{
        char fname[96];
        snprintf(fname, sizeof(fname), "%s_FILE", name);
        const char *path = cfg_env_get(envp, fname);
        if (path != NULL && path[0] != '\0') {
                char why[256];
                if (cfg_read_secret_file(path, slot, why, sizeof(why)) != 0) {
                        snprintf(err, errlen, "environment: %s: %s", fname, why);
                        return -1;
                }
                return 0;
        }
        const char *v = cfg_env_get(envp, name);
        if (v != NULL && v[0] != '\0')
                cfg_set_str(slot, v);
        return 0;
}

static int env_port(char *const *envp, const char *name, int def, int *out, char *err,
                    size_t errlen)
{
        const char *v = cfg_env_get(envp, name);
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

/* A target key from an environment variable, through the key table (so the
 * same checks apply: a known sslmode, a readable file). */
static int env_key(char *const *envp, const char *name, struct target_conf *t, const char *key,
                   char *err, size_t errlen)
{
        const char *v = cfg_env_get(envp, name);
        if (v == NULL || v[0] == '\0')
                return 0;
        char why[300];
        if (config_key_set(config_key_find(true, key), t, v, why, sizeof(why)) != 0) {
                snprintf(err, errlen, "environment: %s: %s", name, why);
                return -1;
        }
        return 0;
}

int config_compose_targets(struct config *cfg, char *const *envp, char *err, size_t errlen)
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

        struct target_conf *t = cfg_target_add(cfg, "postgres");
        t->kind = KIND_POSTGRES;
        t->host = cfg_strdup(envd(envp, "POSTGRES_HOST", "postgres"));
        if (env_port(envp, "POSTGRES_PORT", 5432, &t->port, err, errlen) != 0)
                goto out;
        t->dbname = cfg_strdup(db);
        t->user = cfg_strdup(hd_user);
        t->password = cfg_strdup(hd_pw);
        t->app_user = cfg_strdup(app_user);
        if (env_key(envp, "POSTGRES_SSLMODE", t, "sslmode", err, errlen) != 0 ||
            env_key(envp, "POSTGRES_SSLROOTCERT", t, "sslrootcert", err, errlen) != 0)
                goto out;

        t = cfg_target_add(cfg, "pgbouncer");
        t->kind = KIND_PGBOUNCER;
        t->host = cfg_strdup(envd(envp, "PGBOUNCER_HOST", "pgbouncer"));
        if (env_port(envp, "PGBOUNCER_PORT", 6432, &t->port, err, errlen) != 0)
                goto out;
        t->dbname = cfg_strdup(db);
        t->user = cfg_strdup(hd_user);
        t->password = cfg_strdup(hd_pw);
        t->admin_user = cfg_strdup(envd(envp, "PGBOUNCER_ADMIN_USER", "pgbouncer"));
        if (env_secret(envp, "PGBOUNCER_ADMIN_PASSWORD", &t->admin_password, err, errlen) != 0 ||
            env_key(envp, "PGBOUNCER_SSLMODE", t, "sslmode", err, errlen) != 0 ||
            env_key(envp, "PGBOUNCER_SSLROOTCERT", t, "sslrootcert", err, errlen) != 0)
                goto out;

        static const char *const names[] = {"redis-cache", "redis-channels", "redis-celery"};
        for (int i = 0; i < 3; i++) {
                t = cfg_target_add(cfg, names[i]);
                t->kind = KIND_REDIS;
                t->db = i;
                t->host = cfg_strdup(envd(envp, "REDIS_HOST", "redis"));
                if (env_port(envp, "REDIS_PORT", 6379, &t->port, err, errlen) != 0)
                        goto out;
                const char *u = cfg_env_get(envp, "REDIS_USERNAME");
                t->user = u != NULL && u[0] != '\0' ? cfg_strdup(u) : NULL;
                if (env_secret(envp, "REDIS_PASSWORD", &t->password, err, errlen) != 0)
                        goto out;
                if (i == 2) {
                        char why[128];
                        const struct key *qk = config_key_find(true, "queues");
                        if (config_key_set(qk, t, envd(envp, "CELERY_QUEUES", "celery"), why,
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
