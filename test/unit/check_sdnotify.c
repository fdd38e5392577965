/*
 * Unit tests for sdnotify.c: the STATUS= summary line (table-driven) and the
 * datagram itself, received on real AF_UNIX sockets the test binds, in the
 * two address forms NOTIFY_SOCKET takes (a path and an @abstract name).
 * The daemon's use of them (READY, WATCHDOG, RELOADING, STOPPING) is tested
 * end to end in test/integration/test_sdnotify.py.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sdnotify.h"

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const struct {
        size_t n;
        size_t count[4]; /* unknown, pass, warn, fail */
        const char *line;
} status_cases[] = {
    {5, {0, 5, 0, 0}, "5 targets: 5 pass"},
    {5, {5, 0, 0, 0}, "5 targets: 5 unknown"},
    {5, {1, 2, 1, 1}, "5 targets: 2 pass, 1 warn, 1 fail, 1 unknown"},
    {1, {0, 0, 0, 1}, "1 target: 1 fail"},
    {0, {0, 0, 0, 0}, "0 targets"},
    {12000, {0, 11999, 1, 0}, "12000 targets: 11999 pass, 1 warn"},
};

START_TEST(test_status_line)
{
        char buf[128];
        sdnotify_status_line(buf, sizeof(buf), status_cases[_i].n, status_cases[_i].count);
        ck_assert_str_eq(buf, status_cases[_i].line);
}
END_TEST

/* A buffer too small for the line is filled and terminated, never overrun
 * (ASan watches the heap copy). */
START_TEST(test_status_line_truncated)
{
        static const size_t count[4] = {1, 2, 3, 4};
        for (size_t len = 1; len < 48; len++) {
                char *buf = malloc(len);
                ck_assert_ptr_nonnull(buf);
                sdnotify_status_line(buf, len, 10, count);
                ck_assert_uint_lt(strlen(buf), len);
                ck_assert(strncmp(buf, "10 targets: 2 pass, 3 warn, 4 fail, 1 unknown", len - 1) ==
                          0);
                free(buf);
        }
}
END_TEST

static int bind_dgram(const struct sockaddr_un *sa, socklen_t len)
{
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(fd, 0); /* lint-tests: ok socket() returns -1 on failure */
        ck_assert_msg(bind(fd, (const struct sockaddr *)sa, len) == 0, "bind: %s", strerror(errno));
        return fd;
}

static void expect_datagram(int fd, const char *want)
{
        char buf[256];
        ssize_t r = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
        ck_assert_msg(r >= 0, "no datagram: %s", /* lint-tests: ok recv() fails with -1 */
                      strerror(errno));
        buf[r] = '\0';
        ck_assert_str_eq(buf, want);
}

START_TEST(test_send_path)
{
        char dir[] = "/tmp/check_sdnotify.XXXXXX";
        ck_assert_ptr_nonnull(mkdtemp(dir));
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify", dir);
        int fd = bind_dgram(&sa, sizeof(sa));
        ck_assert_int_eq(sdnotify_send(sa.sun_path, "READY=1\nSTATUS=x"), 0);
        expect_datagram(fd, "READY=1\nSTATUS=x");
        close(fd);
        unlink(sa.sun_path);
        /* Nobody listening any more: an error, not a crash or a block. */
        ck_assert_int_eq(sdnotify_send(sa.sun_path, "WATCHDOG=1"), -1);
        ck_assert_int_eq(errno, ENOENT);
        rmdir(dir);
}
END_TEST

START_TEST(test_send_abstract)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char name[64];
        snprintf(name, sizeof(name), "@check_sdnotify.%ld", (long)getpid());
        memcpy(sa.sun_path, name, strlen(name));
        sa.sun_path[0] = '\0';
        /* The exact length: an abstract name has no terminating NUL. */
        int fd =
            bind_dgram(&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name)));
        ck_assert_int_eq(sdnotify_send(name, "STOPPING=1"), 0);
        expect_datagram(fd, "STOPPING=1");
        close(fd);
        ck_assert_int_eq(sdnotify_send(name, "STOPPING=1"), -1);
        ck_assert_int_eq(errno, ECONNREFUSED);
}
END_TEST

START_TEST(test_bad_names)
{
        static const char *const bad[] = {"", "@", "relative/path", "vsock:2:1234"};
        for (int i = 0; i < N(bad); i++) {
                errno = 0;
                ck_assert_int_eq(sdnotify_send(bad[i], "READY=1"), -1);
                ck_assert_int_eq(errno, EINVAL);
        }
        char longname[200];
        memset(longname, 'a', sizeof(longname) - 1);
        longname[0] = '/';
        longname[sizeof(longname) - 1] = '\0';
        ck_assert_int_eq(sdnotify_send(longname, "READY=1"), -1);
}
END_TEST

/* Without NOTIFY_SOCKET (or with one that is no socket address) there is no
 * notifier, and the calls main.c makes unconditionally do nothing. */
START_TEST(test_disabled)
{
        unsetenv("NOTIFY_SOCKET");
        ck_assert_ptr_null(sdnotify_new(NULL, NULL));
        setenv("NOTIFY_SOCKET", "not-a-socket", 1);
        ck_assert_ptr_null(sdnotify_new(NULL, NULL));
        unsetenv("NOTIFY_SOCKET");
        sdnotify_ready(NULL);
        sdnotify_reloading(NULL);
        sdnotify_stopping(NULL);
        sdnotify_free(NULL);
}
END_TEST

static Suite *sdnotify_suite(void)
{
        Suite *s = suite_create("sdnotify");
        TCase *tc = tcase_create("core");
        tcase_add_loop_test(tc, test_status_line, 0, N(status_cases));
        tcase_add_test(tc, test_status_line_truncated);
        tcase_add_test(tc, test_send_path);
        tcase_add_test(tc, test_send_abstract);
        tcase_add_test(tc, test_bad_names);
        tcase_add_test(tc, test_disabled);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(sdnotify_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
