/*
 * slow_fsync.so: an LD_PRELOAD shim that makes fsync and fdatasync sleep
 * before they run, as on a slow or saturated disk.  The state-file tests use
 * it to show that the daemon's loop (and /livez) does not wait for the disk.
 * HEALTHD_TEST_FSYNC_DELAY_MS sets the delay (default 2000 ms).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int fsync(int fd);
int fdatasync(int fd);

static void delay(void)
{
        const char *s = getenv("HEALTHD_TEST_FSYNC_DELAY_MS");
        long ms = s != NULL ? atol(s) : 2000;
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0)
                ;
}

int fsync(int fd)
{
        int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
        delay();
        return real(fd);
}

int fdatasync(int fd)
{
        int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
        delay();
        return real(fd);
}
