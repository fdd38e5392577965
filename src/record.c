/*
 * record.c: the journal's owner, the state file's schedule and the restore
 * of history (see record.h, SPEC 11).
 *
 * When it writes: WRITE_SOON after an event (a transition reaches the disk
 * within about a second, well inside SPEC 11's 5 s), every state_interval,
 * and at stop.  A write serialises on the loop (a few hundred microseconds
 * at five targets) and hands the bytes to the writer thread; if the thread
 * is still busy with the previous state, the new one replaces any that
 * waits, so a slow disk costs freshness, never memory or loop time.
 *
 * Reading the file happens once, in record_new, before the loop serves
 * anything.  A file that cannot be used is renamed aside, with one warning
 * naming it and the reason, and the daemon starts fresh; it never exits for
 * its state.
 */
#include "record.h"
#include "log.h"
#include "notify_hub.h"
#include "state.h"
#include "state_writer.h"
#include "strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WRITE_SOON_MS 1000
#define STATE_FILE_MAX (64u << 20) /* a larger file is not one this daemon wrote */
#define PARK_MAX_AGE 86400.0       /* a record older than the window holds nothing */
#define BUILD_BATCH 64             /* records serialised per loop turn: ~2 ms */

struct kept {
        json_t *rec;
        const struct slo *slo; /* the target it came from (before a reload), else NULL */
};

struct record {
        struct event_base *base;
        const struct config *cfg;
        struct engine *eng;
        struct journal *journal;
        struct state_writer *writer;
        char *path;
        struct event *soon, *periodic;
        /* records not restored into a target (yet): written back */
        struct kept *parked;
        size_t nparked;
        /* the records of every target just before a reload */
        struct kept *exports;
        size_t nexports;
        bool write_failing;
        struct record_stats stats;
        /* the state being serialised, BUILD_BATCH targets per loop turn */
        struct event *step;
        bool building, build_again;
        size_t build_next;
        struct strbuf build;
        double build_seconds, build_turn;
        /* the notifiers: their member of the state file */
        struct notify_hub *hub;
        json_t *notify_loaded; /* read at start, until record_set_notify */
};

static double wall_clock(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timeval ms_tv(int64_t ms)
{
        struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
                             .tv_usec = (suseconds_t)(ms % 1000) * 1000};
        return tv;
}

static void kept_push(struct kept **v, size_t *n, json_t *rec, const struct slo *slo)
{
        struct kept *k = realloc(*v, (*n + 1) * sizeof(**v));
        if (k == NULL)
                abort();
        k[*n].rec = rec;
        k[*n].slo = slo;
        *v = k;
        (*n)++;
}

static void kept_clear(struct kept **v, size_t *n)
{
        for (size_t i = 0; i < *n; i++)
                if ((*v)[i].rec != NULL)
                        json_decref((*v)[i].rec);
        free(*v);
        *v = NULL;
        *n = 0;
}

/* ---- writing ---- */

static json_t *record_of(struct record *r, size_t i, double wall, double mono)
{
        struct target_view v;
        engine_view(r->eng, i, &v);
        const struct probe_result *why = v.status != ST_PASS ? v.shown : NULL;
        struct state_target st = {
            .conf = v.conf,
            .slo = engine_slo(r->eng, i),
            .status = v.status == ST_UNKNOWN && v.prev_status[0] != '\0' ? v.prev_status
                                                                         : status_name(v.status),
            .reason = why != NULL ? why->reason : v.prev_reason,
            .output = why != NULL ? why->output : NULL,
            .last_change = v.last_change,
        };
        return state_record(&st, wall, mono);
}

/* One loop turn of a build: the next BUILD_BATCH targets' records.  The
 * last turn adds the parked records and the journal and hands the bytes to
 * the writer.  With `sync`, every turn runs now (at stop). */
