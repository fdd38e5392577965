/* Levelled logging to stderr, as text or JSON lines.  Messages are cleaned
 * to valid UTF-8 before they are written. */
#ifndef HEALTHD_LOG_H
#define HEALTHD_LOG_H

#include "config.h"

void log_setup(enum log_format fmt, enum log_level level);

/* The level names, in the order of enum log_level: the one list that the
 * log lines, --log-level, log_level and --check-config all use. */
#define LOG_NLEVELS 4
extern const char *const log_level_names[LOG_NLEVELS];

const char *log_level_name(enum log_level level);
/* Sets *out to the level named s; returns 0, or -1 for no such level. */
int log_level_parse(const char *s, enum log_level *out);

void log_msg(enum log_level level, const char *target, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One line per state transition of a target. */
void log_transition(const char *target, const char *kind, const char *from, const char *to,
                    const char *reason, const char *output, double check_seconds,
                    const char *outage);

#endif
