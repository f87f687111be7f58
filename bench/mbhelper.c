/*
 * mbhelper: measurement helpers for bench/run (minit benchmark).
 *
 * Compiled by bench/run at bench time:  gcc -O2 -o mbhelper mbhelper.c
 * All times are CLOCK_MONOTONIC nanoseconds.
 *
 * Drivers (run by bench/run):
 *   time ITER CMD... [:: CMD...]...
 *        run the commands ITER times each, interleaved (rotating order each
 *        iteration), fork/execv/waitpid, stdio on /dev/null.
 *        prints "T <iter> <cmd-index> <ns>" per run, "FAIL <cmd-index> <status>".
 *   siglat N GAP_US SHM -- CMD...
 *        start CMD (an init running "mbhelper sigapp SHM"), then N times:
 *        kill(init, SIGUSR1) and read the app handler's timestamp from SHM.
 *        prints "L <ns>" per sample, "LOST <n>", "EXIT <status>".
 *   shutdown [--ns] SHM -- CMD...
 *        start CMD (an init running "mbhelper termapp SHM [leftover]"), wait
 *        until ready, kill(init, SIGTERM), time until the init exits.  With
 *        --ns CMD is "unshare -fp ... INIT ..." and the signal goes to
 *        unshare's child (the namespace's PID 1).  The driver is a child
 *        subreaper, so a leftover that survives the init is re-parented to it.
 *        prints "SHUT ns=.. status=.. leftover_alive=0|1|-1 timeout=0|1".
 *   cglaunch MEM_BYTES PIDS_MAX CMD...
 *        hand-rolled cgroup limits (v2, else v1 memory+pids): mkdir a cgroup,
 *        write the limits, run CMD in it, wait, rmdir.  Exit status of CMD.
 *
 * Apps (run under the init being measured):
 *   storm N TIMEOUT_S SAMPLE_US [BATCH]
 *        as the app under PID 1 of a fresh PID namespace, create N
 *        double-forked orphans that exit at once (an intermediate child forks
 *        BATCH of them, then exits so they are re-parented to PID 1); wait until every one of them
 *        is gone from /proc (reaped by PID 1) or TIMEOUT_S passes.  A sampler
 *        child scans /proc every SAMPLE_US for zombies whose parent is PID 1.
 *        prints "STORM n=.. total_ns=.. create_ns=.. peak_zombies=..
 *        left=.. left_procs=.. eagain=.. samples=.. aborted=0|1 others=..
 *        init_cpu_ns=.." (CPU time PID 1 used during the storm).
 *   sigapp SHM      SIGUSR1 handler stores CLOCK_MONOTONIC into SHM.
 *   termapp SHM [leftover]
 *        exits on SIGTERM (default action); with "leftover" first forks a
 *        background child that ignores SIGTERM.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mbhelper: ");
    vfprintf(stderr, fmt, ap);
    if (errno)
        fprintf(stderr, ": %s", strerror(errno));
    fprintf(stderr, "\n");
    va_end(ap);
    exit(99);
}

/* Shared page between a driver and an app (file in /dev/shm). */
struct shm {
    volatile uint64_t seq;      /* bumped by the SIGUSR1 handler */
    volatile uint64_t ts;       /* handler timestamp */
    volatile int ready;         /* app is set up */
    volatile int leftover;      /* pid of the leftover (termapp) */
};

static struct shm *map_shm(const char *path, int create)
{
    int fd = open(path, O_RDWR | (create ? O_CREAT | O_TRUNC : 0), 0600);
    if (fd < 0)
        die("open %s", path);
    if (create && ftruncate(fd, 4096) < 0)
        die("ftruncate %s", path);
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        die("mmap %s", path);
    close(fd);
    return p;
}

