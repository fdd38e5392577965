/* The target engine: one watched target per configured [target], each with
 * its timers, its in-flight check, its rise/fall state and its last result.
 * Everything runs on the loop; HTTP answers read the views below. */
#ifndef HEALTHD_TARGET_H
#define HEALTHD_TARGET_H

#include "config.h"
#include "health.h"
#include "journal.h"
#include "probe.h"
#include "resolve.h"
#include "slo.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

struct engine;
struct target;

/* A read-only view of one target, valid until the next loop turn. */
struct target_view {
        const char *name;
        const char *kind;
        const struct target_conf *conf;
        bool critical;
        enum status status;               /* after rise/fall; ST_UNKNOWN before the first result */
        const struct probe_result *shown; /* the result behind `status` (NULL if unknown) */
        const struct probe_result *last;  /* the raw result of the last check (NULL if none) */
        double last_duration;             /* seconds the last check took */
        double last_check;                /* wall clock (epoch seconds) of the last result */
        double last_change;               /* wall clock of the last status change */
        double result_age;                /* seconds since the last result, or -1 */
        double existed; /* seconds since this target, or its current configuration, began */
        bool ever_passed;
        double startup_seconds;  /* daemon start to first pass, or -1 */
        const char *last_outage; /* "restart", "blip" or NULL */
        unsigned long checks, failures, transitions;
        const struct slo *slo; /* service levels: slo_report() */
        /* The status restored from the state file, shown until this
         * process has a result of its own ("" when nothing was restored). */
        const char *prev_status;
        const char *prev_reason;
        bool restored;
};

struct engine *engine_new(struct event_base *base, struct resolver *res, const struct config *cfg);
/* Swaps in a new configuration; targets whose configuration did not change
 * keep their state and history.  `cfg` must outlive the engine's use of it. */
void engine_reload(struct engine *e, const struct config *cfg);
void engine_free(struct engine *e);

/* Runs only the named targets (NULL: all); for --once.  `done` is called
 * once every selected target has its first result. */
void engine_once(struct engine *e, void (*done)(void *arg), void *arg);

size_t engine_count(const struct engine *e);
void engine_view(const struct engine *e, size_t i, struct target_view *v);
/* Index of the target named `name`, or -1. */
int engine_find(const struct engine *e, const char *name);
/* Grows by one on every check result: renderers cache on it. */
uint64_t engine_generation(const struct engine *e);
/* The loop's own lag (a 100 ms timer's lateness). */
const struct hist *engine_loop_lag(const struct engine *e);
/* Seconds since the engine started (monotonic). */
double engine_uptime(const struct engine *e);

/* The record (SPEC 11).  Transitions, outage ends and reloads go to the
 * journal, from one place in the engine; NULL (the default) records none. */
void engine_set_journal(struct engine *e, struct journal *j);
/* Every status change of a target (its first result included, and a
 * restored target's first result after a start) goes to this listener as
 * well (the notifiers, SPEC 12); NULL: none. */
struct notify_event;
typedef void (*engine_status_fn)(void *arg, const struct notify_event *ev);
void engine_set_status_listener(struct engine *e, engine_status_fn fn, void *arg);
/* The target's service levels, for saving and restoring them. */
struct slo *engine_slo(struct engine *e, size_t i);
/* True for a target that has neither a result nor restored history yet: one
 * whose history a state record may restore. */
bool engine_fresh(const struct engine *e, size_t i);
/* Marks target i as restored (its slo was loaded) with the status it had
 * when saved, shown until its first result. */
void engine_restored(struct engine *e, size_t i, const char *status, const char *reason,
                     double last_change);

#endif
