/* The wakeup floor for bench/run.py: a process that does nothing but
 * sleep in epoll_wait and wake up RATE times a second.  Its CPU is what
 * this machine charges for a wakeup alone (scheduling, the timer
 * interrupt, the return to user space): the part of an idle daemon's CPU
 * that no saving in its own work can touch.
 *
 *   waker RATE        (runs until SIGTERM) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
        (void)sig;
        stop = 1;
}

int main(int argc, char **argv)
{
        int rate = argc == 2 ? atoi(argv[1]) : 0;
        if (rate < 1 || rate > 1000) {
                fputs("usage: waker RATE (wakeups a second, 1-1000)\n", stderr);
                return 2;
        }
        struct sigaction sa = {.sa_handler = on_term};
        sigaction(SIGTERM, &sa, NULL);
        int ep = epoll_create1(EPOLL_CLOEXEC);
        if (ep < 0) {
                perror("waker: epoll_create1");
                return 1;
        }
        struct epoll_event ev;
        while (!stop)
                (void)epoll_wait(ep, &ev, 1, 1000 / rate);
        close(ep);
        return 0;
}