static pid_t spawn(char **argv, int quiet)
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        if (quiet) {
            int fd = open("/dev/null", O_RDWR);
            dup2(fd, 0);
            dup2(fd, 1);
            if (quiet > 1)
                dup2(fd, 2);
            if (fd > 2)
                close(fd);
        }
        execv(argv[0], argv);
        fprintf(stderr, "mbhelper: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* waitpid with a timeout; returns 1 and fills *st if it exited.  Blocks in
   poll() on a pidfd, so it wakes up as soon as the child exits (a sleep/poll
   loop would quantize shutdown times); falls back to polling without pidfd. */
static int wait_timeout(pid_t pid, int *st, uint64_t timeout_ns)
{
    uint64_t end = now_ns() + timeout_ns;
#ifdef SYS_pidfd_open
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pfd >= 0) {
        struct pollfd pf = {.fd = pfd, .events = POLLIN};
        for (;;) {
            uint64_t now = now_ns();
            int ms = now >= end ? 0 : (int)((end - now) / 1000000) + 1;
            int r = poll(&pf, 1, ms);
            if (r > 0)
                break;
            if (r == 0) {
                close(pfd);
                return 0;
            }
            if (errno != EINTR)
                break;
        }
        close(pfd);
        if (waitpid(pid, st, 0) == pid)
            return 1;
        return -1;
    }
#endif
    for (;;) {
        pid_t r = waitpid(pid, st, WNOHANG);
        if (r == pid)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
        if (now_ns() > end)
            return 0;
        sleep_us(200);
    }
}

static int exit_code(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return 255;
}

static int read_stat(pid_t pid, char *comm, size_t commlen, char *state, pid_t *ppid);

/* We are a child subreaper: kill whatever is left below us (descendants of
   a finished command are re-parented to us) and reap it.  Returns how many
   processes were still alive 200 ms later and had to be killed. */
static int kill_descendants(void)
{
    int killed = 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/children", (int)getpid());
    /* first give exiting processes up to 200 ms to finish on their own
       (e.g. a namespace's PID 1 that is still tearing down) */
    uint64_t end = now_ns() + 200000000ull;
    for (;;) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        char c;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return 0;
        ssize_t n = read(fd, &c, 1);
        close(fd);
        if (n <= 0)
            return 0; /* no children left */
        if (now_ns() > end)
            break;
        sleep_us(500);
    }
    for (int round = 0; round < 1000; round++) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        char buf[8192];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return killed;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            return killed;
        buf[n] = 0;
        int any = 0;
        for (char *t = strtok(buf, " \n"); t; t = strtok(NULL, " \n")) {
            pid_t c = (pid_t)atoi(t);
            char st, comm[32];
            pid_t pp;
            if (c <= 0)
                continue;
            any = 1;
            if (read_stat(c, comm, sizeof comm, &st, &pp) == 0 && st != 'Z' && st != 'X')
                killed++;
            kill(c, SIGKILL);
            waitpid(c, NULL, 0);
        }
        if (!any)
            sleep_us(1000);
    }
    return killed;
}

/* Read "/proc/PID/stat": comm, state, ppid.  Returns 0 on success. */
static int read_stat(pid_t pid, char *comm, size_t commlen, char *state, pid_t *ppid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *l = strchr(buf, '('), *r = strrchr(buf, ')');
    if (!l || !r || r[1] == 0 || r[2] == 0)
        return -1;
    if (comm) {
        size_t len = (size_t)(r - l - 1);
        if (len >= commlen)
            len = commlen - 1;
        memcpy(comm, l + 1, len);
        comm[len] = 0;
    }
    *state = r[2];
    *ppid = (pid_t)atoi(r + 4);
    return 0;
}

/* ------------------------------------------------------------------ time */

static int cmd_time(int argc, char **argv)
{
    if (argc < 2)
        die("usage: time ITER CMD... [:: CMD...]");
    int iters = atoi(argv[0]);
    char **cmds[64];
    int ncmd = 0;
    cmds[ncmd++] = &argv[1];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "::") == 0) {
            argv[i] = NULL;
            if (ncmd == 64)
                die("too many commands");
            cmds[ncmd++] = &argv[i + 1];
        }
    }
    int fail = 0;
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        die("PR_SET_CHILD_SUBREAPER");
    for (int it = 0; it < iters; it++) {
        for (int k = 0; k < ncmd; k++) {
            int c = (it + k) % ncmd;
            int st;
            uint64_t t0 = now_ns();
            pid_t pid = spawn(cmds[c], 2);
            if (waitpid(pid, &st, 0) != pid)
                die("waitpid");
            uint64_t t1 = now_ns();
            if (st != 0) {
                printf("FAIL %d %d\n", c, exit_code(st));
                fail = 1;
            } else {
                printf("T %d %d %llu\n", it, c, (unsigned long long)(t1 - t0));
            }
            int leaked = kill_descendants();
            if (leaked) {
                printf("LEAK %d %d\n", c, leaked);
                fail = 1;
            }
        }
    }
    fflush(stdout);
    return fail;
}

