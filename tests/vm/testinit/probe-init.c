/*
 * probe-init: a stand-in PID 1 for the harness self-test (selftest.sh).
 * Mounts /proc, prints what the kernel handed it (pid, argv, environment,
 * signal masks, open fds), then does what its arguments say:
 *   exit N      exit with status N
 *   segv        dereference NULL (death by SIGSEGV)
 *   abort       call abort()
 *   kill SIG    kill(getpid(), SIG) (ignored when PID 1 has no handler), then exit 42
 *   run CMD...  fork+exec CMD, wait, exit with its status (128+sig if killed)
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void show_status(void)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "Sig", 3) || !strncmp(line, "Shd", 3) || !strncmp(line, "NSpid", 5))
			printf("probe: %s", line);
	fclose(f);
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		struct dirent *e;
		printf("probe: fds:");
		while ((e = readdir(d)))
			if (e->d_name[0] != '.') {
				char p[300], t[300];
				snprintf(p, sizeof p, "/proc/self/fd/%s", e->d_name);
				ssize_t n = readlink(p, t, sizeof t - 1);
				t[n > 0 ? n : 0] = 0;
				printf(" %s->%s", e->d_name, t);
			}
		printf("\n");
		closedir(d);
	}
}

int main(int argc, char **argv)
{
	mkdir("/proc", 0555);
	mount("proc", "/proc", "proc", 0, NULL);
	printf("probe: pid=%d ppid=%d argc=%d\n", getpid(), getppid(), argc);
	for (int i = 0; i < argc; i++)
		printf("probe: argv[%d]=<%s>\n", i, argv[i]);
	for (char **e = environ; *e; e++)
		printf("probe: env <%s>\n", *e);
	show_status();
	fflush(stdout);

	int i = 1;
	if (i < argc && !strcmp(argv[i], "--"))
		i++;
	if (i >= argc)
		return 0;
	if (!strcmp(argv[i], "exit") && i + 1 < argc)
		return atoi(argv[i + 1]);
	if (!strcmp(argv[i], "segv")) {
		volatile int *p = NULL;
		*p = 1;
	}
	if (!strcmp(argv[i], "abort"))
		abort();
	if (!strcmp(argv[i], "kill") && i + 1 < argc) {
		int r = kill(getpid(), atoi(argv[i + 1]));
		printf("probe: kill(self, %s) = %d, still alive\n", argv[i + 1], r);
		fflush(stdout);
		return 42;
	}
	if (!strcmp(argv[i], "run") && i + 1 < argc) {
		pid_t pid = fork();
		if (pid == 0) {
			execv(argv[i + 1], argv + i + 1);
			perror("probe: execv");
			_exit(127);
		}
		int st;
		while (waitpid(pid, &st, 0) < 0)
			;
		printf("probe: child status %d\n", st);
		fflush(stdout);
		return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	}
	printf("probe: unknown action %s\n", argv[i]);
	return 99;
}
