/* The INI file, read with inih, and what inih does not do for us.
 *
 * inih 55 cuts section names at 49 bytes, does not report an empty section,
 * reads an indented line as the continuation of the previous value and
 * gives no line number to its handler.  So the file is fed to
 * ini_parse_stream() through our own line reader, which counts lines,
 * tracks sections itself (before inih sees them), refuses indented section
 * headers and over-long lines, and names the line of every error. */
#include "config_impl.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEEN 64

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
        /* per notifier, the lines of its header and of its targets key */
        struct notify_conf *notify;
        int *notify_lines;
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
        ps->notify = NULL;
        ps->in_section = true;
        if (strcmp(section, "daemon") == 0)
                return;
        if (strncmp(section, "notify ", 7) == 0) {
                const char *nn = section + 7;
                if (!cfg_valid_target_name(nn)) {
                        fail_at(ps, ps->section_line, NULL,
                                "[%s]: a notifier name is 1-63 letters, digits, '-' or '_'",
                                section);
                        return;
                }
                if (cfg_notify_find(ps->cfg, nn) != NULL) {
                        fail_at(ps, ps->section_line, NULL, "notifier '%s' defined twice", nn);
                        return;
                }
                if (ps->cfg->nnotifiers >= MAX_NOTIFIERS) {
                        fail_at(ps, ps->line, NULL, "more than %d notifiers", MAX_NOTIFIERS);
                        return;
                }
                ps->notify_lines[2 * ps->cfg->nnotifiers] = ps->section_line;
                ps->notify = cfg_notify_add(ps->cfg, nn);
                return;
        }
        if (strncmp(section, "target ", 7) == 0) {
                const char *tn = section + 7;
                if (!cfg_valid_target_name(tn)) {
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
                ps->target = cfg_target_add(ps->cfg, tn);
                ps->file_targets++;
                return;
        }
        fail_at(ps, ps->section_line, NULL,
                "unknown section [%s] (expected [daemon], [target NAME] or [notify NAME])",
                section);
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
        if (ps->notify != NULL && !ps->failed && (int)ps->notify->kind < 0) {
                fail_at(ps, ps->section_line, "kind",
                        "missing: every notifier needs kind = alertmanager or webhook");
                return;
        }
        struct target_conf *t = ps->target;
        if (t == NULL || ps->failed)
                return;
        if ((int)t->kind < 0) {
                fail_at(ps, ps->section_line, "kind",
                        "missing: every target needs kind = redis, postgres or pgbouncer");
                return;
        }
        for (int i = 0; i < ps->nseen; i++)
                if (!(ps->seen[i]->sections & (1u << t->kind))) {
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
                fail_at(
                    ps, ps->line, name,
                    "outside any section (put it under [daemon], [target NAME] or [notify NAME])");
                return 1;
        }
        const struct key *k = ps->notify != NULL ? config_key_find_notify(name)
                                                 : config_key_find(ps->target != NULL, name);
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
        if (ps->notify != NULL && strcmp(name, "targets") == 0)
                ps->notify_lines[2 * (ps->notify - ps->cfg->notifiers) + 1] = ps->line;
        else if (ps->target == NULL && ps->notify == NULL)
                ps->dlines[k - config_keys] = ps->line;
        char why[512];
        void *base = ps->notify != NULL   ? (void *)ps->notify
                     : ps->target != NULL ? (void *)ps->target
                                          : (void *)ps->cfg;
        if (config_key_set(k, base, value, why, sizeof(why)) != 0)
                fail_at(ps, ps->line, name, "%s", why);
        return 1;
}

int config_ini_load(struct config *cfg, const char *file, int *lines, int *dlines, int *nlines,
                    char *err, size_t errlen)
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
        ps->notify_lines = nlines;
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