static void build_step(struct record *r, bool sync)
{
        double t0 = mono_now(), wall = wall_clock();
        size_t n = engine_count(r->eng);
        size_t end = sync || r->build_next + BUILD_BATCH > n ? n : r->build_next + BUILD_BATCH;
        for (size_t i = r->build_next; i < end; i++) {
                json_t *rec = record_of(r, i, wall, t0);
                char *text = state_record_text(rec);
                json_decref(rec);
                if (i > 0)
                        strbuf_puts(&r->build, ",\n");
                strbuf_puts(&r->build, text);
                free(text);
        }
        r->build_next = end;
        if (end < n) {
                double took = mono_now() - t0;
                r->build_seconds += took;
                if (took > r->build_turn)
                        r->build_turn = took;
                struct timeval now = {0, 0};
                evtimer_add(r->step, &now); /* after the I/O that waits */
                return;
        }
        json_t **parked = calloc(r->nparked + 1, sizeof(*parked));
        if (parked == NULL)
                abort();
        for (size_t i = 0; i < r->nparked; i++)
                parked[i] = r->parked[i].rec;
        size_t len;
        char *notify = notify_hub_save_text(r->hub);
        char *buf = state_serialise_texts(r->build.s, r->build.len, parked, r->nparked, r->journal,
                                          notify, wall, &len);
        free(notify);
        free(parked);
        free(strbuf_take(&r->build));
        r->building = false;
        double took = mono_now() - t0;
        r->build_seconds += took;
        r->stats.serialise_seconds = r->build_seconds;
        r->stats.serialise_turn = took > r->build_turn ? took : r->build_turn;
        r->stats.size = len;
        state_writer_submit(r->writer, buf, len);
}

static void build_cancel(struct record *r)
{
        if (!r->building)
                return;
        evtimer_del(r->step);
        free(strbuf_take(&r->build));
        r->building = false;
}

/* Serialises the state a batch of targets per loop turn (a large target set
 * would otherwise hold the loop for tens of milliseconds), then writes it. */
static void write_now(struct record *r)
{
        if (r->writer == NULL)
                return;
        if (r->building) {
                r->build_again = true; /* the build in progress is already older */
                return;
        }
        r->building = true;
        r->build_next = 0;
        r->build_seconds = r->build_turn = 0;
        strbuf_init(&r->build, 4096 + engine_count(r->eng) * 1536);
        build_step(r, false);
}

static void on_step(evutil_socket_t fd, short what, void *arg)
{
        struct record *r = arg;
        (void)fd;
        (void)what;
        build_step(r, false);
        if (!r->building && r->build_again) {
                r->build_again = false;
                write_now(r);
        }
}

static void on_soon(evutil_socket_t fd, short what, void *arg)
{
        (void)fd;
        (void)what;
        write_now(arg);
}

static void on_periodic(evutil_socket_t fd, short what, void *arg)
{
        (void)fd;
        (void)what;
        write_now(arg);
}

static void on_event(void *arg, enum event_type type)
{
        struct record *r = arg;
        (void)type;
        if (r->soon == NULL || evtimer_pending(r->soon, NULL))
                return;
        struct timeval tv = ms_tv(WRITE_SOON_MS);
        evtimer_add(r->soon, &tv);
}

/* One warning when writing starts to fail, one line when it works again:
 * a full disk must not fill the log too. */
static void on_written(void *arg, const struct state_write_report *rep)
{
        struct record *r = arg;
        r->stats.writes_ok += rep->ok;
        r->stats.writes_error += rep->failed;
        if (rep->last_ok > 0)
                r->stats.last_write = rep->last_ok;
        if (rep->failed > 0 && !r->write_failing) {
                log_msg(LOG_WARN, NULL, "state file %s not written: %s (kept in memory, retried)",
                        r->path, rep->error);
                r->write_failing = true;
        }
        if (rep->ok > 0 && rep->failed == 0 && r->write_failing) {
                log_msg(LOG_INFO, NULL, "state file %s written again", r->path);
                r->write_failing = false;
        }
}

/* ---- reading ---- */

