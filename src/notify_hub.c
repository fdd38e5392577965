/* The notifiers on the loop (notify_hub.h).  Each notifier has one timer,
 * armed for its next wake (a min_duration expiry, a re-post, the end of a
 * backoff) and at most one request in flight; the decisions are all in
 * notify.c, the HTTP in notify_http.c. */
#include "notify_hub.h"
#include "clock.h"
#include "log.h"
#include "notify_http.h"
#include "target.h"
#include "textutil.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct slot {
        struct notify_hub *h;
        struct notifier *n;
        struct event *timer;
        struct nhttp_req *req;
        char origin[300];
};

struct notify_hub {
        struct event_base *base;
        const struct config *cfg;
        struct nhttp *http;
        struct journal *journal;
        struct slot **slots;
        size_t nslots;
        void (*listener)(void *arg);
        void *listener_arg;
        uint64_t generation;
        double wall_minus_mono; /* to see the wall clock step */
};

static void pump(struct slot *s);

/* The wall clock (the notifiers speak it: startsAt, the webhook's times),
 * after moving every notifier's deadlines by any step it took since the
 * last call, so that a retry, a re-post or a min_duration wait is not put
 * off by an hour when NTP steps the clock back an hour, nor cut short. */
static double hub_now(struct notify_hub *h)
{
        double mono = mono_now(), wall = wall_now();
        double delta = (wall - mono) - h->wall_minus_mono;
        if (h->wall_minus_mono != 0 && (delta > 1.0 || delta < -1.0)) {
                log_msg(LOG_INFO, NULL,
                        "the wall clock stepped by %+.1f s: notification deadlines moved with it",
                        delta);
                for (size_t i = 0; i < h->nslots; i++)
                        if (h->slots[i] != NULL)
                                notifier_clock_step(h->slots[i]->n, delta);
        }
        h->wall_minus_mono = wall - mono;
        return wall;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
        (void)fd;
        (void)what;
        pump(arg);
}

static struct slot *slot_new(struct notify_hub *h, const struct notify_conf *c)
{
        struct slot *s = calloc(1, sizeof(*s));
        if (s == NULL)
                abort();
        s->h = h;
        s->n = notifier_new(c, h->cfg->instance, h->cfg->external_url);
        s->timer = evtimer_new(h->base, on_timer, s);
        if (s->timer == NULL)
                abort();
        url_origin(c->url, s->origin, sizeof(s->origin));
        return s;
}

static void slot_free(struct slot *s)
{
        nhttp_cancel(s->req);
        event_free(s->timer);
        notifier_free(s->n);
        free(s);
}

static void on_done(void *arg, long status, const char *error)
{
        struct slot *s = arg;
        struct notify_hub *h = s->h;
        const struct notify_conf *c = notifier_conf(s->n);
        s->req = NULL;
        double now = hub_now(h);
        enum notify_outcome o = notifier_done(s->n, now, status, error);
        char what[240];
        if (status > 0)
                snprintf(what, sizeof(what), "HTTP %ld", status);
        else
                snprintf(what, sizeof(what), "%s", error != NULL ? error : "error");
        switch (o) {
        case NOTIFY_SENT:
                log_msg(LOG_DEBUG, NULL, "notifier %s: delivered to %s (%s)", c->name, s->origin,
                        what);
                break;
        case NOTIFY_RETRY:
                log_msg(LOG_DEBUG, NULL, "notifier %s: %s: %s; retrying", c->name, s->origin, what);
                break;
        case NOTIFY_FAILED: {
                const char *last = notifier_last_target(s->n);
                log_msg(LOG_WARN, NULL,
                        "notifier %s: notification for %s not delivered to %s: %s%s", c->name, last,
                        s->origin, what,
                        status > 0 && status < 500 && status != 429 ? " (not retried)"
                                                                    : " (tries exhausted)");
                if (h->journal != NULL)
                        journal_notify_failed(h->journal, now, c->name, last, what);
                break;
        }
        }
        pump(s);
}

