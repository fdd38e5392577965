/* The record (SPEC 11): the event journal, the state file's schedule and
 * the restoring of history.  It owns the journal (which the engine feeds),
 * decides when to write (soon after an event, every state_interval, at
 * stop), serialises on the loop and hands the bytes to the state writer.
 * At start it reads the state file (before the loop serves anything) and
 * restores the history of every target that matches; records it cannot use
 * now are kept (written back) for a reload that brings their target back. */
#ifndef HEALTHD_RECORD_H
#define HEALTHD_RECORD_H

#include "config.h"
#include "journal.h"
#include "target.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

struct record;

struct record_stats {
        bool enabled; /* a state file is configured */
        uint64_t writes_ok, writes_error;
        double last_write;        /* wall clock of the last good write, 0 if none */
        double serialise_seconds; /* the last serialisation, on the loop, all turns */
        double serialise_turn;    /* its longest loop turn */
        size_t size;              /* bytes of the last state written */
};

/* Creates the journal, reads the state file (if one is configured),
 * restores what matches, records the start. */
struct record *record_new(struct event_base *base, const struct config *cfg, struct engine *eng);
/* Around engine_reload: keeps the history of every target before, and gives
 * it back to the new or changed targets that match it after. */
void record_before_reload(struct record *r);
void record_after_reload(struct record *r, const struct config *cfg);
/* Records the stop and writes the state one last time (waits for the disk:
 * only at shutdown). */
void record_stop(struct record *r, const char *signal_name);
void record_free(struct record *r);

/* The notifiers (SPEC 12): restores what the state file kept of them (read
 * by record_new), saves them with every write, and writes soon after they
 * change.  Call right after record_new. */
struct notify_hub;
void record_set_notify(struct record *r, struct notify_hub *h);

const struct journal *record_journal(const struct record *r);
void record_get_stats(const struct record *r, struct record_stats *s);

#endif