/* The whole file, or NULL: *missing when it does not exist, else err. */
static char *read_file(const char *path, size_t *len, bool *missing, bool *not_file, char *err,
                       size_t errlen)
{
        *missing = *not_file = false;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT)
                        *missing = true;
                else
                        snprintf(err, errlen, "cannot open: %s", strerror(errno));
                return NULL;
        }
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
                /* a directory or a device named by mistake: not ours to move */
                *not_file = true;
                snprintf(err, errlen, "not a regular file");
                close(fd);
                return NULL;
        }
        if ((size_t)st.st_size > STATE_FILE_MAX) {
                snprintf(err, errlen, "larger than %u bytes", STATE_FILE_MAX);
                close(fd);
                return NULL;
        }
        char *buf = malloc((size_t)st.st_size + 1);
        if (buf == NULL)
                abort();
        size_t got = 0;
        while (got < (size_t)st.st_size) {
                ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        snprintf(err, errlen, "cannot read: %s", n < 0 ? strerror(errno) : "short");
                        free(buf);
                        close(fd);
                        return NULL;
                }
                got += (size_t)n;
        }
        close(fd);
        buf[got] = '\0';
        *len = got;
        return buf;
}

/* Renames an unusable file aside for a person to look at; one warning. */
static void set_aside(const char *path, const char *why)
{
        char stamp[32], *aside;
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
        size_t n = strlen(path) + strlen(stamp) + 16;
        aside = malloc(n);
        if (aside == NULL)
                abort();
        snprintf(aside, n, "%s.corrupt-%s", path, stamp);
        if (rename(path, aside) == 0)
                log_msg(LOG_WARN, NULL, "state file %s: %s; renamed to %s, starting fresh", path,
                        why, aside);
        else
                log_msg(LOG_WARN, NULL,
                        "state file %s: %s; starting fresh (and it cannot be renamed to %s: %s)",
                        path, why, aside, strerror(errno));
        free(aside);
}

static const struct target_conf *engine_view_conf(struct engine *e, size_t i)
{
        struct target_view v;
        engine_view(e, i, &v);
        return v.conf;
}

/* Index of the configured target named `name`, or -1. */
static int target_named(struct engine *e, const char *name)
{
        return name != NULL ? engine_find(e, name) : -1;
}

/* Restores record `rec` into target i (a fresh one); false with err when
 * the record's service levels are damaged. */
static bool restore_into(struct record *r, size_t i, json_t *rec, double wall, double mono,
                         char *err, size_t errlen)
{
        struct state_previous prev;
        if (state_restore(rec, engine_slo(r->eng, i), &prev, wall, mono, err, errlen) != 0)
                return false;
        engine_restored(r->eng, i, prev.status, prev.reason, prev.last_change);
        return true;
}

