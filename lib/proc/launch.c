/* launch.c - starting and stopping a launched target (see launch.h).
 *
 * A close-on-exec pipe is the handshake: it closes when exec succeeds, and
 * carries exec's errno back when it fails. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc/launch.h"

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
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
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
