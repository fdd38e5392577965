/* Read budgets for sockets whose reads happen inside a library.
 *
 * libpq 15 reads a long message in one PQconsumeInput call for as long as
 * the kernel has bytes for it, into a buffer it sizes from the length the
 * server announces (up to 1 GiB): a hostile server can hold the loop and
 * fill memory at its own pace, and libpq offers no hook on its reads.  Its
 * reads (plain and TLS alike) all go through recv(), so this module
 * defines recv(): on a socket with a budget it returns at most what is
 * left, then fails with EAGAIN, and the caller sees the budget spent the
 * moment the library returns.  Every other socket, and every other
 * caller, goes straight to the C library.
 *
 * Budgets are set and cleared by the loop's thread only, on sockets that
 * only the loop reads; recv() may run in any thread. */
#ifndef HEALTHD_READCAP_H
#define HEALTHD_READCAP_H

#include <stdbool.h>
#include <stddef.h>

/* Caps further reads on `fd` at `budget` bytes (sockets numbered below
 * 4096; others are not capped, and readcap_set returns false). */
bool readcap_set(int fd, size_t budget);
/* Removes the cap; call before the socket is closed. */
void readcap_clear(int fd);
/* True when the budget of `fd` is used up. */
bool readcap_spent(int fd);

#endif
