/* runstat: runs a command and reports what it cost, for `make bench`.
 *
 *   runstat REPORT CMD [ARG]...
 *
 * Runs CMD (standard input, output and error inherited), waits for it and
 * writes one line to the file REPORT:
 *
 *   wall_s cpu_s maxrss_kb rchar status
 *
 * wall time, user + system CPU time and peak resident set of CMD (from
 * wait4, as /usr/bin/time -v reports them), rchar from /proc/PID/io read
 * while CMD is a zombie (the bytes it read with read/pread; -1 when unknown),
 * and its exit status (128 + N after signal N).  Exits with that status.
 *
 * Why a separate process: a child's peak RSS starts from the RSS of the
 * process it was forked from (Linux keeps the high-water mark across
 * exec), so a driver that has grown (python with a few tables in memory)
 * would add its own size to every measurement.  This program is small. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: runstat REPORT CMD [ARG]...\n");
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("runstat: fork");
        return 125;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        fprintf(stderr, "runstat: %s: cannot run\n", argv[2]);
        _exit(127);
    }
    siginfo_t si;
    long long rchar = -1;
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) == 0) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%d/io", (int)pid);
        FILE *f = fopen(path, "r");
        while (f && fgets(line, sizeof line, f))
            if (strncmp(line, "rchar:", 6) == 0) rchar = atoll(line + 6);
        if (f) fclose(f);
    }
    int st;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) < 0) {
        perror("runstat: wait4");
        return 125;
    }
    if (rchar < 0) clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    double cpu = (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
                 1e-6 * (double)ru.ru_stime.tv_usec;
    int status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    FILE *out = fopen(argv[1], "w");
    if (!out) {
        perror("runstat: report");
        return 125;
    }
    fprintf(out, "%.6f %.6f %ld %lld %d\n", wall, cpu, ru.ru_maxrss, rchar, status);
    if (fclose(out) != 0) return 125;
    return status;
}
