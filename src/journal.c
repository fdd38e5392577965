/*
 * journal.c: the event ring (see journal.h, SPEC 11).
 *
 * The ring holds at most `max` events, oldest at `head`.  An event's JSON
 * text is built once with jansson when it is appended (or taken as read from
 * the state file), so a query or a state write only copies bytes.
 */
#include "journal.h"
#include "clock.h"
#include "strbuf.h"
#include "textutil.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct jevent {
        uint64_t id;
        double time;
        enum event_type type;
        char *target; /* NULL when the event is not about one target */
        char *json;
};

struct journal {
        struct jevent *ring;
        size_t max, head, count;
        uint64_t next_id;
        uint64_t appended[EV_NTYPES];
        journal_listener listener;
        void *listener_arg;
};

static const char *const type_names[EV_NTYPES] = {
    [EV_TRANSITION] = "transition",
    [EV_OUTAGE_END] = "outage_end",
    [EV_RELOAD] = "reload",
    [EV_START] = "start",
    [EV_STOP] = "stop",
    [EV_NOTIFY_FAILED] = "notify_failed",
};

const char *event_type_name(enum event_type t)
{
        return (unsigned)t < EV_NTYPES ? type_names[t] : NULL;
}

int event_type_of(const char *name)
{
        for (int i = 0; name != NULL && i < EV_NTYPES; i++)
                if (strcmp(name, type_names[i]) == 0)
                        return i;
        return -1;
}

void journal_time(double t, char *buf, size_t len)
{
        clock_format(isfinite(t) && t > 0 ? t : 0, CLOCK_RFC3339, buf, len);
}

static char *xstrdup(const char *s)
{
        if (s == NULL)
                return NULL;
        char *d = strdup(s);
        if (d == NULL)
                abort();
        return d;
}

struct journal *journal_new(size_t max)
{
        struct journal *j = calloc(1, sizeof(*j));
        if (j == NULL)
                abort();
        j->max = max > 0 ? max : 1;
        j->ring = calloc(j->max, sizeof(*j->ring));
        if (j->ring == NULL)
                abort();
        j->next_id = 1;
        return j;
}

static void event_clear(struct jevent *e)
{
        free(e->target);
        free(e->json);
        memset(e, 0, sizeof(*e));
}

void journal_free(struct journal *j)
{
        if (j == NULL)
                return;
        for (size_t i = 0; i < j->count; i++)
                event_clear(&j->ring[(j->head + i) % j->max]);
        free(j->ring);
        free(j);
}

void journal_set_listener(struct journal *j, journal_listener fn, void *arg)
{
        j->listener = fn;
        j->listener_arg = arg;
}

void journal_resize(struct journal *j, size_t max)
{
        if (max == 0)
                max = 1;
        if (max == j->max)
                return;
        struct jevent *ring = calloc(max, sizeof(*ring));
        if (ring == NULL)
                abort();
        size_t drop = j->count > max ? j->count - max : 0;
        for (size_t i = 0; i < j->count; i++) {
                struct jevent *e = &j->ring[(j->head + i) % j->max];
                if (i < drop)
                        event_clear(e);
                else
                        ring[i - drop] = *e;
        }
        free(j->ring);
        j->ring = ring;
        j->max = max;
        j->head = 0;
        j->count -= drop;
}

/* Takes ownership of target and json. */
static void push(struct journal *j, uint64_t id, double time, enum event_type type, char *target,
                 char *json)
{
        struct jevent *e;
        if (j->count == j->max) {
                e = &j->ring[j->head];
                event_clear(e);
                j->head = (j->head + 1) % j->max;
                j->count--;
        }
        e = &j->ring[(j->head + j->count) % j->max];
        e->id = id;
        e->time = time;
        e->type = type;
        e->target = target;
        e->json = json;
        j->count++;
        if (id >= j->next_id)
                j->next_id = id + 1;
}

static void set_clean(json_t *o, const char *key, const char *v)
{
        if (v == NULL)
                return;
        char buf[1024];
        utf8_clean(buf, sizeof(buf), v, strlen(v));
        json_object_set_new(o, key, json_string(buf));
}

/* A new event object with id, time and type; the caller adds the rest. */
static json_t *begin(const struct journal *j, double now, enum event_type type)
{
        char ts[40];
        journal_time(now, ts, sizeof(ts));
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer((json_int_t)j->next_id));
        json_object_set_new(o, "time", json_string(ts));
        json_object_set_new(o, "type", json_string(type_names[type]));
        return o;
}

static uint64_t commit(struct journal *j, json_t *o, double now, enum event_type type,
                       const char *target)
{
        char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        json_decref(o);
        if (text == NULL)
                abort(); /* every string was cleaned: only out of memory gets here */
        char clean[128] = "";
        if (target != NULL)
                utf8_clean(clean, sizeof(clean), target, strlen(target));
        uint64_t id = j->next_id;
        push(j, id, now, type, target != NULL ? xstrdup(clean) : NULL, text);
        j->appended[type]++;
        if (j->listener != NULL)
                j->listener(j->listener_arg, type);
        return id;
}

uint64_t journal_transition(struct journal *j, double now, const char *target, const char *kind,
                            const char *from, const char *to, const char *reason,
                            const char *output)
{
        json_t *o = begin(j, now, EV_TRANSITION);
        set_clean(o, "target", target);
        set_clean(o, "kind", kind);
        set_clean(o, "from", from);
        set_clean(o, "to", to);
        if (reason != NULL && reason[0] != '\0')
                set_clean(o, "reason", reason);
        if (output != NULL && output[0] != '\0')
                set_clean(o, "output", output);
        return commit(j, o, now, EV_TRANSITION, target);
}