static void load(struct record *r)
{
        char err[512] = "", why[300];
        bool missing, not_file;
        size_t len = 0;
        char *buf = read_file(r->path, &len, &missing, &not_file, err, sizeof(err));
        if (buf == NULL) {
                if (not_file)
                        log_msg(LOG_WARN, NULL, "state file %s: %s; starting fresh", r->path, err);
                else if (!missing)
                        set_aside(r->path, err);
                return;
        }
        struct state_loaded l;
        if (state_parse(buf, len, &l, err, sizeof(err)) != 0) {
                free(buf);
                set_aside(r->path, err);
                return;
        }
        free(buf);
        if (l.notify != NULL)
                r->notify_loaded = json_incref(l.notify);
        double wall = wall_clock(), mono = mono_now();
        size_t nrec = json_array_size(l.targets);

        /* First every record is tried on a scratch slo, so that a damaged
         * one refuses the whole file before any target is touched. */
        size_t usable = 0;
        for (size_t k = 0; k < nrec; k++) {
                json_t *rec = json_array_get(l.targets, k);
                struct slo *scratch = slo_new(mono, NULL);
                struct state_previous prev;
                int rc = state_restore(rec, scratch, &prev, wall, mono, why, sizeof(why));
                slo_free(scratch);
                if (rc != 0) {
                        snprintf(err, sizeof(err), "target record '%s': %s", state_record_name(rec),
                                 why);
                        state_loaded_free(&l);
                        set_aside(r->path, err);
                        return;
                }
                int i = target_named(r->eng, state_record_name(rec));
                if (i >= 0 &&
                    state_record_matches(rec, engine_view_conf(r->eng, (size_t)i), NULL, 0))
                        usable++;
        }
        if (nrec > 0 && usable == 0) {
                char names[200] = "";
                for (size_t k = 0; k < nrec && strlen(names) < 150; k++)
                        snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
                                 k ? ", " : "", state_record_name(json_array_get(l.targets, k)));
                snprintf(err, sizeof(err),
                         "its targets (%s) match none configured here (name, kind, host, port "
                         "and db must match)",
                         names);
                /* the journal is still this daemon's: its ids go on, so a
                 * client polling /events?since=N misses nothing */
                state_restore_events(&l, r->journal);
                state_loaded_free(&l);
                set_aside(r->path, err);
                return;
        }
        size_t restored = 0;
        for (size_t k = 0; k < nrec; k++) {
                json_t *rec = json_array_get(l.targets, k);
                const char *name = state_record_name(rec);
                int i = target_named(r->eng, name);
                if (i < 0) {
                        /* not configured now: kept for a reload that brings it back */
                        if (wall - state_record_saved_at(rec) < PARK_MAX_AGE)
                                kept_push(&r->parked, &r->nparked, json_incref(rec), NULL);
                        continue;
                }
                if (!state_record_matches(rec, engine_view_conf(r->eng, (size_t)i), why,
                                          sizeof(why))) {
                        log_msg(LOG_WARN, name, "history in %s not restored: %s", r->path, why);
                        continue;
                }
                if (!engine_fresh(r->eng, (size_t)i))
                        continue; /* two records of one name: the first wins */
                if (restore_into(r, (size_t)i, rec, wall, mono, why, sizeof(why)))
                        restored++;
        }
        state_restore_events(&l, r->journal);
        log_msg(LOG_INFO, NULL, "state file %s: history of %zu of %zu targets restored, %zu events",
                r->path, restored, engine_count(r->eng), journal_count(r->journal));
        state_loaded_free(&l);
}

/* ---- lifecycle ---- */

struct record *record_new(struct event_base *base, const struct config *cfg, struct engine *eng)
{
        struct record *r = calloc(1, sizeof(*r));
        if (r == NULL)
                abort();
        r->base = base;
        r->cfg = cfg;
        r->eng = eng;
        r->journal = journal_new((size_t)cfg->events_max);
        engine_set_journal(eng, r->journal);
        if (cfg->state_file != NULL) {
                char err[300];
                r->path = strdup(cfg->state_file);
                if (r->path == NULL)
                        abort();
                r->stats.enabled = true;
                load(r);
                r->writer = state_writer_new(base, r->path, on_written, r, err, sizeof(err));
                if (r->writer == NULL)
                        log_msg(LOG_WARN, NULL, "state file %s will not be written: %s", r->path,
                                err);
                r->soon = evtimer_new(base, on_soon, r);
                r->step = evtimer_new(base, on_step, r);
                r->periodic = event_new(base, -1, EV_PERSIST, on_periodic, r);
                if (r->soon == NULL || r->periodic == NULL || r->step == NULL)
                        abort();
                struct timeval tv = ms_tv(cfg->state_interval_ms);
                evtimer_add(r->periodic, &tv);
        }
        journal_set_listener(r->journal, on_event, r);
        bool any = false;
        for (size_t i = 0; i < engine_count(eng); i++) {
                struct target_view v;
                engine_view(eng, i, &v);
                any = any || v.restored;
        }
        journal_start(r->journal, wall_clock(), HEALTHD_VERSION, engine_count(eng), any);
        return r;
}

void record_before_reload(struct record *r)
{
        double wall = wall_clock(), mono = mono_now();
        /* the targets' indexes change: a build in progress starts again after */
        if (r->building) {
                build_cancel(r);
                r->build_again = true;
        }
        kept_clear(&r->exports, &r->nexports);
        for (size_t i = 0; i < engine_count(r->eng); i++)
                kept_push(&r->exports, &r->nexports, record_of(r, i, wall, mono),
                          engine_slo(r->eng, i));
}

