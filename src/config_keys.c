/* The configuration keys in one declarative table (PgBouncer's way): a row
 * names a key, where it may appear, its type, its field, its default and
 * its flags; a type is one set/print pair.  The INI file, the environment
 * (HEALTHD_<KEY> for every [daemon] key), the defaults and --check-config
 * all go through this table, so a new key is one row. */
#include "config_impl.h"
#include "log.h"
#include "textutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define D(f) offsetof(struct config, f)
#define T(f) offsetof(struct target_conf, f)
#define N(f) offsetof(struct notify_conf, f)
#define NWORDS(a) (int)(sizeof(a) / sizeof((a)[0]))

/* In the order of enum target_kind. */
static const char *const kind_words[] = {"redis", "postgres", "pgbouncer"};
/* In the order of enum notify_kind. */
static const char *const notify_kind_words[] = {"alertmanager", "webhook"};
/* In the order of enum log_format. */
static const char *const format_words[] = {"text", "json"};
static const char *const sslmode_words[] = {"disable", "allow",     "prefer",
                                            "require", "verify-ca", "verify-full"};

#define ENUM(w) .words = (w), .nwords = NWORDS(w)
#define LEVELS .words = log_level_names, .nwords = LOG_NLEVELS

/* [daemon] rows first, then target rows, each in the order --check-config
 * prints them.  A key of both sections has a row in each: the fields
 * differ. */
