/*
 * state.c: the state file format (see state.h, SPEC 11).
 *
 * The file is written one target record and one event per line, so a person
 * reading it (or a diff) sees its structure; the parser does not care.  The
 * journal's events are copied as the text the journal already holds.
 *
 * Parsing validates everything a later step relies on, so that a damaged
 * file is refused as a whole (and set aside by the caller) instead of being
 * half restored.
 */
#include "state.h"
#include "strbuf.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9))

int state_parse_time(const char *s, double *out)
{
        int y, mo, d, h, mi, sec, n = 0;
        struct tm tm;

        if (s == NULL ||
            sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
                return -1;
        if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 ||
            h < 0 || mi < 0 || sec < 0)
                return -1;
        double frac = 0;
        const char *p = s + 19;
        if (*p == '.') {
                double scale = 0.1;
                p++;
                if (*p < '0' || *p > '9')
                        return -1;
                for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
                        frac += (*p - '0') * scale;
        }
        if (strcmp(p, "Z") != 0)
                return -1;
        memset(&tm, 0, sizeof(tm));
        tm.tm_year = y - 1900;
        tm.tm_mon = mo - 1;
        tm.tm_mday = d;
        tm.tm_hour = h;
        tm.tm_min = mi;
        tm.tm_sec = sec;
        time_t t = timegm(&tm);
        if (t == (time_t)-1)
                return -1;
        *out = (double)t + frac;
        return 0;
}

static void set_str(json_t *o, const char *k, const char *v)
{
        json_t *s;
        if (v == NULL || (s = json_string(v)) == NULL) /* invalid UTF-8 is left out */
                return;
        json_object_set_new(o, k, s);
}

static void set_time(json_t *o, const char *k, double t)
{
        char buf[40];
        journal_time(t, buf, sizeof(buf));
        json_object_set_new(o, k, json_string(buf));
}

json_t *state_record(const struct state_target *t, double wall, double mono)
{
        const struct target_conf *c = t->conf;
        json_t *o = json_object();
        set_str(o, "name", c->name);
        set_str(o, "kind", target_kind_name(c->kind));
        set_str(o, "host", c->host);
        json_object_set_new(o, "port", json_integer(c->port));
        if (c->kind == KIND_REDIS)
                json_object_set_new(o, "db", json_integer(c->db));
        else
                set_str(o, "dbname", c->dbname);
        set_time(o, "savedAt", wall);
        set_str(o, "status", t->status);
        if (t->reason != NULL && t->reason[0] != '\0')
                set_str(o, "reason", t->reason);
        if (t->output != NULL && t->output[0] != '\0')
                set_str(o, "output", t->output);
        if (t->last_change > 0)
                set_time(o, "lastChange", t->last_change);
        json_object_set_new(o, "serviceLevels", slo_save(t->slo, mono));
        return o;
}

static void put_buf(void *arg, const char *s, size_t n)
{
        strbuf_put(arg, s, n);
}

char *state_record_text(json_t *rec)
{
        char *s = json_dumps(rec, DUMP_FLAGS);
        if (s == NULL)
                abort(); /* every string was checked: only out of memory gets here */
        return s;
}

char *state_serialise_texts(const char *records, size_t rlen, json_t *const *parked, size_t nparked,
                            const struct journal *j, const char *notify, double wall, size_t *len)
{
        struct strbuf b;
        char ts[40];
        journal_time(wall, ts, sizeof(ts));
        strbuf_init(&b, 4096 + rlen + nparked * 2048 + journal_count(j) * 256);
        strbuf_printf(&b,
                      "{\"format\":\"%s\",\"version\":%d,\"savedAt\":\"%s\","
                      "\"nextEventId\":%llu,\n\"targets\":[",
                      STATE_FORMAT, STATE_VERSION, ts, (unsigned long long)journal_next_id(j));
        if (rlen > 0) {
                strbuf_putc(&b, '\n');
                strbuf_put(&b, records, rlen);
        }
        for (size_t i = 0; i < nparked; i++) {
                strbuf_puts(&b, rlen > 0 || i > 0 ? ",\n" : "\n");
                char *t = state_record_text(parked[i]);
                strbuf_puts(&b, t);
                free(t);
        }
        strbuf_puts(&b, "],\n");
        if (notify != NULL) {
                strbuf_puts(&b, "\"notify\":");
                strbuf_puts(&b, notify);
                strbuf_puts(&b, ",\n");
        }
        strbuf_puts(&b, "\"events\":");
        journal_write_array(j, put_buf, &b);
        strbuf_puts(&b, "}\n");
        *len = b.len;
        return strbuf_take(&b);
}

