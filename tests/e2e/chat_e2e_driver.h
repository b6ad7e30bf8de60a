/* tests/e2e/chat_e2e_driver.h - the ctest entry of tests/e2e/chat_e2e.py,
 * shared by test_chat_e2e.c (plain HTTP) and test_chat_h2_e2e.c (HTTPS,
 * HTTP/2 by ALPN).
 *
 * It runs the script in its own process group with a hard limit of 60 s,
 * kills whatever is left of the group afterwards, and removes the scratch
 * directory (Chromium's profile, the certificates, the logs). It skips (77)
 * when Chromium, python3 or the loom-chat binary is missing.
 */
#ifndef LOOM_TEST_CHAT_E2E_DRIVER_H
#define LOOM_TEST_CHAT_E2E_DRIVER_H

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

enum { CHAT_E2E_LIMIT_S = 60 }; /* the script itself gives up after 50 s */

/* Returns true if `name` is an executable in $PATH. */
static bool in_path(const char *name)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    char buf[4096];
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n > 0 &&
            (size_t)snprintf(buf, sizeof buf, "%.*s/%s", (int)n, path, name) < sizeof buf &&
            access(buf, X_OK) == 0)
            return true;
        path += n;
        if (*path == ':')
            path++;
    }
    return false;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs chat_e2e.py with `mode` (NULL, or an option such as "--tls") and
 * returns the test's exit status (77: skipped). `screenshot`: where to save
 * the pages' picture, or NULL for none. */
static int chat_e2e_run(const char *mode, const char *screenshot)
{
    const char *chromium = getenv("LOOM_CHROMIUM");
    if (!chromium)
        chromium = "/usr/bin/chromium";
    if (access(chromium, X_OK) != 0)
        TEST_SKIP("no Chromium at %s (scripts/install-deps.sh installs it)", chromium);
    if (!in_path("python3"))
        TEST_SKIP("no python3");
    const char *binary = LOOM_BINARY_DIR "/examples/loom-chat";
    if (access(binary, X_OK) != 0)
        TEST_SKIP("%s not built (LOOM_BUILD_EXAMPLES=OFF?)", binary);

    char tmpdir[] = "/tmp/loom-chat-e2e-XXXXXX";
    CHECK(mkdtemp(tmpdir) != NULL);

    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        const char *argv[16] = {"python3",    LOOM_SOURCE_DIR "/tests/e2e/chat_e2e.py",
                                "--binary",   binary,
                                "--chromium", chromium,
                                "--tmpdir",   tmpdir,
                                "--timeout",  "50"};
        int n = 10;
        if (screenshot) {
            argv[n++] = "--screenshot";
            argv[n++] = screenshot;
        }
        if (mode)
            argv[n++] = mode;
        execvp("python3", (char *const *)argv);
        perror("exec python3");
        _exit(127);
    }
    setpgid(pid, pid); /* also here: no race with the child's own call */

    int status = 0;
    bool timed_out = false;
    double end = now_s() + CHAT_E2E_LIMIT_S;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        CHECK(r == 0 || errno == EINTR);
        if (now_s() > end) {
            fprintf(stderr, "chat e2e%s%s: no result within %d s; killing it\n", mode ? " " : "",
                    mode ? mode : "", CHAT_E2E_LIMIT_S);
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            timed_out = true;
            break;
        }
        usleep(50 * 1000);
    }
    /* loom-chat runs in the script's group; Chromium in its own session
     * dies with the script (PR_SET_PDEATHSIG). Anything left goes now. */
    kill(-pid, SIGKILL);
    nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);

    if (timed_out)
        return 1;
    if (!WIFEXITED(status)) {
        fprintf(stderr, "chat e2e: the script died of signal %d\n", WTERMSIG(status));
        return 1;
    }
    return WEXITSTATUS(status) == 127 ? 1 : WEXITSTATUS(status);
}

#endif