const struct key config_keys[] = {
    {"listen", S_DAEMON, &type_listen, D(listen_host), D(listen_port), "127.0.0.1:8080"},
    {"log_format", S_DAEMON, &type_enum, D(log_format), 0, "text", ENUM(format_words)},
    {"log_level", S_DAEMON, &type_enum, D(log_level), 0, "info", LEVELS},
    {"interval", S_DAEMON, &type_dur, D(interval_ms), 0, "2s"},
    /* 0: min(1 s, interval / 2), decided per target */
    {"timeout", S_DAEMON, &type_dur, D(timeout_ms), 0, "0"},
    {"retry_interval", S_DAEMON, &type_dur, D(retry_interval_ms), 0, "250ms"},
    {"rise", S_DAEMON, &type_int, D(rise), 0, "2", .min = 1, .max = 100},
    {"fall", S_DAEMON, &type_int, D(fall), 0, "2", .min = 1, .max = 100},
    {"startup_target", S_DAEMON, &type_dur, D(startup_target_ms), 0, "10s"},
    {"reconnect_target", S_DAEMON, &type_dur, D(reconnect_target_ms), 0, "5s"},
    {"latency_target", S_DAEMON, &type_dur, D(latency_target_ms), 0, "50ms"},
    /* An empty token would let in an empty Bearer token or Basic password. */
    {"status_token", S_DAEMON, &type_secret, D(status_token), .flags = KF_SECRET | KF_NONEMPTY},
    {"status_token_file", S_DAEMON, &type_secret_file, D(status_token),
     .flags = KF_SECRET | KF_NONEMPTY},
    {"nameservers", S_DAEMON, &type_str, D(nameservers)},
    /* libmicrohttpd counts the idle timeout in whole seconds, and 0 turns it
     * off: a client could then hold a connection for ever. */
    {"http_connection_timeout", S_DAEMON, &type_dur, D(http_connection_timeout_ms), 0, "10s",
     .min = 1000},
    {"http_max_connections", S_DAEMON, &type_long, D(http_max_connections), 0, "256", .min = 1,
     .max = 65536},
    {"http_max_connections_per_ip", S_DAEMON, &type_long, D(http_max_connections_per_ip), 0, "32",
     .min = 1, .max = 65536},
    {"http_memory_limit", S_DAEMON, &type_long, D(http_memory_limit), 0, "262144", .min = 16384,
     .max = 64L << 20},
    {"default_targets", S_DAEMON, &type_bool, D(default_targets), 0, "no"},
    /* The record (SPEC 11, docs/record.md). */
    {"state_file", S_DAEMON, &type_str, D(state_file)},
    {"state_interval", S_DAEMON, &type_dur, D(state_interval_ms), 0, "60s", .min = 100},
    {"events_max", S_DAEMON, &type_long, D(events_max), 0, "1000", .min = 10, .max = 100000},
    {"tls_cert_file", S_DAEMON, &type_file, D(tls_cert_file)},
    {"tls_key_file", S_DAEMON, &type_file, D(tls_key_file)},
    /* Notifications (SPEC 12, docs/notifications.md).  instance defaults to
     * the host name, filled in after loading. */
    {"instance", S_DAEMON, &type_str, D(instance)},
    {"external_url", S_DAEMON, &type_url_plain, D(external_url)},

    {"kind", K_ALL, &type_enum, T(kind), ENUM(kind_words)},
    {"host", K_ALL, &type_str, T(host), .kind_def = {"localhost", "localhost", "localhost"}},
    {"port", K_ALL, &type_port, T(port), .kind_def = {"6379", "5432", "6432"}},
    {"db", K_REDIS, &type_int, T(db), .min = 0, .max = 15},
    {"queues", K_REDIS, &type_queues, T(queues), T(nqueues)},
    {"dbname", K_PG | K_PGB, &type_str, T(dbname), .kind_def = {NULL, "postgres", "postgres"}},
    {"user", K_ALL, &type_str, T(user), .kind_def = {NULL, "postgres", "postgres"}},
    {"password", K_ALL, &type_secret, T(password), .flags = KF_SECRET},
    {"password_file", K_ALL, &type_secret_file, T(password), .flags = KF_SECRET},
    {"admin_user", K_PGB, &type_str, T(admin_user), .kind_def = {NULL, NULL, "pgbouncer"}},
    {"admin_password", K_PGB, &type_secret, T(admin_password), .flags = KF_SECRET},
    {"admin_password_file", K_PGB, &type_secret_file, T(admin_password), .flags = KF_SECRET},
    {"sslmode", K_PG | K_PGB, &type_word, T(sslmode), .kind_def = {NULL, "prefer", "prefer"},
     ENUM(sslmode_words), .words_what = "a libpq sslmode"},
    {"sslrootcert", K_PG | K_PGB, &type_file, T(sslrootcert)},
    {"sslcert", K_PG | K_PGB, &type_file, T(sslcert)},
    {"sslkey", K_PG | K_PGB, &type_keyfile, T(sslkey)},
    /* up to ten years: a certificate's whole life */
    {"cert_expiry_warn", K_PG | K_PGB, &type_dur, T(cert_expiry_warn_ms), 0, "14d",
     .max = 3650L * 86400000L},
    {"tls", K_REDIS, &type_redis_tls, T(tls), 0, "no"},
    {"interval", K_ALL, &type_dur, T(interval_ms), .flags = KF_INHERIT},
    {"timeout", K_ALL, &type_dur, T(timeout_ms), .flags = KF_INHERIT},
    {"retry_interval", K_ALL, &type_dur, T(retry_interval_ms), .flags = KF_INHERIT},
    {"rise", K_ALL, &type_int, T(rise), .flags = KF_INHERIT, .min = 1, .max = 100},
    {"fall", K_ALL, &type_int, T(fall), .flags = KF_INHERIT, .min = 1, .max = 100},
    {"latency_target", K_ALL, &type_dur, T(latency_target_ms), .flags = KF_INHERIT},
    {"critical", K_ALL, &type_bool, T(critical), 0, "yes"},
    {"app_user", K_PG, &type_str, T(app_user)},
    {"expect_primary", K_PG, &type_bool, T(expect_primary), 0, "yes"},
    {"connections_warn", K_PG, &type_ratio, T(connections_warn), 0, "0.8"},
    {"maxwait_warn", K_PGB, &type_dur, T(maxwait_warn_ms), 0, "1s"},
    {"clients_warn", K_PGB, &type_ratio, T(clients_warn), 0, "0.9"},
    {"pool_size_min", K_PGB, &type_long, T(pool_size_min), 0, "25", .min = 0, .max = 100000},
    {"pool_size_max", K_PGB, &type_long, T(pool_size_max), 0, "50", .min = 0, .max = 100000},
    {"queue_warn", K_REDIS, &type_long, T(queue_warn), 0, "1000", .min = 0, .max = 2000000000L},
    {"headroom_warn", K_REDIS, &type_ratio, T(headroom_warn), 0, "0.1"},

    /* [notify NAME] (SPEC 12).  The URL is a secret (webhook URLs carry
     * tokens): type_url prints only its scheme, host and port. */
    {"kind", S_NOTIFY, &type_enum, N(kind), ENUM(notify_kind_words)},
    {"url", S_NOTIFY, &type_url, N(url)},
    {"url_file", S_NOTIFY, &type_url_file, N(url)},
    {"bearer_token", S_NOTIFY, &type_secret, N(bearer_token), .flags = KF_SECRET | KF_NONEMPTY},
    {"bearer_token_file", S_NOTIFY, &type_secret_file, N(bearer_token),
     .flags = KF_SECRET | KF_NONEMPTY},
    /* Not in SPEC 12: a private CA (an internal Alertmanager, a test). */
    {"ca_file", S_NOTIFY, &type_file, N(ca_file)},
    {"targets", S_NOTIFY, &type_str, N(targets)},
    {"min_duration", S_NOTIFY, &type_dur, N(min_duration_ms), 0, "0"},
    {"notify_warn", S_NOTIFY, &type_bool, N(notify_warn), 0, "no"},
    {"send_resolved", S_NOTIFY, &type_bool, N(send_resolved), 0, "yes"},
    {"timeout", S_NOTIFY, &type_dur, N(timeout_ms), 0, "5s", .min = 100, .max = 300000},
    /* Alertmanager's resolve_timeout is 5m by default; endsAt is always
     * explicit (now + 4 x repeat_interval), so any interval works. */
    {"repeat_interval", S_NOTIFY, &type_dur, N(repeat_interval_ms), 0, "1m", .min = 1000},
    {"queue_max", S_NOTIFY, &type_long, N(queue_max), 0, "100", .min = 1, .max = 100000},
};

