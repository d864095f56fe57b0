#ifndef SCOPED_TRAINER_CSIGNALS_H
#define SCOPED_TRAINER_CSIGNALS_H

/// Installs a handler for each of `signals` (n of them) that writes the signal's number, one byte, to
/// `write_fd` (the write end of a pipe a thread reads), and sets `was_ignored[i]` to 1 where the signal's
/// disposition was SIG_IGN before (nohup's SIGHUP, a background job's SIGINT), 0 elsewhere: the caller decides
/// what an ignored signal nobody handles means. Returns 0, or -1 with errno set.
///
/// Why a handler and not only a blocked mask and sigwait: a library may start threads before `main` (OpenBLAS
/// does, at load), and those threads do not block the signals; a SIGTERM the kernel hands to one of them would
/// take the default action and kill the process. With a handler installed, whichever thread runs it only
/// writes a byte (async-signal-safe), and the signal thread does the rest.
int scoped_trainer_forward_signals(int write_fd, const int *signals, int n, int *was_ignored);

/// Names the calling thread (up to 15 bytes, as /proc/self/task/*/comm shows it).
void scoped_trainer_name_this_thread(const char *name);

#endif
