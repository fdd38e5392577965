/* The server certificate's expiry, judged the same way for the postgres
 * and pgbouncer probes (SPEC 13).  Pure: the time is passed in. */
#include "probe.h"

#include <time.h>

void probe_judge_cert(struct probe_result *r, long long not_after, int64_t warn_ms, double now)
{
        if (not_after <= 0)
                return;
        r->cert_not_after = not_after;
        double left = (double)not_after - now;
        if (warn_ms <= 0 || left > (double)warn_ms / 1000.0)
                return;
        char when[32];
        time_t t = (time_t)not_after;
        struct tm tm;
        if (gmtime_r(&t, &tm) == NULL ||
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm) == 0)
                when[0] = '\0';
        if (left < 0)
                probe_result_worsen(r, ST_WARN, "cert_expiring",
                                    "the server certificate expired %.1f days ago (%s): new "
                                    "connections that verify it will fail",
                                    -left / 86400.0, when);
        else
                probe_result_worsen(r, ST_WARN, "cert_expiring",
                                    "the server certificate expires in %.1f days (%s; warn within "
                                    "%.0f days)",
                                    left / 86400.0, when, (double)warn_ms / 86400000.0);
}