void record_after_reload(struct record *r, const struct config *cfg)
{
        double wall = wall_clock(), mono = mono_now();
        char why[300];
        r->cfg = cfg;
        journal_resize(r->journal, (size_t)cfg->events_max);
        if (r->periodic != NULL && cfg->state_interval_ms != 0) {
                struct timeval tv = ms_tv(cfg->state_interval_ms);
                evtimer_add(r->periodic, &tv);
        }
        if (r->path != NULL && (cfg->state_file == NULL || strcmp(cfg->state_file, r->path) != 0))
                log_msg(LOG_WARN, NULL, "reload: state_file changes only on restart (still %s)",
                        r->path);
        for (size_t i = 0; i < engine_count(r->eng); i++) {
                const struct slo *slo = engine_slo(r->eng, i);
                bool kept = false;
                for (size_t k = 0; k < r->nexports; k++)
                        if (r->exports[k].slo == slo)
                                kept = true;
                if (kept || !engine_fresh(r->eng, i))
                        continue;
                const struct target_conf *c = engine_view_conf(r->eng, i);
                /* a changed target finds its own record; a returning one a parked one */
                struct kept *sets[2] = {r->exports, r->parked};
                const size_t ns[2] = {r->nexports, r->nparked};
                for (int s = 0; s < 2 && engine_fresh(r->eng, i); s++)
                        for (size_t k = 0; k < ns[s]; k++) {
                                json_t *rec = sets[s][k].rec;
                                if (rec == NULL || !state_record_matches(rec, c, NULL, 0))
                                        continue;
                                if (restore_into(r, i, rec, wall, mono, why, sizeof(why)))
                                        log_msg(LOG_INFO, c->name, "history restored");
                                json_decref(rec);
                                sets[s][k].rec = NULL;
                                break;
                        }
        }
        /* Records of targets gone from the configuration are parked; those
         * of targets still configured were used or are superseded. */
        for (size_t k = 0; k < r->nexports; k++) {
                json_t *rec = r->exports[k].rec;
                if (rec != NULL && engine_find(r->eng, state_record_name(rec)) < 0) {
                        kept_push(&r->parked, &r->nparked, rec, NULL);
                        r->exports[k].rec = NULL;
                }
        }
        kept_clear(&r->exports, &r->nexports);
        if (r->build_again) {
                r->build_again = false;
                write_now(r);
        }
        size_t out = 0;
        for (size_t k = 0; k < r->nparked; k++)
                if (r->parked[k].rec != NULL)
                        r->parked[out++] = r->parked[k];
        r->nparked = out;
}

void record_stop(struct record *r, const char *signal_name)
{
        journal_stop(r->journal, wall_clock(), signal_name);
        if (r->soon != NULL)
                evtimer_del(r->soon);
        if (r->writer == NULL)
                return;
        /* the loop has stopped: the whole state at once */
        build_cancel(r);
        r->building = true;
        r->build_next = 0;
        r->build_seconds = r->build_turn = 0;
        strbuf_init(&r->build, 4096 + engine_count(r->eng) * 1536);
        build_step(r, true);
}

void record_free(struct record *r)
{
        if (r == NULL)
                return;
        state_writer_free(r->writer); /* finishes the last write */
        engine_set_journal(r->eng, NULL);
        if (r->soon != NULL)
                event_free(r->soon);
        if (r->periodic != NULL)
                event_free(r->periodic);
        build_cancel(r);
        if (r->step != NULL)
                event_free(r->step);
        kept_clear(&r->parked, &r->nparked);
        kept_clear(&r->exports, &r->nexports);
        if (r->notify_loaded != NULL)
                json_decref(r->notify_loaded);
        journal_free(r->journal);
        free(r->path);
        free(r);
}

static void on_notify_change(void *arg)
{
        on_event(arg, EV_NTYPES);
}

void record_set_notify(struct record *r, struct notify_hub *h)
{
        r->hub = h;
        notify_hub_set_journal(h, r->journal);
        notify_hub_set_listener(h, on_notify_change, r);
        notify_hub_restore(h, r->notify_loaded);
        if (r->notify_loaded != NULL)
                json_decref(r->notify_loaded);
        r->notify_loaded = NULL;
}

const struct journal *record_journal(const struct record *r)
{
        return r->journal;
}

void record_get_stats(const struct record *r, struct record_stats *s)
{
        *s = r->stats;
}