static void pump(struct slot *s)
{
        struct notify_hub *h = s->h;
        h->generation++;
        double now = hub_now(h);
        notifier_tick(s->n, now);
        struct notify_request rq;
        /* a request refused before it started fails at once: take the next */
        for (int guard = 0; s->req == NULL && guard < 100 && notifier_take(s->n, now, &rq);
             guard++) {
                char err[256];
                struct nhttp_post p = {.url = rq.url,
                                       .bearer_token = rq.bearer_token,
                                       .ca_file = rq.ca_file,
                                       .body = rq.body,
                                       .body_len = rq.body_len,
                                       .timeout_ms = rq.timeout_ms};
                s->req = nhttp_post(h->http, &p, on_done, s, err, sizeof(err));
                if (s->req == NULL) {
                        const struct notify_conf *c = notifier_conf(s->n);
                        notifier_done(s->n, now, 0, err);
                        log_msg(LOG_WARN, NULL, "notifier %s: request for %s not started: %s",
                                c->name, rq.target, err);
                }
        }
        if (notifier_take_dirty(s->n) && h->listener != NULL)
                h->listener(h->listener_arg);
        double wake = notifier_next_wake(s->n);
        evtimer_del(s->timer);
        if (wake > 0) {
                double d = wake - now;
                if (d < 0.001)
                        d = 0.001;
                if (d > 3600)
                        d = 3600;
                struct timeval tv = {.tv_sec = (time_t)d,
                                     .tv_usec = (suseconds_t)((d - (double)(time_t)d) * 1e6)};
                evtimer_add(s->timer, &tv);
        }
}

struct notify_hub *notify_hub_new(struct event_base *base, const struct config *cfg)
{
        struct notify_hub *h = calloc(1, sizeof(*h));
        if (h == NULL)
                abort();
        h->base = base;
        h->cfg = cfg;
        h->wall_minus_mono = wall_now() - mono_now();
        if (cfg->nnotifiers > 0) {
                h->http = nhttp_new(base);
                h->slots = calloc(cfg->nnotifiers, sizeof(*h->slots));
                if (h->slots == NULL)
                        abort();
        }
        for (size_t i = 0; i < cfg->nnotifiers; i++)
                h->slots[h->nslots++] = slot_new(h, &cfg->notifiers[i]);
        if (cfg->nnotifiers > 0)
                log_msg(LOG_INFO, NULL, "%zu notifier%s (HTTP by libcurl, %s name resolution)",
                        cfg->nnotifiers, cfg->nnotifiers == 1 ? "" : "s", nhttp_resolver());
        return h;
}

void notify_hub_free(struct notify_hub *h)
{
        if (h == NULL)
                return;
        for (size_t i = 0; i < h->nslots; i++)
                slot_free(h->slots[i]);
        free(h->slots);
        nhttp_free(h->http);
        free(h);
}

void notify_hub_set_journal(struct notify_hub *h, struct journal *j)
{
        h->journal = j;
}

void notify_hub_set_listener(struct notify_hub *h, void (*fn)(void *arg), void *arg)
{
        h->listener = fn;
        h->listener_arg = arg;
}

void notify_hub_status(struct notify_hub *h, const struct notify_event *ev)
{
        double now = hub_now(h);
        for (size_t i = 0; i < h->nslots; i++) {
                notifier_status(h->slots[i]->n, ev, now);
                pump(h->slots[i]);
        }
}

/* Tells notifier n the status every target has now (a notifier new in a
 * reload would otherwise not hear of a failure until its next change). */
static void feed_current(struct notifier *n, struct engine *eng, double now)
{
        for (size_t i = 0; i < engine_count(eng); i++) {
                struct target_view v;
                engine_view(eng, i, &v);
                if (v.status == ST_UNKNOWN)
                        continue;
                const struct probe_result *why = v.status != ST_PASS ? v.shown : NULL;
                struct notify_event ev = {.target = v.name,
                                          .kind = v.kind,
                                          .critical = v.critical,
                                          .from = ST_UNKNOWN,
                                          .to = v.status,
                                          .reason = why != NULL ? why->reason : NULL,
                                          .output = why != NULL ? why->output : NULL,
                                          .time = v.last_change > 0 ? v.last_change : now};
                notifier_status(n, &ev, now);
        }
}