/* ----------------------------------------------------------------- storm */

struct storm_shared {
    volatile int stop;       /* app -> sampler */
    volatile int abort;      /* sampler -> app: zombie pile-up, stop forking */
    volatile int peak;       /* sampler: max zombies seen */
    volatile int samples;
};

struct scan {
    int orphans;  /* our orphans still present (running or zombie) */
    int zombies;  /* of which zombies waiting for PID 1 */
    int others;   /* any other process except PID 1 and the excluded */
};

static char app_comm[32];

static void scan_proc(pid_t ex1, pid_t ex2, struct scan *s)
{
    memset(s, 0, sizeof *s);
    DIR *d = opendir("/proc");
    if (!d)
        die("opendir /proc");
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid == 1 || pid == ex1 || pid == ex2)
            continue;
        char comm[32], state;
        pid_t ppid;
        if (read_stat(pid, comm, sizeof comm, &state, &ppid) < 0)
            continue; /* vanished: reaped meanwhile */
        if (strcmp(comm, app_comm) == 0) {
            s->orphans++;
            if (state == 'Z' && ppid == 1)
                s->zombies++;
        } else {
            s->others++;
        }
    }
    closedir(d);
}

/* CPU time of a process in ns (first field of /proc/PID/schedstat), or -1 */
static long long cpu_ns(pid_t pid)
{
    char path[64], buf[128];
    snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    return atoll(buf);
}

static int cmd_storm(int argc, char **argv)
{
    if (argc < 3)
        die("usage: storm N TIMEOUT_S SAMPLE_US [BATCH]");
    int n = atoi(argv[0]);
    int batch = argc > 3 ? atoi(argv[3]) : 1;
    if (batch < 1)
        batch = 1;
    double timeout_s = atof(argv[1]);
    long sample_us = atol(argv[2]);
    pid_t self = getpid();
    char st;
    pid_t pp;
    if (self != 2 && getppid() != 1)
        fprintf(stderr, "mbhelper storm: warning: not the child of PID 1 of a new PID namespace\n");
    if (read_stat(self, app_comm, sizeof app_comm, &st, &pp) < 0)
        die("read own stat");

    struct storm_shared *sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        die("mmap");
    /* Sampler: a separate process so it keeps sampling while we fork. */
    pid_t sampler = fork();
    if (sampler < 0)
        die("fork sampler");
    if (sampler == 0) {
        /* distinct comm so it is not counted as an orphan */
        prctl(PR_SET_NAME, "mb-sampler", 0, 0, 0);
        pid_t me = getpid();
        while (!sh->stop) {
            struct scan s;
            scan_proc(self, me, &s);
            if (s.zombies > sh->peak)
                sh->peak = s.zombies;
            if (s.zombies > 10000)
                sh->abort = 1; /* safety valve: PID 1 is not reaping */
            sh->samples++;
            sleep_us(sample_us);
        }
        _exit(0);
    }
    /* sampler renamed itself; wait so it is not counted as an orphan */
    for (int i = 0; i < 1000; i++) {
        char comm[32];
        if (read_stat(sampler, comm, sizeof comm, &st, &pp) == 0 && strcmp(comm, app_comm) != 0)
            break;
        sleep_us(1000);
    }

    int eagain = 0, created = 0, aborted = 0;
    long long cpu0 = cpu_ns(1);
    uint64_t t0 = now_ns();
    while (created < n) {
        if (sh->abort) {
            aborted = 1;
            break;
        }
        pid_t c = fork();
        if (c < 0) {
            if (errno == EAGAIN) {
                eagain++;
                sleep_us(1000);
                continue;
            }
            die("fork");
        }
        int want = n - created < batch ? n - created : batch;
        if (c == 0) {
            /* fork WANT orphans that exit at once, then exit to orphan them;
               the exit code is the number actually forked */
            int k = 0;
            for (; k < want; k++) {
                pid_t g = fork();
                if (g == 0)
                    _exit(0);
                if (g < 0)
                    break;
            }
            _exit(k);
        }
        int wst;
        while (waitpid(c, &wst, 0) < 0) {
            if (errno != EINTR)
                die("waitpid");
        }
        int got = WIFEXITED(wst) ? WEXITSTATUS(wst) : 0;
        created += got;
        if (got < want) {
            eagain++;
            sleep_us(1000);
        }
    }
    uint64_t t_created = now_ns();
    /* Every orphan has been forked (its parent returned from fork() before
       we reaped that parent).  Wait until none is left in /proc. */
    uint64_t deadline = t_created + (uint64_t)(timeout_s * 1e9);
    struct scan s;
    uint64_t t_done = 0;
    int peak = 0;
    for (;;) {
        scan_proc(self, sampler, &s);
        if (s.zombies > peak)
            peak = s.zombies;
        if (s.orphans == 0) {
            t_done = now_ns();
            break;
        }
        if (now_ns() > deadline)
            break;
        sleep_us(100);
    }
    long long cpu1 = cpu_ns(1);
    sh->stop = 1;
    int wst;
    waitpid(sampler, &wst, 0);
    if (sh->peak > peak)
        peak = sh->peak;
    printf("STORM n=%d total_ns=%llu create_ns=%llu peak_zombies=%d left=%d "
           "left_procs=%d eagain=%d samples=%d aborted=%d others=%d init_cpu_ns=%lld\n",
           created, (unsigned long long)(t_done ? t_done - t0 : 0),
           (unsigned long long)(t_created - t0), peak, s.zombies, s.orphans,
           eagain, sh->samples, aborted, s.others,
           (cpu0 >= 0 && cpu1 >= 0) ? cpu1 - cpu0 : -1LL);
    fflush(stdout);
    return (t_done && !aborted) ? 0 : 3;
}

