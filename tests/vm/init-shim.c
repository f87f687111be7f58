/*
 * init-shim: the kernel's first program when run-vm.sh cannot pass the init's
 * argv on the kernel command line (the kernel stops collecting init arguments
 * at a second "--", cannot pass empty arguments or ones containing quotes or
 * whitespace, and allows at most 31 of them).
 *
 * It reads the wanted argv (NUL-separated, argv[0] first) from /.init-argv and
 * execve()s /minit with it, keeping everything else exactly as the kernel set
 * it up: PID 1, the kernel's environment (HOME=/ TERM=linux ...), default signal
 * dispositions, an empty signal mask, fds 0-2 on /dev/console. The shim changes
 * no signal disposition, opens its argv file O_CLOEXEC and closes it, so after
 * the execve PID 1 is indistinguishable from /minit started by the kernel.
 *
 * Built by run-vm.sh with `cc -static -O2` (glibc or musl), cached.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define ARGV_FILE "/.init-argv"
#define TARGET "/minit"
#define MAX_BYTES (128 * 1024)
#define MAX_ARGS 4096

extern char **environ;

static char buf[MAX_BYTES + 1];
static char *args[MAX_ARGS + 1];

static void die(const char *what)
{
	/* PID 1 exiting panics the kernel with exitcode=0x00007f00. */
	dprintf(2, "init-shim: %s: %s\n", what, strerror(errno));
	_exit(127);
}

int main(void)
{
	int fd = open(ARGV_FILE, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open " ARGV_FILE);
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, MAX_BYTES - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("read " ARGV_FILE);
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == MAX_BYTES) {
			errno = E2BIG;
			die("read " ARGV_FILE);
		}
	}
	close(fd);

	size_t argc = 0;
	for (size_t i = 0; i < len && argc < MAX_ARGS;) {
		args[argc++] = buf + i;
		i += strlen(buf + i) + 1; /* buf[len] is 0, so this stays in bounds */
	}
	if (argc == 0)
		args[argc++] = TARGET;
	args[argc] = NULL;

	execve(TARGET, args, environ);
	die("execve " TARGET);
	return 127;
}
