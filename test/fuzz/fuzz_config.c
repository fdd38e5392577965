/*
 * fuzz_config: config_load() over a fuzzed INI file, environment and
 * command-line overrides; config_print(), config_find_target(),
 * config_keep_targets() and config_free() on every configuration it accepts.
 *
 * Input format (a plain config file is a valid input, so etc/ and the unit
 * tests' files are seeds as they are):
 *
 *   <INI file text>
 *   %%
 *   KEY=VALUE            one environment entry per line ("NAME=value")
 *   --listen=ADDR        a line starting with --listen=, --log-format= or
 *   --log-level=LEVEL    --log-level= is that command-line override instead
 *
 * The file part ends at the first line that is exactly "%%"; without such a
 * line the whole input is the file and the environment is empty. An input
 * that starts with "%%\n" has no file at all (the built-in defaults and the
 * environment only, as when the daemon runs without -c). Every "@D/" in the
 * input becomes this process's fixture directory, which holds secret files
 * for password_file, status_token_file and the *_FILE variables:
 * @D/secret ("s3cret\n"), @D/crlf ("pw\r\n\r\n"), @D/empty, @D/nul ("a\0b"),
 * @D/max (4095 bytes) and @D/big (5000 bytes).
 *
 * The file is written to a private directory made with mkdtemp() under
 * $TMPDIR (scripts/fuzz.sh points that into build/), and the config*.c files' own
 * fopen() calls go through fuzz_config_fopen() below (see
 * fuzz_config_sandbox.h): nothing outside that directory is ever written.
 *
 * Checked on success: the rules config_load() promises to enforce (names,
 * ports, interval > timeout, rise/fall, ...) hold for every target, and the
 * printed configuration loads back to the same configuration (secrets
 * aside: they print as <redacted>). Set HEALTHD_FUZZ_ROUNDTRIP=0 to skip
 * that last check. On failure: err holds a message.
 */
#include "config.h"

#include "fuzz_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <sanitizer/common_interface_defs.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#define MAX_ENV 128

static char dir[PATH_MAX];
static char conf_path[PATH_MAX + 32];
static char print_path[PATH_MAX + 32];
static bool roundtrip = true;

/* ---- the fopen() that config*.c see ---- */

static bool safe_to_open(const char *path)
{
        struct stat st;
        struct statfs fs;

        if (stat(path, &st) != 0 || statfs(path, &fs) != 0)
                return false;
        if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
                return false; /* FIFO, socket, terminal, any device */
        switch ((unsigned long)fs.f_type) {
        case PROC_SUPER_MAGIC: /* /proc/kmsg blocks and consumes the kernel log */
        case SYSFS_MAGIC:
        case DEBUGFS_MAGIC:
        case TRACEFS_MAGIC: /* trace_pipe blocks */
        case SECURITYFS_MAGIC:
        case BPF_FS_MAGIC:
                return false;
        }
        return true;
}

FILE *fuzz_config_fopen(const char *path, const char *mode);

FILE *fuzz_config_fopen(const char *path, const char *mode)
{
        FUZZ_CHECK(mode[0] == 'r' && strchr(mode, '+') == NULL,
                   "config*.c opened '%s' with mode '%s': configuration loading must never write",
                   path, mode);
        if (!safe_to_open(path)) {
                errno = EACCES;
                return NULL;
        }
        int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
                return NULL;
        struct stat st;
        if (fstat(fd, &st) != 0 || (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))) {
                close(fd); /* swapped since the stat() */
                errno = EACCES;
                return NULL;
        }
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
                close(fd);
                return NULL;
        }
        FILE *f = fdopen(fd, "r");
        if (f == NULL)
                close(fd);
        return f;
}

/* ---- fixtures ---- */

static void write_file(const char *path, const void *data, size_t n)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        const char *p = data;

        if (fd < 0) {
                perror(path);
                abort();
        }
        while (n > 0) {
                ssize_t w = write(fd, p, n);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0) {
                        perror(path);
                        abort();
                }
                p += w;
                n -= (size_t)w;
        }
        close(fd);
}

static const char *const fixture_names[] = {"secret", "crlf", "empty", "nul", "max", "big"};

