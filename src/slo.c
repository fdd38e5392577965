/*
 * slo.c: service levels of one target (see slo.h, SPEC 4).
 *
 * Everything lives in one allocation made by slo_new: the histograms, the
 * per-op histograms with their names, the check history and the 24 h
 * availability ring.  Nothing here reads a clock; the caller passes `now`
 * (monotonic seconds) to every call that advances time.
 *
 * Availability is kept per minute: ring[m % SLO_WINDOW_MINUTES] holds the
 * observed and down seconds of minute m = floor(now / 60), tagged with m.
 * A bucket whose tag differs from the minute being written is at least a
 * full window old, so it is reset on reuse; slo_report sums only buckets
 * whose tag lies in the window, so stale ones never need an explicit sweep.
 * The window is the current (partial) minute and the 1439 before it.
 *
 * Time between two consecutive calls that carry `now` is attributed to the
 * state the target was in during that span: down while an outage is open,
 * else up.  Before the first slo_check the target is not observed, so no
 * time is counted.  A `now` earlier than the latest one seen is treated as
 * the latest (the clock is monotonic; this only keeps the ring consistent).
 *
 * Each bucket also carries the outages that started in its minute (the
 * window's outage count is by start) and the longest outage that closed in
 * its minute (so an outage that began before the window but ended inside it,
 * and whose down time still weighs on the availability, is still the
 * window's longest).  The open outage always counts towards the longest.
 *
 * No libm: the daemon is not linked with -lm, so floor and max are done by
 * hand.
 */
#include "slo.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double slo_latency_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                     0.25,  0.5,    1,     2.5,  5,     10};
const int slo_latency_nbounds = (int)(sizeof(slo_latency_bounds) / sizeof(slo_latency_bounds[0]));
const double slo_reconnect_bounds[] = {0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30};
const int slo_reconnect_nbounds =
    (int)(sizeof(slo_reconnect_bounds) / sizeof(slo_reconnect_bounds[0]));
const double slo_lag_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05,   0.1,   0.25,   0.5,   1};
const int slo_lag_nbounds = (int)(sizeof(slo_lag_bounds) / sizeof(slo_lag_bounds[0]));

#define SLO_OP_NAME_MAX 15 /* characters kept of an op name */
/* |now| beyond this is rejected: keeps the minute index well inside int64_t. */
#define SLO_TIME_LIMIT 1e15

static const struct slo_targets default_targets = {
    .startup = 10.0,
    .reconnect = 5.0,
    .latency = 0.05,
};

/* 24 bytes, not 40: 1,440 of them per target are most of its memory.
 * Seconds within one minute (observed, down) lose nothing as floats (24-bit
 * mantissa: 4 us at 60 s); the longest outage keeps 7 digits. */
struct slo_bucket {
        int64_t minute; /* which minute this slot holds; see the file comment */
        float observed;
        float down;
        float longest;   /* longest outage that closed in this minute */
        uint32_t starts; /* outages that started in this minute */
};

struct op_hist {
        char name[SLO_OP_NAME_MAX + 1];
        struct hist h;
};

struct slo {
        struct slo_targets targets;
        double start;

        /* startup */
        double startup_seconds;
        bool started;
        bool startup_met; /* judged against the target in force at the time */

        /* availability */
        bool observing; /* a check has been seen: time counts from here */
        bool seen_time; /* `latest` is valid */
        double latest;  /* the latest `now` seen; accounting is done up to it */

        /* reconnection */
        struct hist reconnect;
        double reconnect_last;
        double reconnect_max;
        uint64_t reconnects_met, reconnects_missed;
        uint64_t restarts, blips;
        double outage_start; /* detection time of the open outage */
        bool in_outage;
        bool outage_before_start; /* the open outage began before any passing check */
        /* The open outage was restored from a state file: its end is no
         * reconnection.  Until the first check after the restore its start
         * is provisional: it is then set to exclude the time unwatched. */
        bool outage_unobserved;
        bool outage_pending;
        double outage_known; /* seconds of it watched before the save */
        struct slo_outage last_outage;

        /* history ring: hpos is the next slot written */
        bool hist_ok[SLO_HISTORY];
        double hist_latency[SLO_HISTORY];
        size_t hpos, hlen;

        /* latency */
        struct hist latency;
        double latency_last;
        struct op_hist ops[SLO_MAX_OPS];
        int nops;

