/*
 * fuzz_state: the state file parser (state.h) over arbitrary bytes.
 *
 * The state file is read at every start, and a person, a full disk or
 * another program may have damaged it: whatever the bytes, the contract is
 * "restored or refused with a reason", never a crash.  For each input:
 * state_parse returns 0 or -1, with a non-empty, NUL-terminated reason on
 * -1; on success every record is restored into a fresh slo (0 or -1 with a
 * reason), the events go into a journal, and the restored state serialises
 * to a file that parses again with the same number of records and events.
 */
#include "journal.h"
#include "slo.h"
#include "state.h"

#include "fuzz_util.h"

#include <jansson.h>

#define WALL 1800000000.0

static void check_err(const char *err, size_t len)
{
        FUZZ_CHECK(memchr(err, '\0', len) != NULL, "reason not NUL-terminated");
        FUZZ_CHECK(err[0] != '\0', "refused without a reason");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct state_loaded l;
        char err[300];
        memset(err, 'x', sizeof(err));
        if (state_parse((const char *)data, size, &l, err, sizeof(err)) != 0) {
                check_err(err, sizeof(err));
                return 0;
        }
        size_t n = json_array_size(l.targets);
        json_t **recs = calloc(n + 1, sizeof(*recs));
        FUZZ_CHECK(recs != NULL, "out of memory");
        size_t nrec = 0;
        for (size_t i = 0; i < n; i++) {
                json_t *rec = json_array_get(l.targets, i);
                struct slo *s = slo_new(100, NULL);
                struct state_previous prev;
                memset(err, 'x', sizeof(err));
                if (state_restore(rec, s, &prev, WALL, 100, err, sizeof(err)) != 0) {
                        check_err(err, sizeof(err));
                } else {
                        /* what was restored reports sane figures */
                        struct slo_report r;
                        slo_report(s, 200, &r);
                        FUZZ_CHECK(r.availability >= 0 && r.availability <= 1, "availability %g",
                                   r.availability);
                        FUZZ_CHECK(r.observed_seconds >= 0 && r.down_seconds >= 0,
                                   "negative seconds");
                        struct target_conf c;
                        memset(&c, 0, sizeof(c));
                        snprintf(c.name, sizeof(c.name), "%s", state_record_name(rec));
                        c.kind = KIND_REDIS;
                        c.host = (char *)(uintptr_t) "127.0.0.1";
                        struct state_target st = {.conf = &c, .slo = s, .status = prev.status};
                        recs[nrec++] = state_record(&st, WALL, 200);
                }
                slo_free(s);
        }
        struct journal *j = journal_new(1000);
        state_restore_events(&l, j);
        size_t nev = journal_count(j);
        FUZZ_CHECK(journal_next_id(j) >= l.next_event_id, "next id went back");
        size_t len;
        char *again = state_serialise(recs, nrec, NULL, 0, j, WALL, &len);
        struct state_loaded l2;
        memset(err, 0, sizeof(err));
        FUZZ_CHECK(state_parse(again, len, &l2, err, sizeof(err)) == 0,
                   "the restored state does not parse again: %s", err);
        FUZZ_CHECK(json_array_size(l2.targets) == nrec && json_array_size(l2.events) == nev,
                   "round trip lost records or events");
        state_loaded_free(&l2);
        free(again);
        journal_free(j);
        for (size_t i = 0; i < nrec; i++)
                json_decref(recs[i]);
        free(recs);
        state_loaded_free(&l);
        return 0;
}