char *state_serialise(json_t *const *records, size_t nrecords, json_t *const *parked,
                      size_t nparked, const struct journal *j, double wall, size_t *len)
{
        struct strbuf b;
        strbuf_init(&b, 1024 + nrecords * 1024);
        for (size_t i = 0; i < nrecords; i++) {
                char *t = state_record_text(records[i]);
                if (i > 0)
                        strbuf_puts(&b, ",\n");
                strbuf_puts(&b, t);
                free(t);
        }
        char *out = state_serialise_texts(b.s, b.len, parked, nparked, j, NULL, wall, len);
        free(b.s);
        return out;
}

void state_loaded_free(struct state_loaded *l)
{
        if (l->root != NULL)
                json_decref(l->root);
        memset(l, 0, sizeof(*l));
}

static bool valid_record(json_t *r, size_t i, char *err, size_t errlen)
{
        const char *name = json_string_value(json_object_get(r, "name"));
        const char *kind = json_string_value(json_object_get(r, "kind"));
        json_t *port = json_object_get(r, "port");
        double t;
        if (!json_is_object(r) || name == NULL || name[0] == '\0' || strlen(name) >= 64 ||
            kind == NULL || json_string_value(json_object_get(r, "host")) == NULL ||
            !json_is_integer(port) ||
            state_parse_time(json_string_value(json_object_get(r, "savedAt")), &t) != 0 ||
            !json_is_object(json_object_get(r, "serviceLevels"))) {
                snprintf(err, errlen,
                         "target record %zu lacks its name, kind, host, port, savedAt or "
                         "serviceLevels",
                         i);
                return false;
        }
        if (strcmp(kind, "redis") == 0 ? !json_is_integer(json_object_get(r, "db"))
                                       : json_string_value(json_object_get(r, "dbname")) == NULL) {
                snprintf(err, errlen, "target record '%s' lacks its db or dbname", name);
                return false;
        }
        return true;
}

int state_parse(const char *buf, size_t len, struct state_loaded *out, char *err, size_t errlen)
{
        json_error_t je;
        memset(out, 0, sizeof(*out));
        if (len == 0) {
                snprintf(err, errlen, "empty file");
                return -1;
        }
        json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
        if (root == NULL) {
                snprintf(err, errlen, "not JSON (line %d, column %d: %s)", je.line, je.column,
                         je.text);
                return -1;
        }
        out->root = root;
        const char *format = json_string_value(json_object_get(root, "format"));
        json_t *version = json_object_get(root, "version");
        if (!json_is_object(root) || format == NULL || strcmp(format, STATE_FORMAT) != 0) {
                snprintf(err, errlen, "not an hdms-healthd state file (no \"format\": \"%s\")",
                         STATE_FORMAT);
                goto fail;
        }
        if (!json_is_integer(version) || json_integer_value(version) != STATE_VERSION) {
                snprintf(err, errlen, "version %s, this daemon reads version %d",
                         json_is_integer(version) ? "other" : "missing", STATE_VERSION);
                if (json_is_integer(version))
                        snprintf(err, errlen, "version %lld, this daemon reads version %d",
                                 (long long)json_integer_value(version), STATE_VERSION);
                goto fail;
        }
        json_t *next = json_object_get(root, "nextEventId");
        if (state_parse_time(json_string_value(json_object_get(root, "savedAt")), &out->saved_at) !=
                0 ||
            !json_is_integer(next) || json_integer_value(next) < 1) {
                snprintf(err, errlen, "savedAt or nextEventId missing or malformed");
                goto fail;
        }
        out->next_event_id = (uint64_t)json_integer_value(next);
        out->targets = json_object_get(root, "targets");
        out->events = json_object_get(root, "events");
        /* optional (SPEC 12): absent in files written before notifiers */
        out->notify = json_object_get(root, "notify");
        if (out->notify != NULL && !json_is_object(out->notify))
                out->notify = NULL;
        if (!json_is_array(out->targets) || !json_is_array(out->events)) {
                snprintf(err, errlen, "\"targets\" or \"events\" is not an array");
                goto fail;
        }
        for (size_t i = 0; i < json_array_size(out->targets); i++)
                if (!valid_record(json_array_get(out->targets, i), i, err, errlen))
                        goto fail;
        uint64_t last = 0;
        for (size_t i = 0; i < json_array_size(out->events); i++) {
                json_t *e = json_array_get(out->events, i);
                json_t *id = json_object_get(e, "id");
                double t;
                if (!json_is_object(e) || !json_is_integer(id) || json_integer_value(id) < 1 ||
                    (uint64_t)json_integer_value(id) <= last ||
                    (uint64_t)json_integer_value(id) >= out->next_event_id ||
                    state_parse_time(json_string_value(json_object_get(e, "time")), &t) != 0 ||
                    event_type_of(json_string_value(json_object_get(e, "type"))) < 0) {
                        snprintf(err, errlen,
                                 "event %zu: id (increasing, below nextEventId), time or type "
                                 "malformed",
                                 i);
                        goto fail;
                }
                json_t *tg = json_object_get(e, "target");
                if (tg != NULL && !json_is_string(tg)) {
                        snprintf(err, errlen, "event %zu: target is not a string", i);
                        goto fail;
                }
                last = (uint64_t)json_integer_value(id);
        }
        return 0;
fail:
        state_loaded_free(out);
        return -1;
}