        /* the availability ring (see the file comment) */
        struct slo_bucket ring[SLO_WINDOW_MINUTES];
};

/* ---- small numeric helpers (no libm) ------------------------------------ */

static double dmax(double a, double b)
{
        return a > b ? a : b;
}

static double dmin(double a, double b)
{
        return a < b ? a : b;
}

static bool time_ok(double t)
{
        return isfinite(t) && t > -SLO_TIME_LIMIT && t < SLO_TIME_LIMIT;
}

/* floor(t / 60) for a time that passed time_ok. */
static int64_t minute_of(double t)
{
        double q = t / 60.0;
        int64_t m = (int64_t)q;

        if ((double)m > q)
                m--;
        return m;
}

/* The first second of the window that ends in minute `m`. */
static double window_start(int64_t m)
{
        return (double)(m - (SLO_WINDOW_MINUTES - 1)) * 60.0;
}

/* ---- histograms ---------------------------------------------------------- */

void hist_init(struct hist *h, const double *bounds, int nbounds)
{
        memset(h, 0, sizeof(*h));
        if (nbounds < 0 || bounds == NULL)
                nbounds = 0;
        if (nbounds > HIST_MAX_BOUNDS)
                nbounds = HIST_MAX_BOUNDS;
        h->bounds = bounds;
        h->nbounds = nbounds;
}

void hist_observe(struct hist *h, double v)
{
        int i;

        if (isnan(v)) /* belongs to no bucket and would poison sum and max */
                return;
        for (i = 0; i < h->nbounds; i++) {
                if (v <= h->bounds[i])
                        h->buckets[i]++;
        }
        h->max = h->count == 0 ? v : dmax(h->max, v);
        h->count++;
        h->sum += v;
}

/* ---- availability ring --------------------------------------------------- */

static struct slo_bucket *bucket_at(struct slo *s, int64_t m)
{
        int64_t i = m % SLO_WINDOW_MINUTES;
        struct slo_bucket *b;

        if (i < 0)
                i += SLO_WINDOW_MINUTES;
        b = &s->ring[i];
        if (b->minute != m) {
                memset(b, 0, sizeof(*b));
                b->minute = m;
        }
        return b;
}

/* Count [t0, t1) as observed (and down if `down`), split by minute; only the
 * part inside the window ending at t1 is kept. */
static void account(struct slo *s, double t0, double t1, bool down)
{
        int64_t m, m1 = minute_of(t1);

        t0 = dmax(t0, window_start(m1));
        if (t1 <= t0)
                return;
        for (m = minute_of(t0); m <= m1; m++) {
                double lo = dmax(t0, (double)m * 60.0);
                double hi = dmin(t1, (double)(m + 1) * 60.0);
                struct slo_bucket *b;

                if (hi <= lo)
                        continue;
                b = bucket_at(s, m);
                /* float sums of many short spans can pass the minute by a
                 * rounding error; the state file would then hold a minute
                 * its own parser refuses */
                float span = (float)(hi - lo);
                b->observed = b->observed + span > 60.0f ? 60.0f : b->observed + span;
                if (down)
                        b->down = b->down + span > b->observed ? b->observed : b->down + span;
        }
}

/*
 * Bring accounting up to `now` and return the effective time of the call
 * (never earlier than a time already seen).  The span since the previous
 * call is attributed to the state held during it, so callers change state
 * only after this.
 */
static double advance(struct slo *s, double now)
{
        if (s->seen_time && now < s->latest)
                return s->latest;
        if (s->observing)
                account(s, s->latest, now, s->in_outage);
        s->latest = now;
        s->seen_time = true;
        return now;
}

/* ---- lifetime ------------------------------------------------------------ */

struct slo *slo_new(double start, const struct slo_targets *t)
{
        struct slo *s = calloc(1, sizeof(*s));
        int i;

        if (s == NULL)
                return NULL;
        s->targets = t != NULL ? *t : default_targets;
        s->start = start;
        s->startup_seconds = -1;
        hist_init(&s->reconnect, slo_reconnect_bounds, slo_reconnect_nbounds);
        s->reconnect_last = -1;
        hist_init(&s->latency, slo_latency_bounds, slo_latency_nbounds);
        s->latency_last = -1;
        /* Tag every slot with a minute that maps to another slot, so none
         * looks current: calloc's 0 would claim minute 0 for slot 0. */
        for (i = 0; i < SLO_WINDOW_MINUTES; i++)
                s->ring[i].minute = INT64_MIN;
        return s;
}