void notify_hub_reload(struct notify_hub *h, const struct config *cfg, struct engine *eng)
{
        double now = hub_now(h);
        struct slot **slots = calloc(cfg->nnotifiers + 1, sizeof(*slots));
        if (slots == NULL)
                abort();
        h->cfg = cfg;
        /* the first notifier a reload brings (libcurl loaded by then) */
        if (h->http == NULL && cfg->nnotifiers > 0) {
                h->http = nhttp_new(h->base);
                log_msg(LOG_INFO, NULL,
                        "reload: notifications on (HTTP by libcurl, %s name resolution)",
                        nhttp_resolver());
        }
        for (size_t i = 0; i < cfg->nnotifiers; i++) {
                const struct notify_conf *c = &cfg->notifiers[i];
                for (size_t k = 0; k < h->nslots && slots[i] == NULL; k++) {
                        struct slot *old = h->slots[k];
                        if (old != NULL && notify_conf_equal(notifier_conf(old->n), c)) {
                                notifier_set_conf(old->n, c, cfg->instance, cfg->external_url);
                                slots[i] = old;
                                h->slots[k] = NULL;
                        }
                }
                if (slots[i] != NULL)
                        continue;
                slots[i] = slot_new(h, c);
                /* a changed notifier of the same name and kind keeps what its
                 * receiver was told (the state file's member); its queue is
                 * not kept */
                for (size_t k = 0; k < h->nslots; k++) {
                        struct slot *old = h->slots[k];
                        const struct notify_conf *oc = old != NULL ? notifier_conf(old->n) : NULL;
                        if (oc != NULL && strcmp(oc->name, c->name) == 0 && oc->kind == c->kind) {
                                json_t *saved = notifier_save(old->n);
                                notifier_restore(slots[i]->n, saved, now);
                                json_decref(saved);
                                break;
                        }
                }
                log_msg(LOG_INFO, NULL,
                        "reload: notifier %s (re)configured, its queue starts empty", c->name);
        }
        for (size_t k = 0; k < h->nslots; k++)
                if (h->slots[k] != NULL)
                        slot_free(h->slots[k]);
        free(h->slots);
        h->slots = slots;
        h->nslots = cfg->nnotifiers;
        for (size_t i = 0; i < h->nslots; i++) {
                notifier_prune(h->slots[i]->n, cfg, now);
                if (eng != NULL)
                        feed_current(h->slots[i]->n, eng, now);
                pump(h->slots[i]);
        }
}

char *notify_hub_save_text(const struct notify_hub *h)
{
        if (h == NULL || h->nslots == 0)
                return NULL;
        json_t *o = json_object();
        for (size_t i = 0; i < h->nslots; i++)
                json_object_set_new(o, notifier_conf(h->slots[i]->n)->name,
                                    notifier_save(h->slots[i]->n));
        char *s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (s == NULL)
                abort();
        return s;
}

void notify_hub_restore(struct notify_hub *h, const json_t *member)
{
        double now = hub_now(h);
        for (size_t i = 0; i < h->nslots; i++) {
                struct slot *s = h->slots[i];
                const json_t *saved = json_is_object(member)
                                          ? json_object_get(member, notifier_conf(s->n)->name)
                                          : NULL;
                if (saved != NULL)
                        notifier_restore(s->n, saved, now);
                notifier_prune(s->n, h->cfg, now);
                pump(s);
        }
}

uint64_t notify_hub_generation(const struct notify_hub *h)
{
        return h != NULL ? h->generation : 0;
}

size_t notify_hub_count(const struct notify_hub *h)
{
        return h != NULL ? h->nslots : 0;
}

void notify_hub_view(const struct notify_hub *h, size_t i, struct notifier_view *v)
{
        const struct slot *s = h->slots[i];
        const struct notify_conf *c = notifier_conf(s->n);
        v->name = c->name;
        v->kind = notify_kind_name(c->kind);
        snprintf(v->url, sizeof(v->url), "%s", s->origin);
        notifier_get_stats(s->n, &v->st);
}