const size_t config_nkeys = sizeof(config_keys) / sizeof(config_keys[0]);

const char *target_kind_name(enum target_kind kind)
{
        if ((int)kind >= 0 && (int)kind < NWORDS(kind_words))
                return kind_words[kind];
        return "unknown";
}

const char *notify_kind_name(enum notify_kind kind)
{
        if ((int)kind >= 0 && (int)kind < NWORDS(notify_kind_words))
                return notify_kind_words[kind];
        return "unknown";
}

static const struct key *key_in(unsigned section, const char *name)
{
        for (size_t i = 0; i < config_nkeys; i++) {
                const struct key *k = &config_keys[i];
                if ((k->sections & section) != 0 && strcmp(k->name, name) == 0)
                        return k;
        }
        return NULL;
}

const struct key *config_key_find(bool target, const char *name)
{
        return key_in(target ? K_ALL : S_DAEMON, name);
}

const struct key *config_key_find_notify(const char *name)
{
        return key_in(S_NOTIFY, name);
}

/* ---- shared helpers ---- */

char *cfg_strdup(const char *s)
{
        if (s == NULL)
                return NULL;
        char *d = strdup(s);
        if (d == NULL)
                abort();
        return d;
}

void cfg_set_str(char **slot, const char *v)
{
        free(*slot);
        *slot = cfg_strdup(v);
}

const char *cfg_env_get(char *const *envp, const char *name)
{
        size_t n = strlen(name);
        for (; envp != NULL && *envp != NULL; envp++)
                if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
                        return *envp + n + 1;
        return NULL;
}