void slo_free(struct slo *s)
{
        free(s);
}

void slo_set_targets(struct slo *s, const struct slo_targets *t)
{
        s->targets = t != NULL ? *t : default_targets;
}

/* ---- events -------------------------------------------------------------- */

void slo_check(struct slo *s, double now, bool ok, double duration)
{
        if (!time_ok(now))
                return;
        now = advance(s, now);
        s->observing = true;
        if (s->outage_pending) {
                s->outage_start = now - s->outage_known;
                s->outage_pending = false;
                /* still down at the first check after the restore: its end
                 * is watched, so it is an outage like any other (SPEC 11:
                 * only one that ended while nobody watched is unobserved) */
                if (!ok)
                        s->outage_unobserved = false;
        }

        hist_observe(&s->latency, duration);
        s->latency_last = duration;

        s->hist_latency[s->hpos] = duration;
        s->hist_ok[s->hpos] = ok;
        s->hpos = (s->hpos + 1) % SLO_HISTORY;
        if (s->hlen < SLO_HISTORY)
                s->hlen++;

        if (ok && !s->started) {
                s->started = true;
                s->startup_seconds = dmax(0.0, now - s->start);
                s->startup_met = s->startup_seconds <= s->targets.startup;
        }
}

void slo_op(struct slo *s, const char *op, double seconds)
{
        char name[SLO_OP_NAME_MAX + 1];
        int i;

        if (op == NULL || op[0] == '\0')
                return;
        /* Match on the stored (truncated) form, so a long name maps to one
         * histogram instead of claiming a new slot on every call. */
        strncpy(name, op, SLO_OP_NAME_MAX);
        name[SLO_OP_NAME_MAX] = '\0';
        for (i = 0; i < s->nops; i++) {
                if (strcmp(s->ops[i].name, name) == 0)
                        break;
        }
        if (i == s->nops) {
                if (s->nops == SLO_MAX_OPS)
                        return;
                memcpy(s->ops[i].name, name, sizeof(name));
                hist_init(&s->ops[i].h, slo_latency_bounds, slo_latency_nbounds);
                s->nops++;
        }
        hist_observe(&s->ops[i].h, seconds);
}

void slo_down(struct slo *s, double now)
{
        if (!time_ok(now))
                return;
        now = advance(s, now);
        if (s->in_outage)
                return;
        s->in_outage = true;
        s->outage_before_start = !s->started;
        s->outage_start = now;
        if (s->observing) /* nothing counts before the first check */
                bucket_at(s, minute_of(now))->starts++;
}

void slo_up(struct slo *s, double now, double first_ok, bool restart)
{
        double d;

        if (!time_ok(now))
                return;
        now = advance(s, now);
        if (!s->in_outage)
                return; /* e.g. the first up after startup: not a reconnection */
        s->in_outage = false;
        if (s->outage_unobserved) {
                /* it ended while nobody watched: no reconnection figure */
                s->outage_unobserved = s->outage_pending = false;
                d = dmax(0.0, now - s->outage_start);
                s->last_outage.closed++;
                s->last_outage.unobserved = true;
                s->last_outage.reconnection = false;
                s->last_outage.met = false;
                s->last_outage.seconds = d;
                s->last_outage.reconnect_seconds = -1;
                if (s->observing) {
                        struct slo_bucket *b = bucket_at(s, minute_of(now));

                        b->longest = (float)dmax(b->longest, d);
                }
                return;
        }
        if (s->outage_before_start) {
                /* never up before: a slow start, counted as down time and an
                 * outage, but not a reconnection */
                if (s->observing) {
                        struct slo_bucket *b = bucket_at(s, minute_of(now));

                        b->longest = (float)dmax(b->longest, now - s->outage_start);
                }
                return;
        }

        d = first_ok - s->outage_start;
        if (!(d >= 0)) /* also catches a NaN first_ok */
                d = 0;
        hist_observe(&s->reconnect, d);
        s->reconnect_last = d;
        s->reconnect_max = dmax(s->reconnect_max, d);
        if (d <= s->targets.reconnect)
                s->reconnects_met++;
        else
                s->reconnects_missed++;
        if (restart)
                s->restarts++;
        else
                s->blips++;
        s->last_outage.closed++;
        s->last_outage.unobserved = false;
        s->last_outage.reconnection = true;
        s->last_outage.met = d <= s->targets.reconnect;
        s->last_outage.seconds = dmax(0.0, now - s->outage_start);
        s->last_outage.reconnect_seconds = d;

        if (s->observing) {
                struct slo_bucket *b = bucket_at(s, minute_of(now));

                b->longest = (float)dmax(b->longest, now - s->outage_start);
        }
}

