#include "health.h"

void health_init(struct health *h, int rise, int fall)
{
        h->rise = rise < 1 ? 1 : rise;
        h->fall = fall < 1 ? 1 : fall;
        h->counter = 0;
        h->known = false;
        h->up = false;
        h->last_ok = false;
}

bool health_feed(struct health *h, bool ok)
{
        int top = h->rise + h->fall - 1;
        bool was_known = h->known, was_up = h->up;
        h->last_ok = ok;
        if (!h->known) {
                h->known = true;
                h->up = ok;
                h->counter = ok ? top : 0;
                return true;
        }
        if (ok) {
                if (h->up)
                        h->counter = top;
                else if (++h->counter >= h->rise) {
                        h->up = true;
                        h->counter = top;
                }
        } else {
                if (h->up) {
                        if (--h->counter < h->rise) {
                                h->up = false;
                                h->counter = 0;
                        }
                } else {
                        h->counter = 0;
                }
        }
        return was_known != h->known || was_up != h->up;
}

bool health_retrying(const struct health *h)
{
        return !h->last_ok || !h->up;
}

const char *status_name(enum status st)
{
        switch (st) {
        case ST_PASS:
                return "pass";
        case ST_WARN:
                return "warn";
        case ST_FAIL:
                return "fail";
        case ST_UNKNOWN:
                break;
        }
        return "unknown";
}
