/* The notifiers on the loop: one timer and at most one HTTP request per
 * notifier, fed by the engine's status changes, saved in the state file by
 * the record, shown by the renderers.  A failed delivery becomes a
 * `notify_failed` event in the journal and one log line. */
#ifndef HEALTHD_NOTIFY_HUB_H
#define HEALTHD_NOTIFY_HUB_H

#include "config.h"
#include "journal.h"
#include "notify.h"

#include <event2/event.h>

struct notify_hub;
struct json_t;

/* What /status and /metrics show of one notifier (no secret in it). */
struct notifier_view {
        const char *name;
        const char *kind;
        char url[300]; /* scheme://host:port */
        struct notify_stats st;
};

struct notify_hub *notify_hub_new(struct event_base *base, const struct config *cfg);
void notify_hub_free(struct notify_hub *h);
void notify_hub_set_journal(struct notify_hub *h, struct journal *j);
/* Called when something the state file keeps changed. */
void notify_hub_set_listener(struct notify_hub *h, void (*fn)(void *arg), void *arg);

/* A target's status changed (the engine's listener). */
void notify_hub_status(struct notify_hub *h, const struct notify_event *ev);
/* A new configuration (after engine_reload): notifiers whose section did
 * not change keep their queue; a changed one of the same name and kind
 * keeps what its receiver was told but not its queue; every notifier then
 * learns the targets' current status, and the alerts of targets gone or
 * no longer watched are resolved. */
struct engine;
void notify_hub_reload(struct notify_hub *h, const struct config *cfg, struct engine *eng);

/* The state file's "notify" member as JSON text (malloc'd), or NULL when
 * there are no notifiers. */
char *notify_hub_save_text(const struct notify_hub *h);
/* Restores a "notify" member (NULL: nothing), then resolves the alerts of
 * targets not configured. */
void notify_hub_restore(struct notify_hub *h, const struct json_t *member);

size_t notify_hub_count(const struct notify_hub *h);
/* Grows whenever what notify_hub_view shows may have changed. */
uint64_t notify_hub_generation(const struct notify_hub *h);
void notify_hub_view(const struct notify_hub *h, size_t i, struct notifier_view *v);

#endif