/* ---- read side ----------------------------------------------------------- */

void slo_report(const struct slo *s, double now, struct slo_report *r)
{
        int64_t m_now, lo;
        double observed = 0, down = 0, longest = 0;
        uint64_t outages = 0;
        int i;

        memset(r, 0, sizeof(*r));
        r->started = s->started;
        r->startup_seconds = s->startup_seconds;
        r->startup_met = s->startup_met;

        r->reconnect = &s->reconnect;
        r->reconnect_last = s->reconnect_last;
        r->reconnect_max = s->reconnect_max;
        r->reconnects_met = s->reconnects_met;
        r->reconnects_missed = s->reconnects_missed;
        r->restarts = s->restarts;
        r->blips = s->blips;
        r->in_outage = s->in_outage;
        if (s->in_outage && time_ok(now))
                r->outage_seconds = dmax(0.0, now - s->outage_start);

        r->latency = &s->latency;
        r->latency_last = s->latency_last;
        r->nops = s->nops;
        for (i = 0; i < s->nops; i++) {
                r->op_names[i] = s->ops[i].name;
                r->ops[i] = &s->ops[i].h;
        }

        r->availability = 1.0;
        if (!time_ok(now))
                return;
        m_now = minute_of(now);
        lo = m_now - (SLO_WINDOW_MINUTES - 1);
        for (i = 0; i < SLO_WINDOW_MINUTES; i++) {
                const struct slo_bucket *b = &s->ring[i];

                if (b->minute < lo || b->minute > m_now)
                        continue;
                observed += b->observed;
                down += b->down;
                outages += b->starts;
                longest = dmax(longest, b->longest);
        }
        /* The span since the last call has not been written to the ring yet
         * (this function is const); count it as advance() would. */
        if (s->observing && now > s->latest) {
                double t0 = dmax(s->latest, window_start(m_now));

                if (now > t0) {
                        observed += now - t0;
                        if (s->in_outage)
                                down += now - t0;
                }
        }
        longest = dmax(longest, r->outage_seconds);

        r->observed_seconds = observed;
        r->down_seconds = down;
        r->outages = outages;
        r->longest_outage = longest;
        if (observed > 0)
                r->availability = dmax(0.0, dmin(1.0, 1.0 - down / observed));
}

size_t slo_history(const struct slo *s, double *latency, bool *ok, size_t max)
{
        size_t n = s->hlen < max ? s->hlen : max;
        size_t first = (s->hpos + SLO_HISTORY - n) % SLO_HISTORY;
        size_t i;

        for (i = 0; i < n; i++) {
                size_t j = (first + i) % SLO_HISTORY;

                if (latency != NULL)
                        latency[i] = s->hist_latency[j];
                if (ok != NULL)
                        ok[i] = s->hist_ok[j];
        }
        return n;
}

void slo_last_outage(const struct slo *s, struct slo_outage *o)
{
        *o = s->last_outage;
}

void slo_cells(const struct slo *s, double now, int cell_minutes, struct slo_cell *out, int ncells)
{
        int64_t m_now, first;
        int i;

        if (ncells <= 0)
                return;
        memset(out, 0, sizeof(*out) * (size_t)ncells);
        if (cell_minutes <= 0 || !time_ok(now))
                return;
        m_now = minute_of(now);
        first = m_now - (int64_t)ncells * cell_minutes + 1; /* first minute of cell 0 */
        for (i = 0; i < SLO_WINDOW_MINUTES; i++) {
                const struct slo_bucket *b = &s->ring[i];
                struct slo_cell *c;

                if (b->minute < first || b->minute > m_now ||
                    b->minute < m_now - (SLO_WINDOW_MINUTES - 1))
                        continue;
                c = &out[(b->minute - first) / cell_minutes];
                c->observed += b->observed;
                c->down += b->down;
                c->outages += b->starts;
                c->longest = dmax(c->longest, b->longest);
        }
        /* the span not yet written to the ring, as slo_report counts it */
        if (s->observing && now > s->latest) {
                double t0 = dmax(s->latest, (double)m_now * 60.0);
                struct slo_cell *c = &out[ncells - 1];

                if (now > t0) {
                        c->observed += now - t0;
                        if (s->in_outage)
                                c->down += now - t0;
                }
        }
}

