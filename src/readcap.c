/* Read budgets (include/readcap.h): this file defines recv() for the whole
 * process; the executable's definition comes first in the dynamic linker's
 * lookup, so libpq's calls land here. */
#include "readcap.h"

#include <errno.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/types.h>

#define READCAP_FDS 4096

/* 0: no cap; otherwise the bytes left plus one.  Zero pages until used. */
static atomic_llong caps[READCAP_FDS];

bool readcap_set(int fd, size_t budget)
{
        if (fd < 0 || fd >= READCAP_FDS)
                return false;
        atomic_store(&caps[fd], (long long)budget + 1);
        return true;
}

void readcap_clear(int fd)
{
        if (fd >= 0 && fd < READCAP_FDS)
                atomic_store(&caps[fd], 0);
}

bool readcap_spent(int fd)
{
        return fd >= 0 && fd < READCAP_FDS && atomic_load(&caps[fd]) == 1;
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
        if (fd >= 0 && fd < READCAP_FDS) {
                long long cap = atomic_load_explicit(&caps[fd], memory_order_relaxed);
                if (cap > 0) {
                        long long left = cap - 1;
                        if (left == 0) {
                                errno = EAGAIN;
                                return -1;
                        }
                        if ((long long)len > left)
                                len = (size_t)left;
                        ssize_t n = recvfrom(fd, buf, len, flags, NULL, NULL);
                        if (n > 0 && !(flags & MSG_PEEK))
                                atomic_fetch_sub(&caps[fd], (long long)n);
                        return n;
                }
        }
        return recvfrom(fd, buf, len, flags, NULL, NULL);
}
