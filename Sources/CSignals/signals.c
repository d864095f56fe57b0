#define _GNU_SOURCE
#include "CSignals.h"

#include <pthread.h>

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t forward_fd = -1;

static void forward(int sig) {
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (forward_fd >= 0) {
        ssize_t rc;
        do { rc = write((int)forward_fd, &b, 1); } while (rc < 0 && errno == EINTR);
    }
    errno = saved;
}

int scoped_trainer_forward_signals(int write_fd, const int *signals, int n, int *was_ignored) {
    forward_fd = write_fd;
    for (int i = 0; i < n; i++) {
        struct sigaction old;
        if (sigaction(signals[i], NULL, &old) != 0) return -1;
        was_ignored[i] = old.sa_handler == SIG_IGN;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = forward;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        if (sigaction(signals[i], &sa, NULL) != 0) return -1;
    }
    return 0;
}

void scoped_trainer_name_this_thread(const char *name) { (void)pthread_setname_np(pthread_self(), name); }