/* ---- the state file ------------------------------------------------------ */

/* Milliseconds as a whole number (no libm: see the file comment). */
static json_int_t ms_of(double seconds)
{
        if (!(seconds > 0))
                return 0;
        return (json_int_t)(seconds * 1000.0 + 0.5);
}

static json_t *hist_save(const struct hist *h)
{
        json_t *b = json_array();
        int i;

        for (i = 0; i < h->nbounds; i++)
                json_array_append_new(b, json_integer((json_int_t)h->buckets[i]));
        return json_pack("{s:o,s:I,s:f,s:f}", "buckets", b, "count", (json_int_t)h->count, "sum",
                         isfinite(h->sum) ? h->sum : 0.0, "max", isfinite(h->max) ? h->max : 0.0);
}

static bool num(const json_t *v, double *out)
{
        if (!json_is_number(v))
                return false;
        *out = json_number_value(v);
        return isfinite(*out);
}

static bool count_of(const json_t *v, uint64_t *out)
{
        if (!json_is_integer(v) || json_integer_value(v) < 0)
                return false;
        *out = (uint64_t)json_integer_value(v);
        return true;
}

static int hist_load(struct hist *h, const json_t *o, const char *what, char *err, size_t errlen)
{
        const json_t *b = json_object_get(o, "buckets");
        uint64_t prev = 0, count;
        double sum, max;
        int i;

        if (!json_is_array(b) || (int)json_array_size(b) != h->nbounds ||
            !count_of(json_object_get(o, "count"), &count) ||
            !num(json_object_get(o, "sum"), &sum) || !num(json_object_get(o, "max"), &max)) {
                snprintf(err, errlen, "%s: not a histogram of %d buckets", what, h->nbounds);
                return -1;
        }
        for (i = 0; i < h->nbounds; i++) {
                uint64_t c;

                if (!count_of(json_array_get(b, (size_t)i), &c) || c < prev || c > count) {
                        snprintf(err, errlen, "%s: bucket %d is not a cumulative count", what, i);
                        return -1;
                }
                h->buckets[i] = prev = c;
        }
        h->count = count;
        h->sum = sum;
        h->max = max;
        return 0;
}

