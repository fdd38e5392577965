/* Configuration: built-in defaults < INI file < environment < command line.
 *
 * A struct config is built whole by config_load() and never changed after:
 * a reload builds a new one and swaps it in, so a bad file leaves the old
 * one in force.  Every string in it is owned by the config and freed by
 * config_free(). */
#ifndef HEALTHD_CONFIG_H
#define HEALTHD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum target_kind { KIND_REDIS, KIND_POSTGRES, KIND_PGBOUNCER };

enum log_format { LOG_TEXT, LOG_JSON };
enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

#define TARGET_NAME_MAX 64
#define MAX_QUEUES 16
/* A queue name's bytes with the NUL: the Redis probe keeps each queue's
 * name in a buffer of this size (struct queue_len), so a longer name would
 * be cut there and its queue-length metric never found. */
#define QUEUE_NAME_MAX 64

struct target_conf {
        char name[TARGET_NAME_MAX];
        enum target_kind kind;
        char *host;
        int port;
        int db; /* redis logical database */
        char *queues[MAX_QUEUES];
        int nqueues;
        char *dbname;
        char *user; /* redis: ACL user name, may be NULL */
        char *password;
        char *admin_user;
        char *admin_password;
        char *sslmode;
        /* libpq's files (paths, checked readable when the config is
         * loaded); NULL: libpq's defaults under ~/.postgresql */
        char *sslrootcert;
        char *sslcert;
        char *sslkey;
        int64_t cert_expiry_warn_ms; /* 0: never warn */
        bool tls;                    /* redis: always false (refused when set) */
        int64_t interval_ms;
        int64_t timeout_ms;
        int64_t retry_interval_ms;
        int rise;
        int fall;
        int64_t latency_target_ms;
        bool critical;
        /* thresholds */
        char *app_user;
        bool expect_primary;
        double connections_warn;
        int64_t maxwait_warn_ms;
        double clients_warn;
        long pool_size_min;
        long pool_size_max;
        long queue_warn;
        double headroom_warn;
};

/* One [notify NAME] section (SPEC 12), or a notifier made from
 * HEALTHD_ALERTMANAGER_URL / HEALTHD_WEBHOOK_URL. */
enum notify_kind { NOTIFY_ALERTMANAGER, NOTIFY_WEBHOOK };

#define NOTIFY_NAME_MAX 64
#define MAX_NOTIFIERS 32

struct notify_conf {
        char name[NOTIFY_NAME_MAX];
        enum notify_kind kind;
        char *url;           /* a secret: webhook URLs carry tokens */
        char *bearer_token;  /* a secret; NULL: no Authorization header */
        char *ca_file;       /* CA bundle for https:// (NULL: the system's) */
        char *targets;       /* as written (comma-separated); NULL: all targets */
        char **target_names; /* `targets` split, each a configured target */
        size_t ntarget_names;
        int64_t min_duration_ms;
        bool notify_warn;
        bool send_resolved;
        int64_t timeout_ms;
        int64_t repeat_interval_ms;
        long queue_max;
};

struct config {
        char *file; /* NULL when no file was read */
        char *listen_host;
        int listen_port;
        enum log_format log_format;
        enum log_level log_level;
        int64_t interval_ms;
        int64_t timeout_ms; /* 0: min(1 s, interval / 2) */
        int64_t retry_interval_ms;
        int rise;
        int fall;
        int64_t startup_target_ms;
        int64_t reconnect_target_ms;
        int64_t latency_target_ms;
        char *status_token;
        char *nameservers; /* comma-separated ip[:port]; NULL: /etc/resolv.conf */
        int64_t http_connection_timeout_ms;
        long http_max_connections;
        long http_max_connections_per_ip;
        long http_memory_limit;
        bool default_targets;
        char *state_file;          /* SPEC 11; NULL: nothing persisted */
        int64_t state_interval_ms; /* write at least this often (default 60 s) */
        long events_max;           /* events kept in the journal (default 1000) */
        /* HTTPS for the daemon's own endpoint: both or neither (SPEC 13) */
        char *tls_cert_file;
        char *tls_key_file;
        /* notifications (SPEC 12) */
        char *instance;     /* the "instance" of every notification; default the host name */
        char *external_url; /* where people reach this daemon (generatorURL); may be NULL */
        struct notify_conf *notifiers;
        size_t nnotifiers;
        struct target_conf *targets;
        size_t ntargets;
};

/* What the command line overrides (NULL or 0: not given). */
struct config_overrides {
        const char *file;
        const char *listen;
        const char *log_format;
        const char *log_level;
};

/* Builds the effective configuration from defaults, the file named in
 * ov->file (or none), the environment `envp` (NULL-terminated "K=V"
 * strings; NULL means no environment) and the overrides.  On error returns
 * NULL and writes one message naming the file, line and key into err. */
struct config *config_load(const struct config_overrides *ov, char *const *envp, char *err,
                           size_t errlen);
void config_free(struct config *cfg);

/* Prints the effective configuration as INI, secrets redacted. */
void config_print(const struct config *cfg, FILE *out);

/* True when two target configurations are the same (a reload keeps the
 * history of such targets). */
bool target_conf_equal(const struct target_conf *a, const struct target_conf *b);

/* Keeps only the named targets (for --once TARGET...). */
void config_keep_targets(struct config *cfg, const char *const *names, size_t n);

const struct target_conf *config_find_target(const struct config *cfg, const char *name);

const char *target_kind_name(enum target_kind kind);
const char *notify_kind_name(enum notify_kind kind);

/* True when the notifier watches the target (its `targets`, or all). */
bool notify_conf_watches(const struct notify_conf *n, const char *target);
/* True when two notifier configurations are the same (a reload keeps the
 * queue and the alerts of such notifiers). */
bool notify_conf_equal(const struct notify_conf *a, const struct notify_conf *b);

/* Parses "host:port", "[v6]:port" or ":port"; returns 0 or -1. */
int parse_listen(const char *s, char *host, size_t hostlen, int *port);

#endif
