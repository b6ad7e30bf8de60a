/* tests/http/py_test.h - a Python server for the client tests
 * (test_http_client_python, test_http_tls_python): /usr/bin/python3 -c
 * SCRIPT [ARG1 [ARG2]] as a child process that prints its port on its
 * first line; stopped at exit. */
#ifndef LOOM_TEST_PY_H
#define LOOM_TEST_PY_H

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include "hc_test.h"

#define PY "/usr/bin/python3"

static pid_t py_pid = -1;

static void py_stop(void)
{
    if (py_pid > 0) {
        kill(py_pid, SIGTERM);
        waitpid(py_pid, NULL, 0);
        py_pid = -1;
    }
}

/* Starts the server; returns its port. Skips the test without python3 or
 * when the server does not come up. */
static inline int py_start(const char *script, const char *arg1, const char *arg2)
{
    if (access(PY, X_OK) != 0)
        TEST_SKIP("%s is missing", PY);
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    py_pid = fork();
    CHECK(py_pid >= 0);
    if (py_pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        execl(PY, "python3", "-c", script, arg1, arg2, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    atexit(py_stop);
    char buf[32] = {0};
    size_t n = 0;
    while (n < sizeof buf - 1) {
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0)
            break;
        ssize_t k = read(pfd[0], buf + n, 1);
        if (k <= 0 || buf[n] == '\n')
            break;
        n++;
    }
    close(pfd[0]);
    int port = atoi(buf);
    if (port <= 0)
        TEST_SKIP("the python server did not start");
    return port;
}

#endif
