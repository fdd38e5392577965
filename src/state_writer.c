/*
 * state_writer.c: the writer thread (see state_writer.h).
 *
 * Shared between the loop and the thread, under `mu`: the waiting buffer,
 * the stop flag and the results not yet reported.  The thread takes the
 * waiting buffer, writes it without the lock, records the result and writes
 * one byte to the pipe; the loop's read callback drains the pipe and reports
 * the results.  The loop never holds the lock across I/O, and the thread
 * never calls into libevent.
 */
#include "state_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct state_writer {
        char *path;
        struct event_base *base;
        struct event *ev;
        int pipe_r, pipe_w;
        state_write_done done;
        void *arg;
        pthread_t thread;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        /* under mu */
        char *pending;
        size_t pending_len;
        bool writing;
        bool stop;
        struct state_write_report results;
};

static double wall_clock(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* strerror() may share a buffer between threads; this runs in the writer. */
static const char *errstr(int e, char *buf, size_t len)
{
        return strerror_r(e, buf, len);
}

int state_write_file(const char *path, const char *buf, size_t len, char *err, size_t errlen)
{
        char eb[128];
        size_t plen = strlen(path);
        char *tmp = malloc(plen + 5);
        char *dircopy = strdup(path);
        int fd = -1, rc = -1;
        if (tmp == NULL || dircopy == NULL)
                abort();
        memcpy(tmp, path, plen);
        memcpy(tmp + plen, ".tmp", 5);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        if (fd < 0) {
                snprintf(err, errlen, "cannot create '%s': %s", tmp, errstr(errno, eb, sizeof(eb)));
                goto out;
        }
        for (size_t off = 0; off < len;) {
                ssize_t n = write(fd, buf + off, len - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        snprintf(err, errlen, "cannot write '%s': %s", tmp,
                                 n < 0 ? errstr(errno, eb, sizeof(eb)) : "no progress");
                        goto out_unlink;
                }
                off += (size_t)n;
        }
        if (fsync(fd) != 0) {
                snprintf(err, errlen, "cannot fsync '%s': %s", tmp, errstr(errno, eb, sizeof(eb)));
                goto out_unlink;
        }
        if (close(fd) != 0) {
                fd = -1;
                snprintf(err, errlen, "cannot close '%s': %s", tmp, errstr(errno, eb, sizeof(eb)));
                goto out_unlink;
        }
        fd = -1;
        if (rename(tmp, path) != 0) {
                snprintf(err, errlen, "cannot rename '%s' to '%s': %s", tmp, path,
                         errstr(errno, eb, sizeof(eb)));
                goto out_unlink;
        }
        /* The rename is durable only once the directory is. */
        int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
                snprintf(err, errlen, "cannot open the directory of '%s' to fsync it: %s", path,
                         errstr(errno, eb, sizeof(eb)));
                goto out;
        }
        if (fsync(dfd) != 0 && errno != EINVAL) {
                snprintf(err, errlen, "cannot fsync the directory of '%s': %s", path,
                         errstr(errno, eb, sizeof(eb)));
                close(dfd);
                goto out;
        }
        close(dfd);
        rc = 0;
        goto out;
out_unlink:
        if (fd >= 0)
                close(fd);
        fd = -1;
        unlink(tmp);
out:
        if (fd >= 0)
                close(fd);
        free(tmp);
        free(dircopy);
        return rc;
}

static void *writer_main(void *arg)
{
        struct state_writer *w = arg;
        pthread_mutex_lock(&w->mu);
        for (;;) {
                while (w->pending == NULL && !w->stop)
                        pthread_cond_wait(&w->cv, &w->mu);
                if (w->pending == NULL)
                        break; /* stopping, nothing left */
                char *buf = w->pending;
                size_t len = w->pending_len;
                w->pending = NULL;
                w->writing = true;
                pthread_mutex_unlock(&w->mu);

                char err[300] = "";
                int rc = state_write_file(w->path, buf, len, err, sizeof(err));
                double when = wall_clock();
                free(buf);

                pthread_mutex_lock(&w->mu);
                w->writing = false;
                if (rc == 0) {
                        w->results.ok++;
                        w->results.last_ok = when;
                } else {
                        w->results.failed++;
                        snprintf(w->results.error, sizeof(w->results.error), "%s", err);
                }
                char one = 1;
                ssize_t n = write(w->pipe_w, &one, 1); /* full pipe: a wakeup is pending */
                (void)n;
        }
        pthread_mutex_unlock(&w->mu);
        return NULL;
}

static void report(struct state_writer *w)
{
        struct state_write_report r;
        pthread_mutex_lock(&w->mu);
        r = w->results;
        memset(&w->results, 0, sizeof(w->results));
        pthread_mutex_unlock(&w->mu);
        if ((r.ok > 0 || r.failed > 0) && w->done != NULL)
                w->done(w->arg, &r);
}

static void on_pipe(evutil_socket_t fd, short what, void *arg)
{
        struct state_writer *w = arg;
        char buf[64];
        (void)what;
        while (read(fd, buf, sizeof(buf)) > 0)
                ;
        report(w);
}

struct state_writer *state_writer_new(struct event_base *base, const char *path,
                                      state_write_done done, void *arg, char *err, size_t errlen)
{
        struct state_writer *w = calloc(1, sizeof(*w));
        int p[2];
        if (w == NULL)
                abort();
        if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
                snprintf(err, errlen, "state writer: pipe: %s", strerror(errno));
                free(w);
                return NULL;
        }
        w->pipe_r = p[0];
        w->pipe_w = p[1];
        w->path = strdup(path);
        if (w->path == NULL)
                abort();
        w->base = base;
        w->done = done;
        w->arg = arg;
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        w->ev = event_new(base, w->pipe_r, EV_READ | EV_PERSIST, on_pipe, w);
        if (w->ev == NULL)
                abort();
        event_add(w->ev, NULL);
        int rc = pthread_create(&w->thread, NULL, writer_main, w);
        if (rc != 0) {
                snprintf(err, errlen, "state writer: cannot start its thread: %s", strerror(rc));
                event_free(w->ev);
                close(w->pipe_r);
                close(w->pipe_w);
                pthread_mutex_destroy(&w->mu);
                pthread_cond_destroy(&w->cv);
                free(w->path);
                free(w);
                return NULL;
        }
        return w;
}

void state_writer_submit(struct state_writer *w, char *buf, size_t len)
{
        pthread_mutex_lock(&w->mu);
        free(w->pending);
        w->pending = buf;
        w->pending_len = len;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
}

bool state_writer_busy(struct state_writer *w)
{
        pthread_mutex_lock(&w->mu);
        bool busy = w->writing || w->pending != NULL;
        pthread_mutex_unlock(&w->mu);
        return busy;
}

void state_writer_free(struct state_writer *w)
{
        if (w == NULL)
                return;
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
        report(w);
        event_free(w->ev);
        close(w->pipe_r);
        close(w->pipe_w);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w->pending);
        free(w->path);
        free(w);
}