int cfg_read_secret_file(const char *path, char **out, char *why, size_t whylen)
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
        cfg_set_str(out, buf);
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

/* ---- printing helpers ---- */

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

#define SLOT(type, base, k) ((type *)(void *)((char *)(base) + (k)->off))
#define CSLOT(type, base, k) ((type const *)(const void *)((const char *)(base) + (k)->off))

/* ---- the types: one set/print pair each ---- */

static int str_set(const struct key *k, void *base, const char *value, char *why, size_t whylen)
{
        if (value[0] == '\0') {
                snprintf(why, whylen, "empty value");
                return -1;
        }
        if (strlen(value) > 255) {
                snprintf(why, whylen, "value longer than 255 bytes");
                return -1;
        }
        cfg_set_str(SLOT(char *, base, k), value);
        return 0;
}

static void str_print(FILE *out, const struct key *k, const void *base)
{
        const char *s = *CSLOT(char *, base, k);
        if (s != NULL)
                print_kv(out, k->name, s);
}

const struct key_type type_str = {str_set, str_print};

/* A secret is taken as it is: a password may be long, start with a space or
 * hold any byte but NUL. */
static int secret_set(const struct key *k, void *base, const char *value, char *why, size_t whylen)
{
        (void)why;
        (void)whylen;
        cfg_set_str(SLOT(char *, base, k), value);
        return 0;
}

const struct key_type type_secret = {secret_set, str_print};

/* The value names a file whose content is the secret of the field. */
static int secret_file_set(const struct key *k, void *base, const char *value, char *why,
                           size_t whylen)
{
        return cfg_read_secret_file(value, SLOT(char *, base, k), why, whylen);
}

const struct key_type type_secret_file = {secret_file_set, NULL};

static int int_set(const struct key *k, void *base, const char *value, char *why, size_t whylen)
{
        long l;
        if (parse_int_range(value, k->min, k->max, &l) != 0) {
                snprintf(why, whylen, "'%s' is not a whole number from %ld to %ld", value, k->min,
                         k->max);
                return -1;
        }
        *SLOT(int, base, k) = (int)l;
        return 0;
}

static void int_print(FILE *out, const struct key *k, const void *base)
{
        fprintf(out, "%s = %d\n", k->name, *CSLOT(int, base, k));
}

const struct key_type type_int = {int_set, int_print};

static int long_set(const struct key *k, void *base, const char *value, char *why, size_t whylen)
{
        long l;
        if (parse_int_range(value, k->min, k->max, &l) != 0) {
                snprintf(why, whylen, "'%s' is not a whole number from %ld to %ld", value, k->min,
                         k->max);
                return -1;
        }
        *SLOT(long, base, k) = l;
        return 0;
}

static void long_print(FILE *out, const struct key *k, const void *base)
{
        fprintf(out, "%s = %ld\n", k->name, *CSLOT(long, base, k));
}

const struct key_type type_long = {long_set, long_print};

static int port_set(const struct key *k, void *base, const char *value, char *why, size_t whylen)
{
        long l;
        if (parse_int_range(value, 1, 65535, &l) != 0) {
                snprintf(why, whylen, "'%s' is not a port number (1-65535)", value);
                return -1;
        }
        *SLOT(int, base, k) = (int)l;
        return 0;
}

const struct key_type type_port = {port_set, int_print};

/* The largest unit that gives a whole number: 14d, 2m, 1500ms. */
static void format_dur(char *v, size_t len, int64_t ms)
{
        if (ms % 86400000 == 0 && ms != 0)
                snprintf(v, len, "%lldd", (long long)(ms / 86400000));
        else if (ms % 3600000 == 0 && ms != 0)
                snprintf(v, len, "%lldh", (long long)(ms / 3600000));
        else if (ms % 60000 == 0 && ms != 0)
                snprintf(v, len, "%lldm", (long long)(ms / 60000));
        else if (ms % 1000 == 0 && ms != 0)
                snprintf(v, len, "%llds", (long long)(ms / 1000));
        else
                snprintf(v, len, "%lldms", (long long)ms);
}

