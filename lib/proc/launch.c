/* launch.c - starting and stopping a launched target (see launch.h).
 *
 * A close-on-exec pipe is the handshake: it closes when exec succeeds, and
 * carries exec's errno back when it fails. The child gets the dispositions
 * of the signals the front ends handle or ignore as they were when homura
 * started. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
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

pid_t hm_launch(char **cmd, int quiet)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	pid_t child = fork();
	if (child < 0) {
		int e = errno;
		close(fds[0]);
		close(fds[1]);
		errno = e;
		return -1;
	}
	if (child == 0) {
		close(fds[0]);
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
		execvp(cmd[0], cmd);
		int e = errno;
		ssize_t w = write(fds[1], &e, sizeof e);
		(void)w;
		_exit(127);
	}
	close(fds[1]);
	int e = 0;
	ssize_t n;
	do
		n = read(fds[0], &e, sizeof e);
	while (n < 0 && errno == EINTR);
	close(fds[0]);
	if (n == (ssize_t)sizeof e) {
		waitpid(child, NULL, 0);
		errno = e;
		return -1;
	}
	return child;
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
