#include "log.h"
#include "clock.h"
#include "textutil.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static enum log_format log_fmt = LOG_TEXT;
static enum log_level log_min = LOG_INFO;

const char *const log_level_names[LOG_NLEVELS] = {"debug", "info", "warn", "error"};

const char *log_level_name(enum log_level level)
{
        if ((int)level >= 0 && (int)level < LOG_NLEVELS)
                return log_level_names[level];
        return "unknown";
}

int log_level_parse(const char *s, enum log_level *out)
{
        for (int i = 0; i < LOG_NLEVELS; i++)
                if (strcmp(s, log_level_names[i]) == 0) {
                        *out = (enum log_level)i;
                        return 0;
                }
        return -1;
}

void log_setup(enum log_format fmt, enum log_level level)
{
        log_fmt = fmt;
        log_min = level;
}

static void timestamp(char *buf, size_t len)
{
        clock_format(wall_now(), CLOCK_RFC3339, buf, len);
}

static void emit_json(json_t *o)
{
        char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
        if (s != NULL) {
                fprintf(stderr, "%s\n", s);
                free(s);
        }
        json_decref(o);
}

void log_msg(enum log_level level, const char *target, const char *fmt, ...)
{
        if (level < log_min)
                return;
        char raw[1024], msg[1024], ts[CLOCK_TEXT_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(raw, sizeof(raw), fmt, ap);
        va_end(ap);
        utf8_clean(msg, sizeof(msg), raw, strlen(raw));
        timestamp(ts, sizeof(ts));
        if (log_fmt == LOG_JSON) {
                json_t *o = json_object();
                json_object_set_new(o, "time", json_string(ts));
                json_object_set_new(o, "level", json_string(log_level_name(level)));
                if (target != NULL)
                        json_object_set_new(o, "target", json_string(target));
                json_object_set_new(o, "msg", json_string(msg));
                emit_json(o);
        } else if (target != NULL) {
                fprintf(stderr, "%s %s target %s: %s\n", ts, log_level_name(level), target, msg);
        } else {
                fprintf(stderr, "%s %s %s\n", ts, log_level_name(level), msg);
        }
        fflush(stderr);
}

void log_transition(const char *target, const char *kind, const char *from, const char *to,
                    const char *reason, const char *output, double check_seconds,
                    const char *outage)
{
        char ts[CLOCK_TEXT_MAX], out[600];
        utf8_clean(out, sizeof(out), output != NULL ? output : "", output ? strlen(output) : 0);
        timestamp(ts, sizeof(ts));
        enum log_level level = strcmp(to, "fail") == 0 ? LOG_WARN : LOG_INFO;
        if (level < log_min)
                return;
        if (log_fmt == LOG_JSON) {
                json_t *o = json_object();
                json_object_set_new(o, "time", json_string(ts));
                json_object_set_new(o, "level", json_string(log_level_name(level)));
                json_object_set_new(o, "event", json_string("transition"));
                json_object_set_new(o, "target", json_string(target));
                json_object_set_new(o, "kind", json_string(kind));
                json_object_set_new(o, "from", json_string(from));
                json_object_set_new(o, "to", json_string(to));
                if (reason != NULL)
                        json_object_set_new(o, "reason", json_string(reason));
                if (out[0] != '\0')
                        json_object_set_new(o, "output", json_string(out));
                json_object_set_new(o, "check_ms", json_real(check_seconds * 1000.0));
                if (outage != NULL)
                        json_object_set_new(o, "outage", json_string(outage));
                emit_json(o);
        } else {
                fprintf(stderr, "%s %s target %s (%s), check %.1fms, state %s -> %s%s%s%s%s%s%s\n",
                        ts, log_level_name(level), target, kind, check_seconds * 1000.0, from, to,
                        reason != NULL ? ", " : "", reason != NULL ? reason : "",
                        out[0] != '\0' ? ": " : "", out, outage != NULL ? ", outage was a " : "",
                        outage != NULL ? outage : "");
        }
        fflush(stderr);
}