static int dur_set(const struct key *k, void *base, const char *value, char *why, size_t whylen)
{
        int64_t ms, max = k->max > 0 ? k->max : 86400000;
        if (parse_duration_ms(value, &ms) != 0 || ms > max) {
                char maxs[32];
                format_dur(maxs, sizeof(maxs), max);
                snprintf(why, whylen,
                         "'%s' is not a duration (a number with ms, s, m, h or d, up to %s)", value,
                         maxs);
                return -1;
        }
        if (ms < k->min) {
                char min[32];
                format_dur(min, sizeof(min), k->min);
                snprintf(why, whylen, "'%s' is below the minimum, %s", value, min);
                return -1;
        }
        *SLOT(int64_t, base, k) = ms;
        return 0;
}

static void dur_print(FILE *out, const struct key *k, const void *base)
{
        char v[32];
        format_dur(v, sizeof(v), *CSLOT(int64_t, base, k));
        print_kv(out, k->name, v);
}

const struct key_type type_dur = {dur_set, dur_print};

static int bool_set(const struct key *k, void *base, const char *value, char *why, size_t whylen)
{
        bool b;
        if (parse_bool(value, &b) != 0) {
                snprintf(why, whylen, "'%s' is not yes or no", value);
                return -1;
        }
        *SLOT(bool, base, k) = b;
        return 0;
}

static void bool_print(FILE *out, const struct key *k, const void *base)
{
        fprintf(out, "%s = %s\n", k->name, *CSLOT(bool, base, k) ? "yes" : "no");
}

const struct key_type type_bool = {bool_set, bool_print};

static int ratio_set(const struct key *k, void *base, const char *value, char *why, size_t whylen)
{
        double r;
        if (parse_ratio(value, &r) != 0) {
                snprintf(why, whylen, "'%s' is not a ratio (0.8 or 80%%)", value);
                return -1;
        }
        *SLOT(double, base, k) = r;
        return 0;
}

static void ratio_print(FILE *out, const struct key *k, const void *base)
{
        char buf[64];
        format_ratio(buf, sizeof(buf), *CSLOT(double, base, k));
        print_kv(out, k->name, buf);
}

const struct key_type type_ratio = {ratio_set, ratio_print};

/* "'x' is not a, b or c" from the key's words. */
static void not_one_of(const struct key *k, const char *value, char *why, size_t whylen)
{
        size_t n = (size_t)snprintf(why, whylen, "'%s' is not ", value);
        for (int i = 0; i < k->nwords && n < whylen; i++)
                n += (size_t)snprintf(why + n, whylen - n, "%s%s",
                                      i == 0               ? ""
                                      : i == k->nwords - 1 ? " or "
                                                           : ", ",
                                      k->words[i]);
}

/* An enum field (int-sized; the enum's values are the indexes of words). */
static int enum_set(const struct key *k, void *base, const char *value, char *why, size_t whylen)
{
        for (int i = 0; i < k->nwords; i++)
                if (strcmp(value, k->words[i]) == 0) {
                        *SLOT(int, base, k) = i;
                        return 0;
                }
        not_one_of(k, value, why, whylen);
        return -1;
}

static void enum_print(FILE *out, const struct key *k, const void *base)
{
        int v = *CSLOT(int, base, k);
        fprintf(out, "%s = %s\n", k->name, v >= 0 && v < k->nwords ? k->words[v] : "unknown");
}

const struct key_type type_enum = {enum_set, enum_print};

/* A string field that must be one of the words (libpq reads sslmode itself,
 * so the field keeps the text). */
static int word_set(const struct key *k, void *base, const char *value, char *why, size_t whylen)
{
        for (int i = 0; i < k->nwords; i++)
                if (strcmp(value, k->words[i]) == 0) {
                        cfg_set_str(SLOT(char *, base, k), value);
                        return 0;
                }
        snprintf(why, whylen, "'%s' is not %s", value, k->words_what);
        return -1;
}

