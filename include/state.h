/* The state file format (SPEC 11): serialise and parse, pure over buffers.
 *
 *   {"format": "hdms-healthd-state", "version": 1, "savedAt": RFC 3339,
 *    "nextEventId": N, "targets": [RECORD, ...], "notify": {...},
 *    "events": [EVENT, ...]}
 *
 * "notify" is optional (notify_hub.c writes it when notifiers are
 * configured; older files have none).
 *
 * A RECORD is one target: its identity (name, kind, host, port, db,
 * dbname), its last status, and its service levels (slo_save), with its own
 * "savedAt" (a record kept for a target that is not configured any more
 * keeps the time it was last saved).  Events are the journal's, oldest
 * first.  Nothing here touches a file or a clock. */
#ifndef HEALTHD_STATE_H
#define HEALTHD_STATE_H

#include "config.h"
#include "journal.h"
#include "slo.h"

#include <stdbool.h>
#include <stddef.h>

#define STATE_FORMAT "hdms-healthd-state"
#define STATE_VERSION 1

struct json_t;

/* What is written for one configured target. */
struct state_target {
        const struct target_conf *conf;
        struct slo *slo;    /* slo_save brings its accounting up to now */
        const char *status; /* "pass", "warn", "fail" or "unknown" */
        const char *reason; /* may be NULL */
        const char *output; /* may be NULL */
        double last_change; /* wall clock, 0 when none */
};

/* One target's record as a jansson object (caller owns it): `wall` and
 * `mono` are the same instant on the two clocks. */
struct json_t *state_record(const struct state_target *t, double wall, double mono);

/* A record's text in the file (one line; malloc'd). */
char *state_record_text(struct json_t *rec);

/* The whole file: the records of the configured targets, then `parked`
 * ones (records of targets not configured now, written back unchanged),
 * then the journal.  malloc'd, NUL-terminated; *len gets its length. */
char *state_serialise(struct json_t *const *records, size_t nrecords, struct json_t *const *parked,
                      size_t nparked, const struct journal *j, double wall, size_t *len);
/* The same from the configured targets' records already as text (texts of
 * state_record_text joined by ",\n"), so a caller can build them a few at a
 * time; `notify`, when not NULL, is the JSON text of the "notify" member. */
char *state_serialise_texts(const char *records, size_t rlen, struct json_t *const *parked,
                            size_t nparked, const struct journal *j, const char *notify,
                            double wall, size_t *len);

/* A parsed and validated file. */
struct state_loaded {
        struct json_t *root;    /* owns everything below */
        struct json_t *targets; /* array of records */
        struct json_t *events;  /* array, oldest first */
        struct json_t *notify;  /* the notifiers' member (SPEC 12), NULL if none */
        uint64_t next_event_id;
        double saved_at; /* wall clock */
};

/* Parses and checks the whole structure (format, version, every record's
 * identity, every event's id, time and type; ids increasing).  Returns 0,
 * or -1 with the reason in err.  Service levels are checked when a record
 * is restored (state_restore). */
int state_parse(const char *buf, size_t len, struct state_loaded *out, char *err, size_t errlen);
void state_loaded_free(struct state_loaded *l);

/* SPEC 11's matching rule: name, kind, host, port, and db (redis) or
 * dbname (postgres, pgbouncer).  When they differ, `why` names the field. */
bool state_record_matches(const struct json_t *rec, const struct target_conf *c, char *why,
                          size_t whylen);
const char *state_record_name(const struct json_t *rec);
/* The record's save time (wall clock). */
double state_record_saved_at(const struct json_t *rec);

/* What a matching record gives back beside the service levels. */
struct state_previous {
        char status[16];
        char reason[48];
        char output[512];
        double last_change;
};

/* Restores a record's service levels into a fresh slo (`wall`/`mono`: now
 * on both clocks) and its last status into `prev`.  Returns 0, or -1 with
 * the reason in err. */
int state_restore(struct json_t *rec, struct slo *slo, struct state_previous *prev, double wall,
                  double mono, char *err, size_t errlen);

/* Puts the parsed events into an empty journal and carries the next id. */
void state_restore_events(const struct state_loaded *l, struct journal *j);

/* Parses "YYYY-MM-DDTHH:MM:SS[.fff]Z"; returns 0 or -1. */
int state_parse_time(const char *s, double *out);

#endif
