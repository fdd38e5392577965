/*
 * Unit tests for pglogin.c: a login runs in a worker thread and its result
 * comes back to the loop; the count of live workers returns to exactly 0
 * (a shutdown waits on it), whether the login was delivered or cancelled.
 * Logins go to a closed loopback port, refused at once.
 */
#include <check.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pglogin.h"

static int closed_port(void)
{
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert_int_ne(fd, -1);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        socklen_t len = sizeof(sa);
        ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
        close(fd); /* nothing listens there now */
        return ntohs(sa.sin_port);
}

struct result {
        bool called;
        bool connected;
        char err[300];
};

static void done(PGconn *conn, const char *err, void *arg)
{
        struct result *r = arg;
        r->called = true;
        r->connected = conn != NULL;
        snprintf(r->err, sizeof(r->err), "%s", err != NULL ? err : "");
        if (conn != NULL)
                PQfinish(conn);
}

static struct pglogin *start(struct event_base *base, int port, struct result *r)
{
        char p[16];
        snprintf(p, sizeof(p), "%d", port);
        const char *keys[] = {"host", "hostaddr", "port",       "dbname",
                              "user", "sslmode",  "gssencmode", NULL};
        const char *vals[] = {"localhost", "127.0.0.1", p, "db", "u", "disable", "disable", NULL};
        char err[200];
        struct pglogin *l = pglogin_start(base, keys, vals, 2.0, 2.0, done, r, err, sizeof(err));
        ck_assert_msg(l != NULL, "pglogin_start: %s", err);
        return l;
}

static void wait_threads(int want)
{
        for (int i = 0; i < 500 && pglogin_threads() != want; i++)
                usleep(10000);
        ck_assert_int_eq(pglogin_threads(), want);
}

START_TEST(test_refused_login_comes_back_and_the_count_returns_to_zero)
{
        struct event_base *base = event_base_new();
        struct result r = {0};
        struct pglogin *l = start(base, closed_port(), &r);
        for (int i = 0; i < 500 && !r.called; i++)
                event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(10000);
        ck_assert(r.called);
        ck_assert(!r.connected);
        ck_assert_msg(strstr(r.err, "refused") != NULL, "error: %s", r.err);
        pglogin_release(l);
        wait_threads(0);
        ck_assert_int_eq(pglogin_shutdown(1.0), 0);
        event_base_free(base);
}
END_TEST

START_TEST(test_cancelled_logins_never_call_back)
{
        struct event_base *base = event_base_new();
        struct result r[3] = {{0}};
        struct pglogin *l[3];
        int port = closed_port();
        for (int i = 0; i < 3; i++) {
                l[i] = start(base, port, &r[i]);
                pglogin_cancel(l[i]);
                pglogin_release(l[i]);
        }
        wait_threads(0);
        for (int i = 0; i < 20; i++)
                event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        for (int i = 0; i < 3; i++)
                ck_assert(!r[i].called);
        ck_assert_int_eq(pglogin_shutdown(1.0), 0);
        event_base_free(base);
}
END_TEST

static Suite *pglogin_suite(void)
{
        Suite *s = suite_create("pglogin");
        TCase *tc = tcase_create("core");
        tcase_set_timeout(tc, 20);
        tcase_add_test(tc, test_refused_login_comes_back_and_the_count_returns_to_zero);
        tcase_add_test(tc, test_cancelled_logins_never_call_back);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(pglogin_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