const struct key_type type_word = {word_set, str_print};

/* An http:// or https:// URL with a host.  The message never quotes the
 * value: a notifier's URL is a secret. */
static int url_check(const char *value, char *why, size_t whylen)
{
        char origin[300];
        if (strlen(value) > 2048) {
                snprintf(why, whylen, "URL longer than 2048 bytes");
                return -1;
        }
        for (const char *p = value; *p != '\0'; p++)
                if ((unsigned char)*p <= ' ' || *p == 0x7f) {
                        snprintf(why, whylen, "URL holds a space or a control character");
                        return -1;
                }
        if (url_origin(value, origin, sizeof(origin)) != 0) {
                snprintf(why, whylen,
                         "not an http:// or https:// URL with a host (value not shown: it may "
                         "hold a token)");
                return -1;
        }
        return 0;
}

static int url_set(const struct key *k, void *base, const char *value, char *why, size_t whylen)
{
        if (url_check(value, why, whylen) != 0)
                return -1;
        cfg_set_str(SLOT(char *, base, k), value);
        return 0;
}

/* Only the origin, and a path that says the rest was left out: the line
 * still reads back as a URL to the same server. */
static void url_print(FILE *out, const struct key *k, const void *base)
{
        const char *s = *CSLOT(char *, base, k);
        char origin[300], line[340];
        if (s == NULL)
                return;
        url_origin(s, origin, sizeof(origin));
        snprintf(line, sizeof(line), "%s/<redacted>", origin);
        print_kv(out, k->name, line);
}

const struct key_type type_url = {url_set, url_print};

static int url_file_set(const struct key *k, void *base, const char *value, char *why,
                        size_t whylen)
{
        char *url = NULL;
        if (cfg_read_secret_file(value, &url, why, whylen) != 0)
                return -1;
        if (url_check(url, why, whylen) != 0) {
                char inner[200];
                snprintf(inner, sizeof(inner), "%s", why);
                snprintf(why, whylen, "'%s': %s", value, inner);
                explicit_bzero(url, strlen(url));
                free(url);
                return -1;
        }
        char **slot = SLOT(char *, base, k);
        if (*slot != NULL)
                explicit_bzero(*slot, strlen(*slot));
        free(*slot);
        *slot = url;
        return 0;
}

const struct key_type type_url_file = {url_file_set, NULL};

/* A URL that is no secret ([daemon] external_url): printed whole. */
const struct key_type type_url_plain = {url_set, str_print};

/* A file the daemon or libpq will read: checked when the configuration is
 * loaded (at start and at every reload), so that a path that cannot be
 * read is a configuration error naming the key, not a failed check later.
 * `st` gets the file's stat. */
static int file_check(const char *value, struct stat *st, char *why, size_t whylen)
{
        if (value[0] == '\0') {
                snprintf(why, whylen, "empty value");
                return -1;
        }
        if (strlen(value) > 1023) {
                snprintf(why, whylen, "path longer than 1023 bytes");
                return -1;
        }
        /* stat first: opening a FIFO for reading would wait for a writer */
        if (stat(value, st) != 0) {
                snprintf(why, whylen, "cannot read '%s': %s", value, strerror(errno));
                return -1;
        }
        if (!S_ISREG(st->st_mode)) {
                snprintf(why, whylen, "'%s' is not a regular file", value);
                return -1;
        }
        FILE *f = fopen(value, "re");
        if (f == NULL) {
                snprintf(why, whylen, "cannot read '%s': %s", value, strerror(errno));
                return -1;
        }
        fclose(f);
        return 0;
}

static int file_set(const struct key *k, void *base, const char *value, char *why, size_t whylen)
{
        struct stat st;
        if (file_check(value, &st, why, whylen) != 0)
                return -1;
        cfg_set_str(SLOT(char *, base, k), value);
        return 0;
}