json_t *slo_save(struct slo *s, double now)
{
        json_t *o = json_object(), *ops = json_object(), *runs = json_array();
        json_t *lat = json_array();
        char okbits[SLO_HISTORY + 1];
        double latency[SLO_HISTORY];
        bool ok[SLO_HISTORY];
        size_t n, k;
        int64_t m_now;
        int i, age;

        if (time_ok(now) && s->seen_time)
                now = advance(s, now);
        json_object_set_new(o, "latency", hist_save(&s->latency));
        if (s->latency_last >= 0)
                json_object_set_new(json_object_get(o, "latency"), "last",
                                    json_real(s->latency_last));
        json_object_set_new(o, "reconnect",
                            json_pack("{s:o,s:f,s:f,s:I,s:I,s:I,s:I}", "histogram",
                                      hist_save(&s->reconnect), "last", s->reconnect_last, "max",
                                      s->reconnect_max, "met", (json_int_t)s->reconnects_met,
                                      "missed", (json_int_t)s->reconnects_missed, "restarts",
                                      (json_int_t)s->restarts, "blips", (json_int_t)s->blips));
        for (i = 0; i < s->nops; i++)
                json_object_set_new(ops, s->ops[i].name, hist_save(&s->ops[i].h));
        json_object_set_new(o, "ops", ops);

        n = slo_history(s, latency, ok, SLO_HISTORY);
        for (k = 0; k < n; k++) {
                json_array_append_new(
                    lat, json_integer((json_int_t)(latency[k] > 0 ? latency[k] * 1e6 + 0.5 : 0)));
                okbits[k] = ok[k] ? '1' : '0';
        }
        okbits[n] = '\0';
        json_object_set_new(o, "history",
                            json_pack("{s:o,s:s}", "latencyMicroseconds", lat, "ok", okbits));

        /* Availability, newest minute first, as runs of equal minutes:
         * [age of the first, minutes, observed ms, down ms, longest ms,
         * outages started].  A day that was all up is one run. */
        m_now = time_ok(now) ? minute_of(now) : 0;
        for (age = 0; time_ok(now) && age < SLO_WINDOW_MINUTES; age++) {
                int64_t m = m_now - age;
                int64_t idx = m % SLO_WINDOW_MINUTES;
                const struct slo_bucket *b;
                json_t *last;
                json_int_t v[4];

                if (idx < 0)
                        idx += SLO_WINDOW_MINUTES;
                b = &s->ring[idx];
                if (b->minute != m)
                        continue;
                v[0] = ms_of(b->observed);
                v[1] = ms_of(b->down);
                v[2] = ms_of(b->longest);
                v[3] = (json_int_t)b->starts;
                last = json_array_size(runs) > 0 ? json_array_get(runs, json_array_size(runs) - 1)
                                                 : NULL;
                if (last != NULL &&
                    json_integer_value(json_array_get(last, 0)) +
                            json_integer_value(json_array_get(last, 1)) ==
                        age &&
                    json_integer_value(json_array_get(last, 2)) == v[0] &&
                    json_integer_value(json_array_get(last, 3)) == v[1] &&
                    json_integer_value(json_array_get(last, 4)) == v[2] &&
                    json_integer_value(json_array_get(last, 5)) == v[3]) {
                        json_integer_set(json_array_get(last, 1),
                                         json_integer_value(json_array_get(last, 1)) + 1);
                        continue;
                }
                json_array_append_new(runs,
                                      json_pack("[i,i,I,I,I,I]", age, 1, v[0], v[1], v[2], v[3]));
        }
        json_object_set_new(o, "availability", runs);
        if (s->in_outage) {
                double known = s->outage_pending ? s->outage_known : now - s->outage_start;

                json_object_set_new(o, "openOutageSeconds", json_real(dmax(0.0, known)));
        }
        return o;
}