uint64_t journal_outage_end(struct journal *j, double now, const char *target, const char *kind,
                            double seconds, const char *end, int met, double reconnect_seconds)
{
        json_t *o = begin(j, now, EV_OUTAGE_END);
        set_clean(o, "target", target);
        set_clean(o, "kind", kind);
        json_object_set_new(o, "durationSeconds",
                            json_real(isfinite(seconds) && seconds > 0 ? seconds : 0));
        set_clean(o, "end", end);
        json_object_set_new(o, "reconnect",
                            met < 0 ? json_null() : json_string(met ? "met" : "missed"));
        if (reconnect_seconds >= 0 && isfinite(reconnect_seconds))
                json_object_set_new(o, "reconnectSeconds", json_real(reconnect_seconds));
        return commit(j, o, now, EV_OUTAGE_END, target);
}

/* "a,b" -> ["a","b"] */
static json_t *name_list(const char *csv)
{
        json_t *a = json_array();
        while (csv != NULL && *csv != '\0') {
                const char *e = strchr(csv, ',');
                size_t n = e != NULL ? (size_t)(e - csv) : strlen(csv);
                char buf[128];
                utf8_clean(buf, sizeof(buf), csv, n);
                if (buf[0] != '\0')
                        json_array_append_new(a, json_string(buf));
                csv = e != NULL ? e + 1 : NULL;
        }
        return a;
}

uint64_t journal_reload(struct journal *j, double now, const char *added, const char *removed,
                        const char *changed)
{
        json_t *o = begin(j, now, EV_RELOAD);
        json_object_set_new(o, "added", name_list(added));
        json_object_set_new(o, "removed", name_list(removed));
        json_object_set_new(o, "changed", name_list(changed));
        return commit(j, o, now, EV_RELOAD, NULL);
}

uint64_t journal_start(struct journal *j, double now, const char *version, size_t targets,
                       bool restored)
{
        json_t *o = begin(j, now, EV_START);
        set_clean(o, "version", version);
        json_object_set_new(o, "targets", json_integer((json_int_t)targets));
        json_object_set_new(o, "restored", json_boolean(restored));
        return commit(j, o, now, EV_START, NULL);
}

uint64_t journal_stop(struct journal *j, double now, const char *signal_name)
{
        json_t *o = begin(j, now, EV_STOP);
        set_clean(o, "signal", signal_name);
        return commit(j, o, now, EV_STOP, NULL);
}

uint64_t journal_notify_failed(struct journal *j, double now, const char *notifier,
                               const char *target, const char *error)
{
        json_t *o = begin(j, now, EV_NOTIFY_FAILED);
        set_clean(o, "notifier", notifier);
        set_clean(o, "target", target);
        set_clean(o, "error", error);
        return commit(j, o, now, EV_NOTIFY_FAILED, target);
}

bool journal_put_raw(struct journal *j, uint64_t id, double time, enum event_type type,
                     const char *target, const char *json)
{
        if ((unsigned)type >= EV_NTYPES || json == NULL || id == 0)
                return false;
        if (j->count > 0 && id <= j->ring[(j->head + j->count - 1) % j->max].id)
                return false;
        push(j, id, time, type, xstrdup(target), xstrdup(json));
        return true;
}

uint64_t journal_next_id(const struct journal *j)
{
        return j->next_id;
}

void journal_set_next_id(struct journal *j, uint64_t next)
{
        if (next > j->next_id)
                j->next_id = next;
}

size_t journal_count(const struct journal *j)
{
        return j->count;
}

uint64_t journal_appended(const struct journal *j, enum event_type type)
{
        return (unsigned)type < EV_NTYPES ? j->appended[type] : 0;
}

static bool matches(const struct jevent *e, const struct journal_query *q)
{
        if (e->id <= q->since)
                return false;
        if (q->type >= 0 && (int)e->type != q->type)
                return false;
        if (q->target != NULL && (e->target == NULL || strcmp(e->target, q->target) != 0))
                return false;
        return true;
}

char *journal_query_json(const struct journal *j, const struct journal_query *q)
{
        struct strbuf b;
        strbuf_init(&b, 256);
        strbuf_puts(&b, "{\"events\":[");
        size_t n = 0;
        for (size_t i = j->count; i > 0; i--) {
                const struct jevent *e = &j->ring[(j->head + i - 1) % j->max];
                if (e->id <= q->since)
                        break; /* ids only grow: nothing older can match */
                if (!matches(e, q))
                        continue;
                if (n > 0)
                        strbuf_putc(&b, ',');
                strbuf_puts(&b, e->json);
                if (++n == q->limit)
                        break;
        }
        strbuf_puts(&b, "]}");
        return strbuf_take(&b);
}

void journal_write_array(const struct journal *j, void (*put)(void *arg, const char *s, size_t n),
                         void *arg)
{
        put(arg, "[", 1);
        for (size_t i = 0; i < j->count; i++) {
                const struct jevent *e = &j->ring[(j->head + i) % j->max];
                if (i > 0)
                        put(arg, ",\n", 2);
                put(arg, e->json, strlen(e->json));
        }
        put(arg, "]", 1);
}