const struct key_type type_file = {file_set, str_print};

/* A client private key for libpq, which refuses one that others may read
 * (fe-secure-openssl.c, PostgreSQL 15): mode 0600 or less when owned by
 * the user, 0640 or less when owned by root.  The same rule here turns
 * what would be a failed login at every check into a configuration error
 * at load. */
static int keyfile_set(const struct key *k, void *base, const char *value, char *why, size_t whylen)
{
        struct stat st;
        if (file_check(value, &st, why, whylen) != 0)
                return -1;
        bool loose = st.st_uid == 0 ? (st.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO)) != 0
                                    : (st.st_mode & (S_IRWXG | S_IRWXO)) != 0;
        if (loose) {
                snprintf(why, whylen,
                         "'%s' has group or world access (mode %04o); libpq requires u=rw (0600) "
                         "or less when the file is owned by the daemon's user, u=rw,g=r (0640) or "
                         "less when owned by root",
                         value, (unsigned)(st.st_mode & 07777));
                return -1;
        }
        cfg_set_str(SLOT(char *, base, k), value);
        return 0;
}

const struct key_type type_keyfile = {keyfile_set, str_print};

/* hiredis 0.14.1, the version in Debian 12, has no TLS: a Redis target that
 * asks for it is refused rather than checked in clear text. */
static int redis_tls_set(const struct key *k, void *base, const char *value, char *why,
                         size_t whylen)
{
        bool b;
        if (parse_bool(value, &b) != 0) {
                snprintf(why, whylen, "'%s' is not yes or no", value);
                return -1;
        }
        if (b) {
                snprintf(why, whylen,
                         "TLS to Redis is not supported: hiredis 0.14.1 (Debian 12) has no TLS, "
                         "and checking in clear text a server meant to be reached over TLS "
                         "would be wrong (use a TLS proxy such as stunnel on loopback, or "
                         "leave tls = no)");
                return -1;
        }
        *SLOT(bool, base, k) = false;
        return 0;
}

const struct key_type type_redis_tls = {redis_tls_set, bool_print};

/* Queue names, separated by commas or spaces, into the array at off and its
 * count at off2. */
static int queues_set(const struct key *k, void *base, const char *value, char *why, size_t whylen)
{
        char **queues = SLOT(char *, base, k);
        int *nqueues = (int *)((char *)base + k->off2);
        for (int i = 0; i < *nqueues; i++) {
                free(queues[i]);
                queues[i] = NULL;
        }
        *nqueues = 0;
        const char *p = value;
        while (*p != '\0') {
                while (*p == ' ' || *p == ',')
                        p++;
                const char *e = p;
                while (*e != '\0' && *e != ',' && *e != ' ')
                        e++;
                if (e == p)
                        break;
                if (*nqueues == MAX_QUEUES) {
                        snprintf(why, whylen, "more than %d queues", MAX_QUEUES);
                        return -1;
                }
                if (e - p >= QUEUE_NAME_MAX) {
                        snprintf(why, whylen, "queue name '%.32s...' is longer than %d bytes", p,
                                 QUEUE_NAME_MAX - 1);
                        return -1;
                }
                queues[*nqueues] = strndup(p, (size_t)(e - p));
                if (queues[*nqueues] == NULL)
                        abort();
                (*nqueues)++;
                p = e;
        }
        if (*nqueues == 0) {
                snprintf(why, whylen, "no queue named");
                return -1;
        }
        return 0;
}

static void queues_print(FILE *out, const struct key *k, const void *base)
{
        char *const *queues = CSLOT(char *, base, k);
        int nqueues = *(const int *)((const char *)base + k->off2);
        if (nqueues == 0)
                return;
        char buf[1024];
        size_t n = 0;
        buf[0] = '\0';
        for (int i = 0; i < nqueues && n < sizeof(buf); i++)
                n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? "," : "", queues[i]);
        print_kv(out, k->name, buf);
}

