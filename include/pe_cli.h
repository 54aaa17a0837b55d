/* pe_cli.h: the command line shared by the tools.
 *
 * Each tool describes its options in one table of pe_option; the same table
 * drives getopt_long and generates the --help text, so the two cannot drift.
 * Options every tool takes (layers, heads, train length, pairing, output,
 * format, digits, jobs, memory, -q, -v, -h, --version) are parsed here into
 * pe_common_opts; the tool's own options go to its handler.
 *
 * Number parsing is strict: the whole argument must be a number in range
 * (strtol/strtod with end pointer and errno), else a usage error naming the
 * option.
 *
 * Ownership: pe_common_opts owns its lists; free them with
 * pe_common_opts_free.
 */
#ifndef PE_CLI_H
#define PE_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "pe_common.h"
#include "pe_table.h"

/* Keys of the common long-only options; a tool's own long-only keys start at
 * PE_OPT_TOOL. */
enum {
    PE_OPT_PAIRING = 256,
    PE_OPT_VERSION,
    PE_OPT_DIGITS,
    PE_OPT_MAX_MEMORY,
    PE_OPT_PE,
    PE_OPT_TOOL = 512
};

typedef struct pe_option {
    const char *name; /* long name, without "--" */
    int key;          /* the short option character, or a key >= 256 */
    const char *arg;  /* argument name in the help, NULL for a flag */
    const char *help; /* one line */
} pe_option;

typedef struct pe_common_opts {
    long *layers;      /* NULL = all */
    size_t n_layers;
    long *heads;       /* NULL = all */
    size_t n_heads;
    long train_len;    /* 0 = from the files */
    int pairing;       /* -1 = from the files, else pe_pairing */
    const char *output;/* NULL = stdout */
    pe_format format;
    int digits;        /* 9 */
    int jobs;          /* 0 = all cores */
    double max_memory; /* bytes, 0 = available memory */
    int quiet, verbose;
    struct pe_whatif **pe; /* --pe SPEC, in the order given (man petools-whatif(7)) */
    size_t n_pe;
} pe_common_opts;

typedef struct pe_tool {
    const char *name;     /* "pedecomp" */
    const char *synopsis; /* "[OPTION]... FILE..." */
    const char *purpose;  /* one line under the synopsis */
    const pe_option *options; /* the tool's own, ended by {NULL, 0, NULL, NULL} */
    const char *epilog;   /* text after the option list, may be NULL */
    /* The linked libraries' versions for --version, e.g. "HDF5 1.10.8, FFTW 3.3.10". */
    const char *(*libraries)(void);
    /* What exit status 3 means for this tool ("--check found a mismatch"),
     * or NULL when it never exits 3. */
    const char *found;
    /* Handles one of the tool's own options; returns 0, or -1 with e filled
     * (a usage error). */
    int (*handle)(int key, const char *arg, void *ctx, pe_err *e);
} pe_tool;

typedef enum {
    PE_CLI_RUN = 0,   /* go on: operands start at *first_operand */
    PE_CLI_EXIT_OK,   /* --help or --version was printed */
    PE_CLI_EXIT_USAGE /* a usage error was printed to stderr */
} pe_cli_result;

/* Parses argv.  Prints usage (stdout) for --help, the version for --version,
 * and "prog: message" (stderr) for a usage error. */
pe_cli_result pe_cli_parse(int argc, char **argv, const pe_tool *tool, pe_common_opts *common,
                           void *ctx, int *first_operand);
void pe_common_opts_free(pe_common_opts *c);

/* Writes the --help text generated from the option tables. */
void pe_cli_usage(FILE *out, const pe_tool *tool);

/* Strict parsers; `opt` names the option in the message ("--bins"). */
int pe_parse_long(const char *opt, const char *s, long lo, long hi, long *out, pe_err *e);
int pe_parse_double(const char *opt, const char *s, double lo, double hi, double *out, pe_err *e);
/* A byte count with an optional K, M, G or T suffix (powers of 1024). */
int pe_parse_bytes(const char *opt, const char *s, double *out, pe_err *e);
/* A list like "0,2-4" of integers in [lo, hi], returned sorted and without
 * repeats (free() the array). */
int pe_parse_list(const char *opt, const char *s, long lo, long hi, long **out, size_t *n,
                  pe_err *e);
/* One of a NULL-terminated set of names; returns its position. */
int pe_parse_choice(const char *opt, const char *s, const char *const *names, int *out, pe_err *e);

/* Number of online processors (at least 1). */
int pe_cpu_count(void);

#endif
