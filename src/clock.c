/* Clocks and the timestamp format (see clock.h). */
#include "clock.h"

#include <math.h>
#include <stdio.h>
#include <time.h>

static double seconds_of(clockid_t id)
{
        struct timespec ts;
        clock_gettime(id, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double mono_now(void)
{
        return seconds_of(CLOCK_MONOTONIC);
}

double wall_now(void)
{
        return seconds_of(CLOCK_REALTIME);
}

char *clock_format(double t, enum clock_style style, char *buf, size_t len)
{
        if (buf == NULL || len == 0)
                return buf;
        buf[0] = '\0';
        if (!isfinite(t))
                return buf;
        double whole = floor(t);
        time_t s = (time_t)whole;
        struct tm tm;
        if (gmtime_r(&s, &tm) == NULL)
                return buf;
        if (style == CLOCK_HUMAN) {
                if (strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
                        buf[0] = '\0';
                return buf;
        }
        size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
        if (n == 0) {
                buf[0] = '\0';
                return buf;
        }
        int ms = (int)((t - whole) * 1000.0) % 1000;
        if ((size_t)snprintf(buf + n, len - n, ".%03dZ", ms) >= len - n)
                buf[0] = '\0'; /* a cut timestamp would mislead: none at all */
        return buf;
}