const struct key_type type_queues = {queues_set, queues_print};

/* A numeric ADDRESS:PORT: the host string at off, the port at off2. */
static int listen_set(const struct key *k, void *base, const char *value, char *why, size_t whylen)
{
        char host[256];
        int port;
        if (parse_listen(value, host, sizeof(host), &port) != 0) {
                snprintf(why, whylen, "'%s' is not a numeric ADDRESS:PORT", value);
                return -1;
        }
        cfg_set_str(SLOT(char *, base, k), host);
        *(int *)((char *)base + k->off2) = port;
        return 0;
}

static void listen_print(FILE *out, const struct key *k, const void *base)
{
        const char *host = *CSLOT(char *, base, k);
        int port = *(const int *)((const char *)base + k->off2);
        if (strchr(host, ':') != NULL)
                fprintf(out, "%s = [%s]:%d\n", k->name, host, port);
        else
                fprintf(out, "%s = %s:%d\n", k->name, host, port);
}

const struct key_type type_listen = {listen_set, listen_print};

/* ---- the operations on a row ---- */

int config_key_set(const struct key *k, void *base, const char *value, char *why, size_t whylen)
{
        if (k->type->set(k, base, value, why, whylen) != 0)
                return -1;
        if ((k->flags & KF_NONEMPTY) && (*SLOT(char *, base, k))[0] == '\0') {
                if (k->type == &type_secret_file)
                        snprintf(why, whylen,
                                 "'%s' is empty (an empty secret would match an empty password; "
                                 "leave the key out for none)",
                                 value);
                else
                        snprintf(why, whylen,
                                 "empty value (an empty secret would match an empty password; "
                                 "leave the key out for none)");
                return -1;
        }
        return 0;
}

void config_key_print(FILE *out, const struct key *k, const void *base)
{
        if (k->type->print == NULL)
                return;
        if (k->flags & KF_SECRET) {
                if (*CSLOT(char *, base, k) != NULL)
                        print_kv(out, k->name, "<redacted>");
                return;
        }
        k->type->print(out, k, base);
}

void config_key_defaults(unsigned section, void *base)
{
        for (size_t i = 0; i < config_nkeys; i++) {
                const struct key *k = &config_keys[i];
                if ((k->sections & section) == 0)
                        continue;
                if (k->flags & KF_INHERIT) {
                        /* "not set": config.c fills it from [daemon] */
                        if (k->type == &type_dur)
                                *SLOT(int64_t, base, k) = -1;
                        else
                                *SLOT(int, base, k) = -1;
                } else if (k->def != NULL) {
                        char why[256];
                        if (config_key_set(k, base, k->def, why, sizeof(why)) != 0)
                                abort(); /* a bad default in the table above */
                }
        }
}

void config_key_fill_target(struct target_conf *t, const struct config *cfg)
{
        for (size_t i = 0; i < config_nkeys; i++) {
                const struct key *k = &config_keys[i];
                if ((k->sections & (1u << t->kind)) == 0)
                        continue;
                if (k->flags & KF_INHERIT) {
                        const struct key *dk = config_key_find(false, k->name);
                        if (k->type == &type_dur) {
                                if (*SLOT(int64_t, t, k) < 0)
                                        *SLOT(int64_t, t, k) = *CSLOT(int64_t, cfg, dk);
                        } else if (*SLOT(int, t, k) < 0) {
                                *SLOT(int, t, k) = *CSLOT(int, cfg, dk);
                        }
                        continue;
                }
                const char *def = k->kind_def[t->kind];
                if (def == NULL)
                        continue;
                /* only ports and strings have per-kind defaults */
                bool unset =
                    k->type == &type_port ? *SLOT(int, t, k) == 0 : *SLOT(char *, t, k) == NULL;
                if (unset) {
                        char why[256];
                        if (config_key_set(k, t, def, why, sizeof(why)) != 0)
                                abort(); /* a bad default in the table above */
                }
        }
}