static void cleanup(void)
{
        char path[PATH_MAX + 32];

        for (size_t i = 0; i < sizeof(fixture_names) / sizeof(fixture_names[0]); i++) {
                snprintf(path, sizeof(path), "%s/%s", dir, fixture_names[i]);
                unlink(path);
        }
        unlink(conf_path);
        unlink(print_path);
        rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        (void)argc;
        (void)argv;
        const char *tmp = getenv("TMPDIR");
        if (tmp == NULL || tmp[0] == '\0')
                tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(dir, sizeof(dir), "%s/healthd-fuzz-config.XXXXXX", tmp);
        if (mkdtemp(dir) == NULL) {
                perror(dir);
                abort();
        }
        snprintf(conf_path, sizeof(conf_path), "%s/healthd.conf", dir);
        snprintf(print_path, sizeof(print_path), "%s/printed.conf", dir);
        /* Removed at exit, on a failed check and on a sanitizer report. */
        atexit(cleanup);
        fuzz_failure_hook = cleanup;
        __sanitizer_set_death_callback(cleanup);

        char path[PATH_MAX + 32];
        static char big[5000];
        memset(big, 'x', sizeof(big));
        const struct {
                const char *name;
                const char *data;
                size_t len;
        } fx[] = {
            {"secret", "s3cret\n", 7}, {"crlf", "pw\r\n\r\n", 6}, {"empty", "", 0},
            {"nul", "a\0b", 3},        {"max", big, 4095},        {"big", big, sizeof(big)},
        };
        for (size_t i = 0; i < sizeof(fx) / sizeof(fx[0]); i++) {
                snprintf(path, sizeof(path), "%s/%s", dir, fx[i].name);
                write_file(path, fx[i].data, fx[i].len);
        }
        const char *rt = getenv("HEALTHD_FUZZ_ROUNDTRIP");
        roundtrip = rt == NULL || strcmp(rt, "0") != 0;
        return 0;
}

/* ---- the input ---- */

/* data with every "@D/" replaced by the fixture directory; NUL-terminated. */
static char *expand(const uint8_t *data, size_t size, size_t *outlen)
{
        size_t dl = strlen(dir), n = 0;
        char *out = malloc(size * (dl + 1) + 1); /* "@D/" (3) -> dl + 1: at most */

        if (out == NULL)
                abort();
        for (size_t i = 0; i < size;) {
                if (size - i >= 3 && memcmp(data + i, "@D/", 3) == 0) {
                        memcpy(out + n, dir, dl);
                        n += dl;
                        out[n++] = '/';
                        i += 3;
                } else {
                        out[n++] = (char)data[i++];
                }
        }
        out[n] = '\0';
        *outlen = n;
        return out;
}

struct input {
        char *text;
        size_t len;
        bool has_file;
        size_t file_len;
        char *env[MAX_ENV + 1];
        size_t nenv;
        struct config_overrides ov;
        char *ov_strs[3];
};

static void input_parse(struct input *in, const uint8_t *data, size_t size)
{
        memset(in, 0, sizeof(*in));
        in->text = expand(data, size, &in->len);

        const char *env = NULL, *end = in->text + in->len;
        if (in->len >= 3 && memcmp(in->text, "%%\n", 3) == 0) {
                env = in->text + 3;
        } else {
                in->has_file = true;
                in->file_len = in->len;
                const char *sep = memmem(in->text, in->len, "\n%%\n", 4);
                if (sep != NULL) {
                        in->file_len = (size_t)(sep - in->text) + 1;
                        env = sep + 4;
                }
        }
        static const char *const ovs[] = {"--listen=", "--log-format=", "--log-level="};
        while (env != NULL && env < end) {
                const char *nl = memchr(env, '\n', (size_t)(end - env));
                const char *le = nl != NULL ? nl : end;
                char *line = fuzz_strndup((const uint8_t *)env, (size_t)(le - env));
                bool used = false;
                for (int k = 0; k < 3 && !used; k++) {
                        size_t pl = strlen(ovs[k]);
                        if (strncmp(line, ovs[k], pl) == 0 && in->ov_strs[k] == NULL) {
                                in->ov_strs[k] = line;
                                used = true;
                        }
                }
                if (!used && in->nenv < MAX_ENV)
                        in->env[in->nenv++] = line;
                else if (!used)
                        free(line);
                env = nl != NULL ? nl + 1 : end;
        }
        in->env[in->nenv] = NULL;
        in->ov.file = in->has_file ? conf_path : NULL;
        in->ov.listen = in->ov_strs[0] ? in->ov_strs[0] + strlen(ovs[0]) : NULL;
        in->ov.log_format = in->ov_strs[1] ? in->ov_strs[1] + strlen(ovs[1]) : NULL;
        in->ov.log_level = in->ov_strs[2] ? in->ov_strs[2] + strlen(ovs[2]) : NULL;
        if (in->has_file)
                write_file(conf_path, in->text, in->file_len);
}

static void input_free(struct input *in)
{
        for (size_t i = 0; i < in->nenv; i++)
                free(in->env[i]);
        for (int k = 0; k < 3; k++)
                free(in->ov_strs[k]);
        free(in->text);
}

