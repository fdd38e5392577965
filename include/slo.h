/* Service levels of one target (SPEC 4): startup, reconnection, latency and
 * rolling 24 h availability.  Pure: no I/O, no clock; every call takes the
 * monotonic time `now` in seconds, so tests drive it with a simulated
 * clock. */
#ifndef HEALTHD_SLO_H
#define HEALTHD_SLO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A cumulative histogram with fixed upper bounds (Prometheus style: the
 * +Inf bucket is `count`). */
#define HIST_MAX_BOUNDS 16
struct hist {
        const double *bounds; /* ascending upper bounds, seconds */
        int nbounds;
        uint64_t buckets[HIST_MAX_BOUNDS]; /* observations <= bounds[i] (cumulative) */
        uint64_t count;
        double sum;
        double max;
};

extern const double slo_latency_bounds[]; /* 0.001 .. 10 s, includes 0.05 */
extern const int slo_latency_nbounds;
extern const double slo_reconnect_bounds[]; /* 0.1 .. 30 s, includes 5 */
extern const int slo_reconnect_nbounds;
extern const double slo_lag_bounds[]; /* 0.0005 .. 1 s */
extern const int slo_lag_nbounds;

void hist_init(struct hist *h, const double *bounds, int nbounds);
void hist_observe(struct hist *h, double v);

#define SLO_MAX_OPS 8
#define SLO_WINDOW_MINUTES 1440

struct slo_targets {
        double startup;   /* seconds, default 10 */
        double reconnect; /* seconds, default 5 */
        double latency;   /* seconds, default 0.05 */
};

struct slo;

/* `start` is the daemon's start (monotonic): startup is measured from it. */
struct slo *slo_new(double start, const struct slo_targets *t);
void slo_free(struct slo *s);
void slo_set_targets(struct slo *s, const struct slo_targets *t);

/* Every check result: latency histogram (check duration), availability
 * accounting, startup (first ok).  `ok` is the raw result (pass or warn). */
void slo_check(struct slo *s, double now, bool ok, double duration);
/* A Redis op's latency (op: "ping", "set", ...; unknown names beyond
 * SLO_MAX_OPS distinct ones are dropped). */
void slo_op(struct slo *s, const char *op, double seconds);
/* The target's up/down state after rise/fall changed.  Down starts an
 * outage (detected at `now`); up ends it: the reconnection time is from
 * detection to the first passing check `first_ok` (<= now), counted met or
 * missed against the reconnect target; `restart` says whether the server
 * restarted (else a blip).  An outage that began before the target ever
 * passed (a target down from its first check) counts as down time and as an
 * outage, but its end is not a reconnection. */
void slo_down(struct slo *s, double now);
void slo_up(struct slo *s, double now, double first_ok, bool restart);

struct slo_report {
        /* startup */
        bool started;
        double startup_seconds; /* -1 until the first ok check */
        bool startup_met;
        /* reconnection */
        const struct hist *reconnect;
        double reconnect_last; /* -1 when none yet */
        double reconnect_max;
        uint64_t reconnects_met, reconnects_missed;
        uint64_t restarts, blips;
        bool in_outage;
        double outage_seconds; /* current outage so far, or 0 */
        /* latency */
        const struct hist *latency;
        double latency_last;
        int nops;
        const char *op_names[SLO_MAX_OPS];
        const struct hist *ops[SLO_MAX_OPS];
        /* availability over the last 24 h (only time the target was watched) */
        double availability; /* 0..1; 1 when nothing was observed yet */
        double observed_seconds;
        double down_seconds;
        uint64_t outages;      /* in the window */
        double longest_outage; /* seconds, in the window */
};

void slo_report(const struct slo *s, double now, struct slo_report *r);

/* Recent history for the dashboard's sparkline: up to `max` most recent
 * check results, oldest first (latency seconds, ok). */
#define SLO_HISTORY 60
size_t slo_history(const struct slo *s, double *latency, bool *ok, size_t max);

/* The outage that the last slo_up closed.  `unobserved`: it was open when
 * its state was saved and ended while no daemon watched, so its end is no
 * reconnection (neither met nor missed).  `reconnection`: a measured one
 * (`reconnect_seconds`, `met`).  `seconds`: detection to up, without the
 * time the daemon did not run.  `closed` counts the outages closed so far,
 * so a caller can tell whether a call closed one. */
struct slo_outage {
        uint64_t closed;
        bool unobserved;
        bool reconnection;
        bool met;
        double seconds;
        double reconnect_seconds;
};
void slo_last_outage(const struct slo *s, struct slo_outage *o);

/* Availability in `ncells` cells of `cell_minutes` each, the newest (ending
 * with the current minute) last, for the dashboard's 24 h strip.  Only time
 * a daemon watched counts. */
struct slo_cell {
        double observed, down; /* seconds */
        uint32_t outages;      /* started in the cell */
        double longest;        /* longest outage that closed in the cell */
};
void slo_cells(const struct slo *s, double now, int cell_minutes, struct slo_cell *out, int ncells);

/* The state file (SPEC 11).  slo_save brings the accounting up to `now`
 * and returns a jansson object (caller owns it) whose times are relative to
 * `now`, so that another process can restore it.  slo_load restores such an
 * object into a fresh slo; `gap` is the time since it was saved (wall
 * clock), time nobody watched: neither up nor down.  An outage open at the
 * save stays open; if the target passes at its next check it is closed as
 * unobserved (slo_last_outage).  Startup is not restored: it is measured
 * from each start.  Returns 0, or -1 with a reason in err (the slo is then
 * in an unspecified but valid state; callers discard it). */
struct json_t;
struct json_t *slo_save(struct slo *s, double now);
int slo_load(struct slo *s, struct json_t *o, double now, double gap, char *err, size_t errlen);

#endif
