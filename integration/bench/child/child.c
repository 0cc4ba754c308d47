/*
 * child: the main process that integration/bench runs under each init.
 * Built static by run.sh (gcc -static -O2). It is C, not Go, so that what is
 * timed is the init and not the child: the orphan storm needs fork() without
 * exec (2000 Go processes would take seconds and gigabytes to make), and a Go
 * child would add two or three thread wake-ups of its own to every signal.
 *
 * Modes (the first argument); every mode writes "ready\n" to stdout once set
 * up, and every result goes to stdout, the one fd that all inits pass on:
 *   ack       block SIGUSR1; for each SIGUSR1 received write one byte "a".
 *   wait      pause() with default dispositions: SIGTERM kills it.
 *   orphans N make N zombies whose parent then exits, so that the init (PID 1)
 *             inherits N zombies at once; print "orphans N NS" where NS is the
 *             time until /proc shows no process but PID 1 and this one.
 *
 * Two more modes serve as the services of the supervisors table, where
 * nothing is timed in the child but the child itself must cost little:
 *   exec PATH [ARG...]  execv(PATH, [PATH, ARG...]): one static exec before
 *             the program proper (what runit's and s6's ./run files do here).
 *   stamp FILE append "START END\n" to FILE and exit 0: CLOCK_REALTIME ns at
 *             the top of main and just before the write, so that successive
 *             lines give a supervisor's exit-to-restart latency.
 * Invoked as `run` (a runit or s6 service's ./run, which gets no arguments),
 * it takes its arguments from the file run.args in the current directory
 * (the service directory), one a line.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
	fprintf(stderr, "bench child: %s: %s\n", what, strerror(errno));
	_exit(111);
}

static void say(const char *s) {
	size_t n = strlen(s);
	while (n > 0) {
		ssize_t w = write(1, s, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			die("write");
		}
		s += w;
		n -= (size_t)w;
	}
}

static long long now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static _Noreturn void ack(void) {
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		die("sigprocmask");
	say("ready\n");
	for (;;) {
		if (sigwaitinfo(&set, NULL) < 0) {
			if (errno == EINTR)
				continue;
			die("sigwaitinfo");
		}
		say("a");
	}
}

static _Noreturn void wait_for_term(void) {
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGTERM, SIG_DFL);
	say("ready\n");
	for (;;)
		pause();
}

/* others counts the processes in /proc other than PID 1 and this one. */
static int others(pid_t self) {
	DIR *d = opendir("/proc");
	if (d == NULL)
		die("opendir /proc");
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		long pid = strtol(e->d_name, NULL, 10);
		if (pid != 1 && pid != self)
			n++;
	}
	closedir(d);
	return n;
}

static int orphans(int n) {
	int ready[2], release[2];
	if (pipe(ready) < 0 || pipe(release) < 0)
		die("pipe");
	pid_t self = getpid();
	if (others(self) != 0) {
		fprintf(stderr, "bench child: /proc is not a fresh PID namespace\n");
		return 112;
	}
	pid_t mid = fork();
	if (mid < 0)
		die("fork");
	if (mid == 0) {
		/* The parent-to-be of the orphans: make n zombies, then wait. */
		close(ready[0]);
		close(release[1]);
		pid_t *kids = calloc((size_t)n, sizeof *kids);
		if (kids == NULL)
			die("calloc");
		for (int i = 0; i < n; i++) {
			kids[i] = vfork(); /* no page tables to copy: 4-7x faster here */
			if (kids[i] < 0)
				die("fork orphan");
			if (kids[i] == 0)
				_exit(0);
		}
		for (int i = 0; i < n; i++) {
			/* Without reaping: returns once the kid is a zombie. */
			siginfo_t si;
			while (waitid(P_PID, (id_t)kids[i], &si, WEXITED | WNOWAIT) < 0) {
				if (errno != EINTR)
					die("waitid");
			}
		}
		if (write(ready[1], "r", 1) != 1)
			die("write ready");
		char c;
		while (read(release[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0); /* the n zombies go to PID 1 */
	}
	close(ready[1]);
	close(release[0]);
	char c;
	ssize_t r;
	while ((r = read(ready[0], &c, 1)) < 0 && errno == EINTR)
		;
	if (r != 1) {
		fprintf(stderr, "bench child: the zombie maker failed\n");
		return 113;
	}
	say("ready\n");
	long long t0 = now_ns();
	close(release[1]);
	int st;
	while (waitpid(mid, &st, 0) < 0) {
		if (errno != EINTR)
			die("waitpid");
	}
	struct timespec nap = {0, 50000}; /* 50 us between looks at /proc */
	while (others(self) > 0)
		nanosleep(&nap, NULL);
	long long t1 = now_ns();
	char out[64];
	snprintf(out, sizeof out, "orphans %d %lld\n", n, t1 - t0);
	say(out);
	return 0;
}

static long long real_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int stamp(const char *file, long long start) {
	int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		die(file);
	char out[64];
	int n = snprintf(out, sizeof out, "%lld %lld\n", start, real_ns());
	if (write(fd, out, (size_t)n) != n)
		die("write stamp");
	return 0;
}

/* run_args reads ./run.args into argv (argv[0] "run"), one argument a line. */
static char **run_args(int *argc) {
	static char buf[4096];
	static char *args[64];
	int fd = open("run.args", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die("open run.args");
	ssize_t n = read(fd, buf, sizeof buf - 1);
	if (n < 0)
		die("read run.args");
	close(fd);
	buf[n] = 0;
	int k = 0;
	args[k++] = "run";
	for (char *p = buf; *p != 0 && k < 63;) {
		char *nl = strchr(p, '\n');
		if (nl != NULL)
			*nl = 0;
		args[k++] = p;
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	args[k] = NULL;
	*argc = k;
	return args;
}

int main(int argc, char **argv) {
	long long start = real_ns();
	const char *base = strrchr(argv[0], '/');
	base = base != NULL ? base + 1 : argv[0];
	if (strcmp(base, "run") == 0)
		argv = run_args(&argc);
	if (argc >= 3 && strcmp(argv[1], "exec") == 0) {
		execv(argv[2], argv + 2);
		die(argv[2]);
	}
	if (argc >= 3 && strcmp(argv[1], "stamp") == 0)
		return stamp(argv[2], start);
	if (argc >= 2 && strcmp(argv[1], "ack") == 0)
		ack();
	if (argc >= 2 && strcmp(argv[1], "wait") == 0)
		wait_for_term();
	if (argc >= 3 && strcmp(argv[1], "orphans") == 0)
		return orphans(atoi(argv[2]));
	fprintf(stderr, "usage: child ack | wait | orphans N | exec PATH [ARG...] | stamp FILE\n");
	return 2;
}