/* ---- checks ---- */

static bool valid_name(const char *s)
{
        size_t n = strnlen(s, TARGET_NAME_MAX);

        if (n == 0 || n >= TARGET_NAME_MAX)
                return false;
        for (; *s != '\0'; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
                        return false;
        return true;
}

static void check_config(const struct config *cfg)
{
        FUZZ_CHECK(cfg->listen_host != NULL, "no listen host");
        FUZZ_CHECK(cfg->listen_port >= 1 && cfg->listen_port <= 65535, "listen port %d",
                   cfg->listen_port);
        FUZZ_CHECK(cfg->interval_ms >= 10, "interval %lld", (long long)cfg->interval_ms);
        FUZZ_CHECK(
            cfg->timeout_ms >= 0 && (cfg->timeout_ms == 0 || cfg->timeout_ms < cfg->interval_ms),
            "timeout %lld, interval %lld", (long long)cfg->timeout_ms, (long long)cfg->interval_ms);
        FUZZ_CHECK(cfg->http_max_connections_per_ip <= cfg->http_max_connections,
                   "per-IP limit %ld above %ld", cfg->http_max_connections_per_ip,
                   cfg->http_max_connections);
        FUZZ_CHECK(cfg->http_connection_timeout_ms >= 1000, "http_connection_timeout %lld",
                   (long long)cfg->http_connection_timeout_ms);
        FUZZ_CHECK(cfg->status_token == NULL || cfg->status_token[0] != '\0', "empty status token");
        FUZZ_CHECK(cfg->ntargets == 0 || cfg->targets != NULL, "targets NULL");
        for (size_t i = 0; i < cfg->ntargets; i++) {
                const struct target_conf *t = &cfg->targets[i];
                FUZZ_CHECK(valid_name(t->name), "target %zu: bad name '%.64s'", i, t->name);
                for (size_t j = 0; j < i; j++)
                        FUZZ_CHECK(strcmp(cfg->targets[j].name, t->name) != 0, "target '%s' twice",
                                   t->name);
                FUZZ_CHECK(t->kind == KIND_REDIS || t->kind == KIND_POSTGRES ||
                               t->kind == KIND_PGBOUNCER,
                           "'%s': kind %d", t->name, (int)t->kind);
                FUZZ_CHECK(t->host != NULL && t->port >= 1 && t->port <= 65535,
                           "'%s': host or port %d", t->name, t->port);
                FUZZ_CHECK(t->interval_ms >= 10 && t->timeout_ms > 0 &&
                               t->timeout_ms < t->interval_ms && t->retry_interval_ms >= 1,
                           "'%s': interval %lld, timeout %lld, retry %lld", t->name,
                           (long long)t->interval_ms, (long long)t->timeout_ms,
                           (long long)t->retry_interval_ms);
                FUZZ_CHECK(t->rise >= 1 && t->rise <= 100 && t->fall >= 1 && t->fall <= 100,
                           "'%s': rise %d, fall %d", t->name, t->rise, t->fall);
                FUZZ_CHECK(t->latency_target_ms >= 0, "'%s': latency target", t->name);
                FUZZ_CHECK(t->nqueues >= 0 && t->nqueues <= MAX_QUEUES, "'%s': %d queues", t->name,
                           t->nqueues);
                for (int q = 0; q < t->nqueues; q++)
                        FUZZ_CHECK(t->queues[q] != NULL && t->queues[q][0] != '\0' &&
                                       strlen(t->queues[q]) < QUEUE_NAME_MAX,
                                   "'%s': queue %d empty or too long", t->name, q);
                FUZZ_CHECK(t->db >= 0 && t->db <= 15, "'%s': db %d", t->name, t->db);
                if (t->kind != KIND_REDIS)
                        FUZZ_CHECK(t->dbname != NULL && t->user != NULL && t->sslmode != NULL,
                                   "'%s': dbname, user or sslmode unset", t->name);
                if (t->kind == KIND_PGBOUNCER)
                        FUZZ_CHECK(t->admin_user != NULL && t->pool_size_min <= t->pool_size_max,
                                   "'%s': admin_user or pool sizes", t->name);
                FUZZ_CHECK(target_conf_equal(t, t), "'%s' differs from itself", t->name);
                FUZZ_CHECK(config_find_target(cfg, t->name) == t, "'%s' not found", t->name);
        }
        FUZZ_CHECK(config_find_target(cfg, "no such target!") == NULL, "found a bad name");
}

static bool str_same(const char *a, const char *b)
{
        return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

/* Same configuration, secrets compared by presence only (they print as
 * <redacted>); returns NULL or what differs. */
static const char *config_diff(const struct config *a, const struct config *b)
{
        if (!str_same(a->listen_host, b->listen_host) || a->listen_port != b->listen_port)
                return "listen";
        if (a->log_format != b->log_format || a->log_level != b->log_level)
                return "log_format or log_level";
        if (a->interval_ms != b->interval_ms || a->timeout_ms != b->timeout_ms ||
            a->retry_interval_ms != b->retry_interval_ms || a->rise != b->rise ||
            a->fall != b->fall)
                return "daemon timings";
        if (a->startup_target_ms != b->startup_target_ms ||
            a->reconnect_target_ms != b->reconnect_target_ms ||
            a->latency_target_ms != b->latency_target_ms)
                return "service-level targets";
        if ((a->status_token == NULL) != (b->status_token == NULL))
                return "status_token";
        if (!str_same(a->nameservers, b->nameservers))
                return "nameservers";
        if (a->http_connection_timeout_ms != b->http_connection_timeout_ms ||
            a->http_max_connections != b->http_max_connections ||
            a->http_max_connections_per_ip != b->http_max_connections_per_ip ||
            a->http_memory_limit != b->http_memory_limit)
                return "http limits";
        if (!str_same(a->instance, b->instance) || !str_same(a->external_url, b->external_url))
                return "instance or external_url";
        if (a->nnotifiers != b->nnotifiers)
                return "number of notifiers";
        for (size_t i = 0; i < a->nnotifiers; i++) {
                /* the URL prints as its origin and a redacted path, the
                 * token as <redacted>: compared by presence */
                struct notify_conf x = a->notifiers[i], y = b->notifiers[i];
                if ((x.bearer_token == NULL) != (y.bearer_token == NULL) ||
                    (x.url == NULL) != (y.url == NULL))
                        return "a notifier's secret";
                x.url = y.url = x.bearer_token = y.bearer_token = NULL;
                if (!notify_conf_equal(&x, &y))
                        return a->notifiers[i].name;
        }
        if (a->ntargets != b->ntargets)
                return "number of targets";
        for (size_t i = 0; i < a->ntargets; i++) {
                struct target_conf x = a->targets[i], y = b->targets[i];
                if ((x.password == NULL) != (y.password == NULL) ||
                    (x.admin_password == NULL) != (y.admin_password == NULL))
                        return "a target's secret";
                x.password = y.password = x.admin_password = y.admin_password = NULL;
                if (!target_conf_equal(&x, &y))
                        return a->targets[i].name;
        }
        return NULL;
}

static void check_roundtrip(const struct config *cfg, const char *printed, size_t plen)
{
        struct config_overrides ov = {.file = print_path};
        char *const noenv[] = {NULL};
        char err[512];

        write_file(print_path, printed, plen);
        struct config *again = config_load(&ov, noenv, err, sizeof(err));
        FUZZ_CHECK(again != NULL,
                   "config_print wrote a configuration that does not load: %s\n"
                   "--- printed ---\n%s",
                   err, printed);
        const char *diff = config_diff(cfg, again);
        FUZZ_CHECK(diff == NULL,
                   "config_print wrote a configuration that loads differently (%s)\n"
                   "--- printed ---\n%s",
                   diff, printed);
        config_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct input in;
        char err[512];

        input_parse(&in, data, size);
        memset(err, 'Z', sizeof(err));
        struct config *cfg = config_load(&in.ov, in.env, err, sizeof(err));
        FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL, "err not terminated");
        if (cfg == NULL) {
                FUZZ_CHECK(err[0] != '\0', "config_load failed without a message");
                input_free(&in);
                return 0;
        }
        check_config(cfg);

        char *printed = NULL;
        size_t plen = 0;
        FILE *out = open_memstream(&printed, &plen);
        if (out == NULL)
                abort();
        config_print(cfg, out);
        fclose(out);
        if (roundtrip && in.nenv == 0 && in.ov.listen == NULL && in.ov.log_format == NULL &&
            in.ov.log_level == NULL)
                check_roundtrip(cfg, printed, plen);
        free(printed);

        if (cfg->ntargets > 0) {
                char keep[TARGET_NAME_MAX];
                const char *names[] = {keep, "no such target!"};
                snprintf(keep, sizeof(keep), "%s", cfg->targets[cfg->ntargets - 1].name);
                config_keep_targets(cfg, names, 2);
                FUZZ_CHECK(cfg->ntargets == 1 && strcmp(cfg->targets[0].name, keep) == 0,
                           "config_keep_targets kept %zu targets", cfg->ntargets);
        }
        config_free(cfg);
        input_free(&in);
        return 0;
}
