/* Stress helper for tests/stress.rs, compiled at test time. Modes:
 *
 *   orphans N        create N orphans that exit at once (intermediates fork up to 200 each
 *                    and exit, so the grandchildren are re-parented to minit), retrying when
 *                    fork fails with EAGAIN; then poll /proc until no zombie child of our
 *                    parent (minit) is left, against a 120 s deadline. Prints
 *                    "orphans N zombies Z ms T eagain E"; exits 0 when Z is 0, else 1.
 *   receive N        block every signal, print "ready", then sigwaitinfo: count standard
 *                    signals, check that SIGRTMIN+1 values arrive as 1..N in order; ends on
 *                    SIGRTMAX (sent after the flood; a higher RT signal is dequeued after
 *                    all lower ones). Prints "rt R inorder O std S" and exits 42.
 *   flood PID N      send N sigqueue(SIGRTMIN+1, 1..N) to PID, each followed by a kill of a
 *                    standard signal (USR1, USR2, HUP, WINCH in turn), then SIGRTMAX;
 *                    retries on EAGAIN (RLIMIT_SIGPENDING). Prints "sent N+N".
 *   forkbomb N       fork children that pause(), as fast as possible, for N fork attempts
 *                    after the first failure; reports the first EAGAIN once:
 *                    "fork failed: EAGAIN after K children", then "attempts A failed F";
 *                    exits 7.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int zombie_children_of(pid_t parent) {
	DIR *d = opendir("/proc");
	struct dirent *e;
	int count = 0;
	char path[300], buf[512];
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = 0;
		char *p = strrchr(buf, ')');
		char st;
		int ppid;
		if (p && sscanf(p + 2, "%c %d", &st, &ppid) == 2 && st == 'Z' && ppid == parent)
			count++;
	}
	closedir(d);
	return count;
}

static pid_t fork_retry(long *eagain) {
	for (;;) {
		pid_t pid = fork();
		if (pid >= 0 || errno != EAGAIN)
			return pid;
		(*eagain)++;
		sched_yield();
	}
}

static int orphans(long n) {
	long start = now_ms(), eagain = 0, made = 0;
	pid_t reaper = getppid();
	while (made < n) {
		/* An intermediate forks up to 200 children that exit at once, then exits itself
		 * with the number made: its zombies are re-parented to minit only then. It stops
		 * early when fork fails with EAGAIN (a pids limit full of zombies not yet reaped),
		 * so it never waits on its own unreaped children. */
		long batch = n - made < 200 ? n - made : 200;
		pid_t mid = fork_retry(&eagain);
		if (mid < 0) {
			perror("fork");
			return 2;
		}
		if (mid == 0) {
			long i;
			for (i = 0; i < batch; i++) {
				pid_t g = fork();
				if (g == 0)
					_exit(0);
				if (g < 0)
					break;
			}
			_exit((int)i);
		}
		int status;
		waitpid(mid, &status, 0);
		if (!WIFEXITED(status)) {
			fprintf(stderr, "intermediate failed\n");
			return 2;
		}
		if (WEXITSTATUS(status) == 0) {
			eagain++;
			sched_yield();
		}
		made += WEXITSTATUS(status);
	}
	long deadline = now_ms() + 120000;
	int z;
	while ((z = zombie_children_of(reaper)) != 0 && now_ms() < deadline) {
		struct timespec ts = {0, 10 * 1000000};
		nanosleep(&ts, NULL);
	}
	printf("orphans %ld zombies %d ms %ld eagain %ld\n", n, z, now_ms() - start, eagain);
	return z == 0 ? 0 : 1;
}

static int receive(long n) {
	sigset_t all;
	siginfo_t info;
	long rt = 0, inorder = 1, std_count = 0;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int sig = sigwaitinfo(&all, &info);
		if (sig < 0)
			continue;
		if (sig == SIGRTMIN + 1) {
			rt++;
			if (info.si_value.sival_int != rt)
				inorder = 0;
		} else if (sig == SIGRTMAX) {
			break;
		} else if (sig != SIGCHLD) {
			std_count++;
		}
	}
	printf("rt %ld inorder %d std %ld\n", rt, inorder && rt == n, std_count);
	return 42;
}

static int flood(pid_t pid, long n) {
	static const int standard[] = {SIGUSR1, SIGUSR2, SIGHUP, SIGWINCH};
	long retries = 0;
	for (long i = 1; i <= n; i++) {
		union sigval v = {.sival_int = (int)i};
		while (sigqueue(pid, SIGRTMIN + 1, v) != 0) {
			if (errno != EAGAIN) {
				perror("sigqueue");
				return 1;
			}
			retries++;
			sched_yield();
		}
		if (kill(pid, standard[i % 4]) != 0) {
			perror("kill");
			return 1;
		}
	}
	union sigval end = {.sival_int = 0};
	while (sigqueue(pid, SIGRTMAX, end) != 0 && errno == EAGAIN)
		sched_yield();
	printf("sent %ld+%ld retries %ld\n", n, n, retries);
	return 0;
}

static int forkbomb(long after) {
	long children = 0, attempts = 0, failed = 0;
	int said = 0;
	for (;;) {
		pid_t pid = fork();
		if (pid == 0) {
			pause();
			_exit(0);
		}
		if (said)
			attempts++;
		if (pid > 0) {
			children++;
		} else if (errno == EAGAIN) {
			failed++;
			if (!said) {
				printf("fork failed: EAGAIN after %ld children\n", children);
				fflush(stdout);
				said = 1;
			}
		} else {
			perror("fork");
			return 1;
		}
		if (said && attempts >= after)
			break;
	}
	printf("attempts %ld failed %ld\n", attempts, failed);
	return 7;
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 3 && !strcmp(argv[1], "orphans"))
		return orphans(atol(argv[2]));
	if (argc == 3 && !strcmp(argv[1], "receive"))
		return receive(atol(argv[2]));
	if (argc == 4 && !strcmp(argv[1], "flood"))
		return flood(atoi(argv[2]), atol(argv[3]));
	if (argc == 3 && !strcmp(argv[1], "forkbomb"))
		return forkbomb(atol(argv[2]));
	fprintf(stderr, "usage: helper orphans N | receive N | flood PID N | forkbomb N\n");
	return 2;
}