/* ----------------------------------------------------------- signal path */

static struct shm *g_shm;

static void on_usr1(int sig)
{
    (void)sig;
    g_shm->ts = now_ns();
    __atomic_add_fetch(&g_shm->seq, 1, __ATOMIC_RELEASE);
}

static int cmd_sigapp(int argc, char **argv)
{
    if (argc < 1)
        die("usage: sigapp SHM");
    g_shm = map_shm(argv[0], 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    g_shm->ready = 1;
    for (;;)
        pause();
    return 0;
}

static int split_dashdash(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--") == 0)
            return i;
    die("missing -- CMD");
    return -1;
}

static int wait_ready(struct shm *s, pid_t pid, uint64_t timeout_ns)
{
    uint64_t end = now_ns() + timeout_ns;
    while (!s->ready) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            printf("EXIT %d\n", exit_code(st));
            return -1;
        }
        if (now_ns() > end)
            return 0;
        sleep_us(500);
    }
    return 1;
}

static void stop_child(pid_t pid, int sig, int *st)
{
    kill(pid, sig);
    if (wait_timeout(pid, st, 5000000000ull) != 1) {
        kill(pid, SIGKILL);
        waitpid(pid, st, 0);
    }
}

static int cmd_siglat(int argc, char **argv)
{
    if (argc < 5)
        die("usage: siglat N GAP_US SHM -- CMD...");
    int n = atoi(argv[0]);
    long gap = atol(argv[1]);
    const char *path = argv[2];
    int dd = split_dashdash(argc, argv);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        die("PR_SET_CHILD_SUBREAPER");
    struct shm *s = map_shm(path, 1);
    pid_t pid = spawn(&argv[dd + 1], 1);
    int r = wait_ready(s, pid, 5000000000ull);
    if (r <= 0) {
        if (r == 0) {
            int st;
            stop_child(pid, SIGKILL, &st);
            printf("NOTREADY\n");
        }
        kill_descendants();
        unlink(path);
        return 4;
    }
    sleep_us(20000);
    int lost = 0, lost_in_row = 0;
    for (int i = 0; i < n; i++) {
        sleep_us(gap);
        uint64_t seq0 = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
        uint64_t t0 = now_ns();
        if (kill(pid, SIGUSR1) < 0)
            die("kill");
        uint64_t end = t0 + 1000000000ull;
        int spins = 0;
        while (__atomic_load_n(&s->seq, __ATOMIC_ACQUIRE) == seq0) {
            if (now_ns() > end)
                break;
            if (++spins > 50)
                sleep_us(20);
        }
        if (__atomic_load_n(&s->seq, __ATOMIC_ACQUIRE) == seq0) {
            lost++;
            if (waitpid(pid, NULL, WNOHANG) == pid)
                pid = -1; /* the init died */
            if (pid < 0 || ++lost_in_row >= 3) {
                lost += n - i - 1; /* give up */
                break;
            }
            continue;
        }
        lost_in_row = 0;
        printf("L %llu\n", (unsigned long long)(s->ts - t0));
    }
    int st = 0;
    if (pid > 0)
        stop_child(pid, SIGTERM, &st);
    int stray = kill_descendants();
    printf("LOST %d\nSTRAY %d\nEXIT %d\n", lost, stray, pid > 0 ? exit_code(st) : -1);
    fflush(stdout);
    unlink(path);
    return lost ? 5 : 0;
}

