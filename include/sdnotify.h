/* systemd's service notification protocol (sd_notify(3)) without libsystemd:
 * newline-separated KEY=VALUE datagrams sent to the AF_UNIX socket named by
 * $NOTIFY_SOCKET, and the watchdog keep-alive timer on the loop.
 *
 * sdnotify_new() returns NULL when NOTIFY_SOCKET is unset (or unusable), and
 * every other function accepts NULL and then does nothing, so main.c calls
 * them unconditionally.  Sending never blocks the loop: a datagram the socket
 * cannot take at once is dropped, and the failure is logged once. */
#ifndef HEALTHD_SDNOTIFY_H
#define HEALTHD_SDNOTIFY_H

#include "target.h"

#include <event2/event.h>
#include <stddef.h>

struct sdnotify;

/* Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the environment.
 * With a watchdog, sends WATCHDOG=1 from the loop every WATCHDOG_USEC / 2;
 * once a second it sends STATUS= when the engine's summary line changed.
 * `eng` must outlive the returned object. */
struct sdnotify *sdnotify_new(struct event_base *base, const struct engine *eng);
void sdnotify_free(struct sdnotify *n);

/* READY=1 with the current STATUS=: the listener is up (at start), or a
 * reload is over (whether the new configuration was taken or refused). */
void sdnotify_ready(struct sdnotify *n);
/* RELOADING=1 with MONOTONIC_USEC= (CLOCK_MONOTONIC, microseconds), which
 * Type=notify-reload (systemd 253 and later) needs; harmless before. */
void sdnotify_reloading(struct sdnotify *n);
/* STOPPING=1: the daemon is shutting down; the timers stop. */
void sdnotify_stopping(struct sdnotify *n);

/* The STATUS= line for `ntargets` targets, `count` indexed by enum status:
 * "5 targets: 3 pass, 1 warn, 1 fail" (zero counts left out). Pure. */
void sdnotify_status_line(char *buf, size_t len, size_t ntargets, const size_t count[4]);

/* Sends one message to `socket_name` ("/path" or "@abstract"); 0 on success,
 * -1 with errno set.  The building block of the above, exposed for tests. */
int sdnotify_send(const char *socket_name, const char *msg);

#endif
