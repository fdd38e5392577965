/* Internal to the configuration loader: shared by config.c (the load order,
 * the rules across keys, printing), config_keys.c (the key table and one
 * set/print pair per key type), config_ini.c (the INI file through inih) and
 * config_compose.c (the default targets from the Compose environment).
 * Nothing outside these files includes it: the rest of the daemon sees only
 * the finished, immutable struct config of config.h. */
#ifndef HEALTHD_CONFIG_IMPL_H
#define HEALTHD_CONFIG_IMPL_H

#include "config.h"

/* At most this many [target NAME] sections in a file. */
#define MAX_TARGETS 4096

/* ---- the key table ---- */

/* Where a key may appear: S_DAEMON for [daemon], else the kinds of target
 * whose sections accept it. */
#define K_REDIS (1u << KIND_REDIS)
#define K_PG (1u << KIND_POSTGRES)
#define K_PGB (1u << KIND_PGBOUNCER)
#define K_ALL (K_REDIS | K_PG | K_PGB)
#define S_DAEMON (1u << 8)
#define S_NOTIFY (1u << 9)

/* KF_SECRET: printed as <redacted>, never as its value.  KF_INHERIT: a target
 * key that, when no file or environment set it, takes the value of the
 * [daemon] key of the same name.  KF_NONEMPTY: a string key (or the file
 * of a *_file key) that must not be empty, as a token that an empty
 * password would match. */
#define KF_SECRET (1u << 0)
#define KF_INHERIT (1u << 1)
#define KF_NONEMPTY (1u << 2)

struct key;

/* A key type: parses a value into the struct at `base` (struct config for
 * [daemon] keys, struct target_conf for target keys), or says why not in
 * `why`; prints the value as one INI line that reads back the same (NULL:
 * the key is never printed, as a *_file key that fills another key). */
struct key_type {
        int (*set)(const struct key *k, void *base, const char *value, char *why, size_t whylen);
        void (*print)(FILE *out, const struct key *k, const void *base);
};

extern const struct key_type type_str, type_secret, type_secret_file, type_int, type_long,
    type_port, type_dur, type_bool, type_ratio, type_enum, type_word, type_queues, type_listen,
    type_file, type_keyfile, type_redis_tls, type_url, type_url_file, type_url_plain;

struct key {
        const char *name;
        unsigned sections; /* S_DAEMON or K_* */
        const struct key_type *type;
        size_t off;  /* the field in the struct */
        size_t off2; /* a second field: the listen port, the number of queues */
        /* The default, parsed by the type when a section or the daemon's
         * configuration starts; NULL: none (or inherited, KF_INHERIT). */
        const char *def;
        /* Per kind of target, a default applied after loading when nothing
         * set the key (a NULL string or a zero port). */
        const char *kind_def[3];
        unsigned flags;
        long min, max;            /* type_int, type_long; type_dur: min and max in ms, when not 0 */
        const char *const *words; /* type_enum, type_word: the accepted values */
        int nwords;
        const char *words_what; /* type_word: what the value must be, for errors */
};

extern const struct key config_keys[];
extern const size_t config_nkeys;

/* The [daemon] key (target false) or target key (target true) of that name,
 * or NULL. */
const struct key *config_key_find(bool target, const char *name);
/* The [notify NAME] key of that name, or NULL. */
const struct key *config_key_find_notify(const char *name);
/* Parses value into the key's field of base; returns 0, or -1 with why. */
int config_key_set(const struct key *k, void *base, const char *value, char *why, size_t whylen);
void config_key_print(FILE *out, const struct key *k, const void *base);
/* Sets every key of the section (S_DAEMON, or K_ALL for a new target)
 * that has a default to it, and KF_INHERIT keys to "not set". */
void config_key_defaults(unsigned section, void *base);
/* After loading: gives each key of the target's kind that nothing set its
 * [daemon] value (KF_INHERIT) or its per-kind default. */
void config_key_fill_target(struct target_conf *t, const struct config *cfg);

/* ---- shared helpers (config_keys.c) ---- */

char *cfg_strdup(const char *s);
void cfg_set_str(char **slot, const char *v);
/* NAME's value in envp (NULL-terminated "K=V" strings), or NULL. */
const char *cfg_env_get(char *const *envp, const char *name);
/* Reads a secret: the whole file, trailing newlines cut. */
int cfg_read_secret_file(const char *path, char **out, char *why, size_t whylen);

/* ---- targets (config.c) ---- */

struct target_conf *cfg_target_add(struct config *cfg, const char *name);
void cfg_target_clear(struct target_conf *t);
bool cfg_valid_target_name(const char *s);

/* ---- notifiers (config.c) ---- */

struct notify_conf *cfg_notify_add(struct config *cfg, const char *name);
struct notify_conf *cfg_notify_find(struct config *cfg, const char *name);

/* ---- the INI file (config_ini.c) ---- */

/* Reads the file into cfg.  lines[i] gets the line of the i-th target's
 * section header, dlines[k] the line that set [daemon] key k (an index into
 * config_keys), nlines[2*i] the line of the i-th notifier's section header
 * and nlines[2*i+1] the line of its `targets` key.  Returns the number of targets the file defined,
 * or -1 with one message naming the file, line and key in err. */
int config_ini_load(struct config *cfg, const char *file, int *lines, int *dlines, int *nlines,
                    char *err, size_t errlen);

/* ---- the Compose stack's default targets (config_compose.c) ---- */

/* Appends postgres, pgbouncer, redis-cache, redis-channels and redis-celery,
 * addressed by the stack's environment variables (SPEC 6).  Returns 0, or
 * -1 with a message naming the variable in err. */
int config_compose_targets(struct config *cfg, char *const *envp, char *err, size_t errlen);

#endif