/* -------------------------------------------------------------- shutdown */

static int cmd_termapp(int argc, char **argv)
{
    if (argc < 1)
        die("usage: termapp SHM [leftover]");
    struct shm *s = map_shm(argv[0], 0);
    signal(SIGTERM, SIG_DFL);
    if (argc > 1 && strcmp(argv[1], "leftover") == 0) {
        pid_t c = fork();
        if (c < 0)
            die("fork");
        if (c == 0) {
            signal(SIGTERM, SIG_IGN);
            s->leftover = getpid();
            for (;;)
                pause();
        }
        while (!s->leftover)
            sleep_us(200);
    }
    s->ready = 1;
    for (;;)
        pause();
    return 0;
}

static pid_t first_child(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    return (pid_t)atoi(buf);
}

static int cmd_shutdown(int argc, char **argv)
{
    int ns = 0;
    if (argc > 0 && strcmp(argv[0], "--ns") == 0) {
        ns = 1;
        argc--;
        argv++;
    }
    if (argc < 3)
        die("usage: shutdown [--ns] SHM -- CMD...");
    const char *path = argv[0];
    int dd = split_dashdash(argc, argv);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        die("PR_SET_CHILD_SUBREAPER");
    struct shm *s = map_shm(path, 1);
    pid_t pid = spawn(&argv[dd + 1], 1);
    int r = wait_ready(s, pid, 5000000000ull);
    if (r <= 0) {
        if (r == 0) {
            int st;
            stop_child(pid, SIGKILL, &st);
            printf("NOTREADY\n");
        }
        kill_descendants();
        unlink(path);
        return 4;
    }
    pid_t target = pid;
    if (ns) {
        target = first_child(pid);
        if (target <= 0)
            die("cannot find the namespace's PID 1 under %d", (int)pid);
    }
    sleep_us(20000);
    int st = 0, timeout = 0;
    uint64_t t0 = now_ns();
    kill(target, SIGTERM);
    int w = wait_timeout(pid, &st, 10000000000ull);
    uint64_t t1 = now_ns();
    if (w != 1) {
        timeout = 1;
        kill(target, SIGKILL);
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    /* Leftover: alive if it still runs and was re-parented to us. */
    int alive = -1;
    if (!ns && s->leftover > 0) {
        char comm[32], state;
        pid_t ppid;
        alive = 0;
        if (read_stat(s->leftover, comm, sizeof comm, &state, &ppid) == 0 &&
            state != 'Z' && ppid == getpid()) {
            alive = 1;
            kill(s->leftover, SIGKILL);
            waitpid(s->leftover, NULL, 0);
        }
    }
    /* kill and reap whatever else survived the init (e.g. the app itself) */
    int stray = kill_descendants();
    printf("SHUT ns=%llu status=%d leftover_alive=%d timeout=%d stray=%d\n",
           (unsigned long long)(t1 - t0), exit_code(st), alive, timeout, stray);
    fflush(stdout);
    unlink(path);
    return timeout ? 6 : 0;
}

/* -------------------------------------------------------------- cglaunch */

static int write_file(const char *path, const char *val)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, val, strlen(val));
    int e = errno;
    close(fd);
    errno = e;
    return n == (ssize_t)strlen(val) ? 0 : -1;
}

