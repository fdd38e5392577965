/* The event journal (SPEC 11): a ring of the last `max` events, each with an
 * id that keeps increasing across restarts (the state file carries the next
 * id) and a wall-clock time.  Pure: no I/O, no clock; every append takes the
 * wall time `now` (epoch seconds).
 *
 * Each event is kept as its compact JSON text, made once at append, beside
 * the few fields a query filters on: /events and the state file concatenate
 * those texts instead of building a document per request or per write. */
#ifndef HEALTHD_JOURNAL_H
#define HEALTHD_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum event_type {
        EV_TRANSITION,
        EV_OUTAGE_END,
        EV_RELOAD,
        EV_START,
        EV_STOP,
        EV_NOTIFY_FAILED,
        EV_NTYPES
};

/* "transition", "outage_end", ...; NULL for an out-of-range type. */
const char *event_type_name(enum event_type t);
/* The type named `name`, or -1. */
int event_type_of(const char *name);

struct journal;

/* Called after every append (e.g. to schedule a state write). */
typedef void (*journal_listener)(void *arg, enum event_type type);

struct journal *journal_new(size_t max);
void journal_free(struct journal *j);
void journal_set_listener(struct journal *j, journal_listener fn, void *arg);
/* Keeps the newest `max` events. */
void journal_resize(struct journal *j, size_t max);

/* Appenders.  Strings may be NULL where optional; they are cleaned to valid
 * UTF-8.  Each returns the new event's id. */
uint64_t journal_transition(struct journal *j, double now, const char *target, const char *kind,
                            const char *from, const char *to, const char *reason,
                            const char *output);
/* `seconds`: the outage, detection to up again (time the daemon did not run
 * left out); `end`: "restart", "blip" or "unobserved"; `met`: 1 met, 0
 * missed, -1 neither (an unobserved end counts toward neither);
 * `reconnect_seconds`: detection to the first passing check, < 0 when not a
 * measured reconnection. */
uint64_t journal_outage_end(struct journal *j, double now, const char *target, const char *kind,
                            double seconds, const char *end, int met, double reconnect_seconds);
/* Comma-separated target names (NULL or "" for none). */
uint64_t journal_reload(struct journal *j, double now, const char *added, const char *removed,
                        const char *changed);
uint64_t journal_start(struct journal *j, double now, const char *version, size_t targets,
                       bool restored);
uint64_t journal_stop(struct journal *j, double now, const char *signal_name);
uint64_t journal_notify_failed(struct journal *j, double now, const char *notifier,
                               const char *target, const char *error);

/* Restores one event read from a state file: its own JSON text (a compact
 * object with at least id, time and type) and the fields queries use.
 * Events must come oldest first; an id not above the last one is refused
 * (returns false). */
bool journal_put_raw(struct journal *j, uint64_t id, double time, enum event_type type,
                     const char *target, const char *json);
/* The id the next event gets (at least 1). */
uint64_t journal_next_id(const struct journal *j);
void journal_set_next_id(struct journal *j, uint64_t next);

size_t journal_count(const struct journal *j);
/* Events appended by this process, per type (hdms_healthd_events_total). */
uint64_t journal_appended(const struct journal *j, enum event_type type);

struct journal_query {
        const char *target; /* NULL: any */
        int type;           /* -1: any */
        uint64_t since;     /* only ids above it */
        size_t limit;       /* 0: no limit */
};

/* {"events":[...]} newest first, malloc'd. */
char *journal_query_json(const struct journal *j, const struct journal_query *q);
/* The events as a JSON array, oldest first (for the state file), appended
 * to the caller's buffer through `put`. */
void journal_write_array(const struct journal *j, void (*put)(void *arg, const char *s, size_t n),
                         void *arg);

/* An RFC 3339 UTC time with milliseconds ("2026-12-05T07:17:27.123Z"). */
void journal_time(double t, char *buf, size_t len);

#endif
