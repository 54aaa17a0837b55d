/* pe_guard.c: the crash guard around the HDF5 library (see pe_guard.h).
 *
 * Every HDF5 call runs under the HDF5 lock (pe_h5.c), one at a time, with
 * pe_guard_doing naming the file and object; a fatal signal inside it prints
 * one line naming them and ends the tool with status 1. */
#include "pe_guard.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pe_table.h"

static const char *pe_guard_prog;
static char pe_guard_doing[1200];
static volatile sig_atomic_t pe_in_hdf5;
static _Thread_local int pe_has_altstack;

static void put_err(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0) break;
        s += w;
        n -= (size_t)w;
    }
}

/* Reading a file's metadata takes milliseconds; a damaged file can send
 * HDF5 into an endless loop instead.  While pe_dump_open reads metadata, an
 * alarm ends the tool after this many seconds (PE_HDF5_TIMEOUT overrides). */
#define PE_METADATA_TIMEOUT 30
static volatile sig_atomic_t pe_in_metadata;

static void crash_handler(int sig)
{
    if (sig == SIGALRM && !pe_in_metadata) return; /* a late alarm: harmless */
    if (!pe_in_hdf5 && sig != SIGALRM) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    put_err(pe_guard_prog);
    put_err(": ");
    put_err(pe_guard_doing);
    put_err(sig == SIGALRM ? ": the HDF5 library did not finish reading the file's metadata in time "
                             "(the file is damaged, or set PE_HDF5_TIMEOUT)\n"
                           : ": the HDF5 library crashed reading this file (it is damaged, or beyond what "
                             "HDF5 can read)\n");
    pe_output_abandon_all(); /* no half-written -o file stays behind */
    _exit(1);
}

/* Seconds allowed for one file's metadata (0: no limit). */
static unsigned metadata_timeout(void)
{
    const char *v = getenv("PE_HDF5_TIMEOUT");
    char *end;
    if (!v || !*v) return PE_METADATA_TIMEOUT;
    unsigned long n = strtoul(v, &end, 10);
    return *end || n > 86400 ? PE_METADATA_TIMEOUT : (unsigned)n;
}

/* Each thread that calls HDF5 needs a signal stack of its own, once, unless
 * it has one already (sanitizers install theirs).  The main thread's is
 * static; a worker's is freed by a key destructor when the thread ends, after
 * the stack is switched off. */
static char pe_main_altstack[1 << 16];
static pthread_t pe_main_thread;
static pthread_key_t pe_altstack_key;
static pthread_once_t pe_altstack_once = PTHREAD_ONCE_INIT;

static void free_altstack(void *p)
{
    stack_t off;
    memset(&off, 0, sizeof off);
    off.ss_flags = SS_DISABLE;
    sigaltstack(&off, NULL);
    free(p);
}

static void make_altstack_key(void)
{
    pthread_key_create(&pe_altstack_key, free_altstack);
}

static void install_altstack(void)
{
    stack_t cur, ss;
    pe_has_altstack = 1; /* one try per thread, whatever happens */
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE)) return;
    memset(&ss, 0, sizeof ss);
    ss.ss_size = sizeof pe_main_altstack;
    if (pthread_equal(pthread_self(), pe_main_thread)) {
        ss.ss_sp = pe_main_altstack;
        sigaltstack(&ss, NULL);
        return;
    }
    pthread_once(&pe_altstack_once, make_altstack_key);
    if (!(ss.ss_sp = malloc(ss.ss_size))) return;
    if (sigaltstack(&ss, NULL) != 0 || pthread_setspecific(pe_altstack_key, ss.ss_sp) != 0) free_altstack(ss.ss_sp);
}

void pe_dump_guard(const char *prog)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGALRM};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = crash_handler;
    sa.sa_flags = SA_ONSTACK; /* a stack overflow needs another stack */
    sigemptyset(&sa.sa_mask);
    pe_guard_prog = prog;
    pe_main_thread = pthread_self();
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
}

void pe_guard_enter(const char *file, const char *what)
{
    if (pe_guard_prog && !pe_has_altstack) install_altstack();
    snprintf(pe_guard_doing, sizeof pe_guard_doing, "%s%s%s", file ? file : "HDF5", what ? ": " : "",
             what ? what : "");
    pe_in_hdf5 = 1;
}

void pe_guard_leave(void)
{
    pe_in_hdf5 = 0;
}

unsigned pe_guard_timer_start(void)
{
    /* The alarm only where the guard is installed (a tool's main thread). */
    unsigned limit = pe_guard_prog ? metadata_timeout() : 0;
    if (limit) {
        pe_in_metadata = 1;
        alarm(limit);
    }
    return limit;
}

void pe_guard_timer_stop(unsigned started)
{
    if (started) {
        alarm(0);
        pe_in_metadata = 0;
    }
}