int slo_load(struct slo *s, json_t *o, double now, double gap, char *err, size_t errlen)
{
        const json_t *lat = json_object_get(o, "latency");
        const json_t *rc = json_object_get(o, "reconnect");
        json_t *ops = json_object_get(o, "ops");
        const json_t *hist = json_object_get(o, "history");
        const json_t *runs = json_object_get(o, "availability");
        const json_t *open = json_object_get(o, "openOutageSeconds");
        const char *key;
        json_t *v;
        double d, t_saved;
        size_t i;
        int64_t m_saved, lo;

        if (!json_is_object(o) || !time_ok(now)) {
                snprintf(err, errlen, "service levels: not an object");
                return -1;
        }
        if (!(gap >= 0) || !isfinite(gap))
                gap = 0;
        if (!json_is_object(lat)) {
                snprintf(err, errlen, "latency: not an object");
                return -1;
        }
        if (hist_load(&s->latency, lat, "latency", err, errlen) != 0)
                return -1;
        s->latency_last = num(json_object_get(lat, "last"), &d) ? d : -1;
        if (!json_is_object(rc) ||
            hist_load(&s->reconnect, json_object_get(rc, "histogram"), "reconnect", err, errlen) !=
                0 ||
            !num(json_object_get(rc, "last"), &s->reconnect_last) ||
            !num(json_object_get(rc, "max"), &s->reconnect_max) ||
            !count_of(json_object_get(rc, "met"), &s->reconnects_met) ||
            !count_of(json_object_get(rc, "missed"), &s->reconnects_missed) ||
            !count_of(json_object_get(rc, "restarts"), &s->restarts) ||
            !count_of(json_object_get(rc, "blips"), &s->blips)) {
                if (err[0] == '\0')
                        snprintf(err, errlen, "reconnect: missing or not a number");
                return -1;
        }
        if (!json_is_object(ops) || json_object_size(ops) > SLO_MAX_OPS) {
                snprintf(err, errlen, "ops: not an object of at most %d histograms", SLO_MAX_OPS);
                return -1;
        }
        s->nops = 0;
        json_object_foreach(ops, key, v)
        {
                struct op_hist *h = &s->ops[s->nops];

                if (strlen(key) == 0 || strlen(key) > SLO_OP_NAME_MAX || !json_is_object(v)) {
                        snprintf(err, errlen, "ops: bad entry");
                        return -1;
                }
                snprintf(h->name, sizeof(h->name), "%s", key);
                hist_init(&h->h, slo_latency_bounds, slo_latency_nbounds);
                if (hist_load(&h->h, v, "ops", err, errlen) != 0)
                        return -1;
                s->nops++;
        }
        if (json_is_object(hist)) {
                const json_t *l = json_object_get(hist, "latencyMicroseconds");
                const char *bits = json_string_value(json_object_get(hist, "ok"));

                if (!json_is_array(l) || bits == NULL || strlen(bits) != json_array_size(l) ||
                    json_array_size(l) > SLO_HISTORY) {
                        snprintf(err, errlen, "history: latencies and ok flags do not match");
                        return -1;
                }
                s->hpos = s->hlen = 0;
                for (i = 0; i < json_array_size(l); i++) {
                        json_t *x = json_array_get(l, i);

                        if (!json_is_integer(x) || json_integer_value(x) < 0 ||
                            (bits[i] != '0' && bits[i] != '1')) {
                                snprintf(err, errlen, "history: bad entry %zu", i);
                                return -1;
                        }
                        s->hist_latency[s->hpos] = (double)json_integer_value(x) / 1e6;
                        s->hist_ok[s->hpos] = bits[i] == '1';
                        s->hpos = (s->hpos + 1) % SLO_HISTORY;
                        s->hlen++;
                }
        }

        /* The save's `now` is `gap` seconds ago; its minutes keep their age
         * from it, and what has left the window since is dropped. */
        t_saved = now - gap;
        if (!json_is_array(runs)) {
                snprintf(err, errlen, "availability: not an array");
                return -1;
        }
        m_saved = minute_of(dmax(t_saved, -SLO_TIME_LIMIT / 2));
        lo = minute_of(now) - (SLO_WINDOW_MINUTES - 1);
        for (i = 0; i < json_array_size(runs); i++) {
                json_t *r = json_array_get(runs, i);
                json_int_t f[6];
                int k;

                if (!json_is_array(r) || json_array_size(r) != 6) {
                        snprintf(err, errlen, "availability: run %zu is not 6 numbers", i);
                        return -1;
                }
                for (k = 0; k < 6; k++) {
                        json_t *x = json_array_get(r, (size_t)k);

                        if (!json_is_integer(x) || json_integer_value(x) < 0) {
                                snprintf(err, errlen, "availability: run %zu is not 6 numbers", i);
                                return -1;
                        }
                        f[k] = json_integer_value(x);
                }
                /* a minute holds at most 60 s, down no more than observed; an
                 * outage's length is not bounded by its minute */
                /* files written before the cap: a rounding error's worth */
                if (f[2] > 60000 && f[2] <= 61000)
                        f[2] = 60000;
                if (f[3] > f[2] && f[3] <= f[2] + 1000)
                        f[3] = f[2];
                if (f[0] + f[1] > SLO_WINDOW_MINUTES || f[2] > 60000 || f[3] > f[2] ||
                    f[5] > 1000000) {
                        snprintf(err, errlen, "availability: run %zu is out of range", i);
                        return -1;
                }
                for (k = 0; k < f[1]; k++) {
                        int64_t m = m_saved - (f[0] + k);
                        struct slo_bucket *b;

                        if (m < lo)
                                continue;
                        b = bucket_at(s, m);
                        b->observed = (float)((double)f[2] / 1000.0);
                        b->down = (float)((double)f[3] / 1000.0);
                        b->longest = (float)((double)f[4] / 1000.0);
                        b->starts = (uint32_t)f[5];
                }
        }
        if (open != NULL) {
                if (!num(open, &d) || d < 0) {
                        snprintf(err, errlen, "openOutageSeconds: not a number");
                        return -1;
                }
                s->in_outage = true;
                s->outage_before_start = false;
                s->outage_unobserved = true;
                s->outage_pending = true;
                s->outage_known = d;
                s->outage_start = t_saved - d;
        }
        return 0;
}