static int own_cgroup_v1(const char *ctrl, char *out, size_t len)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f)
        return -1;
    char line[1024];
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        char *a = strchr(line, ':');
        if (!a)
            continue;
        char *b = strchr(a + 1, ':');
        if (!b)
            continue;
        *b = 0;
        char *ctrls = a + 1, *tok, *save;
        for (tok = strtok_r(ctrls, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (strcmp(tok, ctrl) == 0) {
                char *p = b + 1;
                p[strcspn(p, "\n")] = 0;
                snprintf(out, len, "%s", p);
                found = 0;
            }
        }
    }
    fclose(f);
    return found;
}

static void rmdir_retry(const char *dir)
{
    for (int i = 0; i < 200; i++) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return;
        sleep_us(500);
    }
    fprintf(stderr, "mbhelper: rmdir %s: %s\n", dir, strerror(errno));
}

static int cmd_cglaunch(int argc, char **argv)
{
    if (argc < 3)
        die("usage: cglaunch MEM_BYTES PIDS_MAX CMD...");
    const char *mem = argv[0], *pids = argv[1];
    char dirs[2][1024];
    int ndirs = 0;
    char p[2200];
    if (access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0) {
        /* cgroup v2: a child of the root cgroup (exempt from the
           no-internal-process rule) with memory and pids enabled. */
        write_file("/sys/fs/cgroup/cgroup.subtree_control", "+memory +pids");
        snprintf(dirs[0], sizeof dirs[0], "/sys/fs/cgroup/mbench-%d", (int)getpid());
        if (mkdir(dirs[0], 0755) < 0)
            die("mkdir %s", dirs[0]);
        ndirs = 1;
        snprintf(p, sizeof p, "%s/memory.max", dirs[0]);
        if (write_file(p, mem) < 0)
            die("write %s", p);
        snprintf(p, sizeof p, "%s/pids.max", dirs[0]);
        if (write_file(p, pids) < 0)
            die("write %s", p);
    } else {
        /* cgroup v1: memory and pids hierarchies, below our own cgroups */
        const char *ctrl[2] = {"memory", "pids"};
        const char *file[2] = {"memory.limit_in_bytes", "pids.max"};
        const char *val[2] = {mem, pids};
        for (int i = 0; i < 2; i++) {
            char own[512];
            if (own_cgroup_v1(ctrl[i], own, sizeof own) < 0)
                die("no %s cgroup (v1) in /proc/self/cgroup", ctrl[i]);
            snprintf(dirs[i], sizeof dirs[i], "/sys/fs/cgroup/%s%s%smbench-%d", ctrl[i],
                     own, own[strlen(own) - 1] == '/' ? "" : "/", (int)getpid());
            if (mkdir(dirs[i], 0755) < 0)
                die("mkdir %s", dirs[i]);
            ndirs = i + 1;
            snprintf(p, sizeof p, "%s/%s", dirs[i], file[i]);
            if (write_file(p, val[i]) < 0)
                die("write %s", p);
        }
    }
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        for (int i = 0; i < ndirs; i++) {
            snprintf(p, sizeof p, "%s/cgroup.procs", dirs[i]);
            if (write_file(p, "0") < 0) {
                fprintf(stderr, "mbhelper: join %s: %s\n", p, strerror(errno));
                _exit(126);
            }
        }
        execv(argv[2], &argv[2]);
        fprintf(stderr, "mbhelper: exec %s: %s\n", argv[2], strerror(errno));
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    for (int i = 0; i < ndirs; i++)
        rmdir_retry(dirs[i]);
    return exit_code(st);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: mbhelper time|siglat|shutdown|cglaunch|storm|sigapp|termapp ...\n");
        return 2;
    }
    const char *c = argv[1];
    argc -= 2;
    argv += 2;
    if (!strcmp(c, "time"))
        return cmd_time(argc, argv);
    if (!strcmp(c, "siglat"))
        return cmd_siglat(argc, argv);
    if (!strcmp(c, "shutdown"))
        return cmd_shutdown(argc, argv);
    if (!strcmp(c, "cglaunch"))
        return cmd_cglaunch(argc, argv);
    if (!strcmp(c, "storm"))
        return cmd_storm(argc, argv);
    if (!strcmp(c, "sigapp"))
        return cmd_sigapp(argc, argv);
    if (!strcmp(c, "termapp"))
        return cmd_termapp(argc, argv);
    fprintf(stderr, "mbhelper: unknown command %s\n", c);
    return 2;
}
