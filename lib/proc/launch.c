/* launch.c - starting and stopping a launched target (see launch.h).
 *
 * A close-on-exec pipe is the handshake: it closes when exec succeeds, and
 * carries exec's errno back when it fails. A second one holds the child
 * before its exec until the caller says go (hm_launch_held). The child gets
 * the dispositions of the signals the front ends handle or ignore as they
 * were when homura started. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc/launch.h"

/* The signals the front ends catch or ignore (SIGPIPE: their writes), as
 * homura found them when it started: the program gets them back, so that
 * `yes | head` in it still dies of SIGPIPE, and `nohup homura ...` still
 * gives it an ignored SIGHUP. */
static const int passed_sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
static int ignored_at_start[sizeof passed_sigs / sizeof *passed_sigs];

__attribute__((constructor)) static void note_dispositions(void)
{
	for (size_t i = 0; i < sizeof passed_sigs / sizeof *passed_sigs; i++) {
		struct sigaction sa;
		ignored_at_start[i] = sigaction(passed_sigs[i], NULL, &sa) == 0 &&
				      !(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_IGN;
	}
}

int hm_launch_held(char **cmd, int quiet, hm_held *h)
{
	int fds[2], go[2];
	h->pid = -1;
	h->go = h->err = -1;
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	if (pipe2(go, O_CLOEXEC) != 0) {
		int e = errno;
		close(fds[0]);
		close(fds[1]);
		errno = e;
		return -1;
	}
	pid_t child = fork();
	if (child < 0) {
		int e = errno;
		close(fds[0]);
		close(fds[1]);
		close(go[0]);
		close(go[1]);
		errno = e;
		return -1;
	}
	if (child == 0) {
		close(fds[0]);
		close(go[1]);
		for (size_t i = 0; i < sizeof passed_sigs / sizeof *passed_sigs; i++)
			signal(passed_sigs[i], ignored_at_start[i] ? SIG_IGN : SIG_DFL);
		if (quiet) {
			int fd = open("/dev/null", O_RDWR);
			if (fd >= 0) {
				dup2(fd, 0);
				dup2(fd, 1);
				dup2(fd, 2);
				if (fd > 2)
					close(fd);
			}
		}
		/* wait for the go: a byte; end of file (cancelled, or the
		 * parent died) runs nothing */
		char b;
		ssize_t r;
		do
			r = read(go[0], &b, 1);
		while (r < 0 && errno == EINTR);
		if (r != 1)
			_exit(127);
		execvp(cmd[0], cmd);
		int e = errno;
		ssize_t w = write(fds[1], &e, sizeof e);
		(void)w;
		_exit(127);
	}
	close(fds[1]);
	close(go[0]);
	h->pid = child;
	h->go = go[1];
	h->err = fds[0];
	return 0;
}

pid_t hm_launch_go(hm_held *h)
{
	/* The child cannot be gone unless someone killed it: then the write
	 * fails with EPIPE; the SIGPIPE it raises is blocked here and, if it
	 * was not already pending, taken back. */
	sigset_t pipe_set, old, pending;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigpending(&pending);
	int was_pending = sigismember(&pending, SIGPIPE) == 1;
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	char b = 1;
	ssize_t w;
	do
		w = write(h->go, &b, 1);
	while (w < 0 && errno == EINTR);
	if (w < 0 && errno == EPIPE && !was_pending) {
		struct timespec zero = {0, 0};
		sigtimedwait(&pipe_set, NULL, &zero);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(h->go);
	h->go = -1;
	int e = 0;
	ssize_t n;
	do
		n = read(h->err, &e, sizeof e);
	while (n < 0 && errno == EINTR);
	close(h->err);
	h->err = -1;
	pid_t child = h->pid;
	if (n == (ssize_t)sizeof e || w != 1) {
		int st = 0;
		waitpid(child, &st, 0);
		h->pid = -1;
		errno = n == (ssize_t)sizeof e ? e : ECHILD;
		return -1;
	}
	return child;
}

void hm_launch_cancel(hm_held *h)
{
	if (h->go >= 0)
		close(h->go);
	if (h->err >= 0)
		close(h->err);
	if (h->pid > 0)
		waitpid(h->pid, NULL, 0);
	h->pid = -1;
	h->go = h->err = -1;
}

pid_t hm_launch(char **cmd, int quiet)
{
	hm_held h;
	if (hm_launch_held(cmd, quiet, &h) != 0)
		return -1;
	return hm_launch_go(&h);
}

void hm_launch_stop(pid_t child)
{
	if (child <= 0)
		return;
	if (waitpid(child, NULL, WNOHANG) != 0)
		return;   /* already reaped or gone */
	kill(child, SIGTERM);
	for (int i = 0; i < 50 && waitpid(child, NULL, WNOHANG) == 0; i++)
		usleep(20000);
	if (waitpid(child, NULL, WNOHANG) == 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
}
