/* The daemon's clocks and its one timestamp format.
 *
 * Monotonic seconds measure durations and schedule timers; wall-clock
 * seconds (epoch) are only for showing when something happened.  Every
 * timestamp a person or a tool reads (logs, JSON, the dashboard) is made by
 * clock_format(), so they all agree on one shape. */
#ifndef HEALTHD_CLOCK_H
#define HEALTHD_CLOCK_H

#include <stddef.h>

/* Monotonic seconds (CLOCK_MONOTONIC). */
double mono_now(void);
/* Wall-clock seconds since the epoch (CLOCK_REALTIME). */
double wall_now(void);

enum clock_style {
        /* RFC 3339 / ISO 8601 in UTC with milliseconds: 2023-11-14T22:13:20.250Z */
        CLOCK_RFC3339,
        /* For people, to the second: 2023-11-14 22:13:20 UTC */
        CLOCK_HUMAN,
};

/* Enough for either style, whatever the year. */
#define CLOCK_TEXT_MAX 48

/* Formats the wall-clock time `t` (epoch seconds) into buf.  Milliseconds
 * are truncated, never rounded up into the next second.  buf is always
 * NUL-terminated when len > 0 (empty if it is too small or `t` is not a
 * time gmtime can show).  Returns buf. */
char *clock_format(double t, enum clock_style style, char *buf, size_t len);

#endif