static bool str_is(json_t *v, const char *s)
{
        const char *x = json_string_value(v);
        return x != NULL && s != NULL && strcmp(x, s) == 0;
}

bool state_record_matches(const json_t *rec, const struct target_conf *c, char *why, size_t whylen)
{
        const char *field = NULL;
        if (!str_is(json_object_get(rec, "name"), c->name))
                field = "name";
        else if (!str_is(json_object_get(rec, "kind"), target_kind_name(c->kind)))
                field = "kind";
        else if (!str_is(json_object_get(rec, "host"), c->host))
                field = "host";
        else if (json_integer_value(json_object_get(rec, "port")) != c->port)
                field = "port";
        else if (c->kind == KIND_REDIS ? !json_is_integer(json_object_get(rec, "db")) ||
                                             json_integer_value(json_object_get(rec, "db")) != c->db
                                       : !str_is(json_object_get(rec, "dbname"), c->dbname))
                field = c->kind == KIND_REDIS ? "db" : "dbname";
        if (field != NULL && why != NULL)
                snprintf(why, whylen, "%s differs", field);
        return field == NULL;
}

const char *state_record_name(const json_t *rec)
{
        return json_string_value(json_object_get(rec, "name"));
}

double state_record_saved_at(const json_t *rec)
{
        double t = 0;
        if (state_parse_time(json_string_value(json_object_get(rec, "savedAt")), &t) != 0)
                return 0;
        return t;
}

int state_restore(json_t *rec, struct slo *slo, struct state_previous *prev, double wall,
                  double mono, char *err, size_t errlen)
{
        double saved = state_record_saved_at(rec);
        err[0] = '\0';
        memset(prev, 0, sizeof(*prev));
        if (slo_load(slo, json_object_get(rec, "serviceLevels"), mono, wall - saved, err, errlen) !=
            0) {
                if (err[0] == '\0') /* every refusal names its reason */
                        snprintf(err, errlen, "service levels malformed");
                return -1;
        }
        const char *s = json_string_value(json_object_get(rec, "status"));
        snprintf(prev->status, sizeof(prev->status), "%s", s != NULL ? s : "unknown");
        s = json_string_value(json_object_get(rec, "reason"));
        snprintf(prev->reason, sizeof(prev->reason), "%s", s != NULL ? s : "");
        s = json_string_value(json_object_get(rec, "output"));
        snprintf(prev->output, sizeof(prev->output), "%s", s != NULL ? s : "");
        if (state_parse_time(json_string_value(json_object_get(rec, "lastChange")),
                             &prev->last_change) != 0)
                prev->last_change = 0;
        return 0;
}

void state_restore_events(const struct state_loaded *l, struct journal *j)
{
        for (size_t i = 0; i < json_array_size(l->events); i++) {
                json_t *e = json_array_get(l->events, i);
                double t = 0;
                if (state_parse_time(json_string_value(json_object_get(e, "time")), &t) != 0)
                        continue;
                char *text = json_dumps(e, DUMP_FLAGS);
                if (text == NULL)
                        continue;
                journal_put_raw(
                    j, (uint64_t)json_integer_value(json_object_get(e, "id")), t,
                    (enum event_type)event_type_of(json_string_value(json_object_get(e, "type"))),
                    json_string_value(json_object_get(e, "target")), text);
                free(text);
        }
        journal_set_next_id(j, l->next_event_id);
}
