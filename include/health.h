/* Rise/fall hysteresis for one target, as HAProxy does it: one saturating
 * counter, 0 .. rise-1 is down, rise .. rise+fall-1 is up.  Pure: no I/O,
 * no clock. */
#ifndef HEALTHD_HEALTH_H
#define HEALTHD_HEALTH_H

#include <stdbool.h>

enum status { ST_UNKNOWN, ST_PASS, ST_WARN, ST_FAIL };

struct health {
        int rise;
        int fall;
        int counter;
        bool known; /* a first result was seen */
        bool up;
        bool last_ok;
};

void health_init(struct health *h, int rise, int fall);

/* Feeds one check result; returns true when `up` changed (or the first
 * result made the state known).  The first result decides at once: a
 * target that passes its first check is up, one that fails it is down. */
bool health_feed(struct health *h, bool ok);

/* True while the next check should come at retry_interval: after a failed
 * check, and until `rise` passes bring a down target back up. */
bool health_retrying(const struct health *h);

const char *status_name(enum status st);

#endif
