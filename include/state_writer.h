/* The only module that touches the state file: atomic replacement off the
 * event loop (SPEC 11).  A writer thread is handed finished buffers; it
 * writes a temporary file in the same directory, fsyncs it, renames it over
 * the file and fsyncs the directory.  Results come back to the loop through
 * a pipe watched by libevent, so the loop never waits for the disk (except
 * in state_writer_free, at shutdown, which finishes the last write). */
#ifndef HEALTHD_STATE_WRITER_H
#define HEALTHD_STATE_WRITER_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct state_writer;

/* What the writes finished since the last report did; called on the loop. */
struct state_write_report {
        uint64_t ok, failed; /* writes finished since the last report */
        double last_ok;      /* wall clock of the last good write, 0 if none */
        char error[300];     /* the last failure, "" if none failed */
};

typedef void (*state_write_done)(void *arg, const struct state_write_report *r);

/* NULL (with err) when the thread or its pipe cannot be made. */
struct state_writer *state_writer_new(struct event_base *base, const char *path,
                                      state_write_done done, void *arg, char *err, size_t errlen);
/* Takes ownership of buf (malloc'd).  A buffer still waiting is replaced:
 * only the newest state matters. */
void state_writer_submit(struct state_writer *w, char *buf, size_t len);
/* True while a write is in progress or waiting. */
bool state_writer_busy(struct state_writer *w);
/* Finishes the write in progress and the one waiting, reports them, then
 * stops the thread. */
void state_writer_free(struct state_writer *w);

/* Writes buf to path atomically, now, in the calling thread (the writer
 * thread's step; also for tests).  Returns 0 or -1 with err. */
int state_write_file(const char *path, const char *buf, size_t len, char *err, size_t errlen);

#endif
