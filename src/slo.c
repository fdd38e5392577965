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

#include <math.h>
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
                b->observed += (float)(hi - lo);
                if (down)
                        b->down += (float)(hi - lo);
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
