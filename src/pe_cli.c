/* pe_cli.c: option tables -> getopt_long and --help; strict number parsing. */
#include "pe_cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pe_version.h"
#include "pe_whatif.h"

/* The options every tool takes, in the order --help lists them. */
static const pe_option pe_common_options[] = {
    {"layers", 'l', "LIST", "layers to analyse by index, e.g. 0,2-4 (default all)"},
    {"heads", 'H', "LIST", "query heads to analyse, e.g. 0-3 (default all)"},
    {"train-len", 'L', "N", "training context length L (default: the files' train_len)"},
    {"pairing", PE_OPT_PAIRING, "P", "override the files' rope_pairing: half or interleaved"},
    {"output", 'o', "FILE", "write the table to FILE (complete or not at all; default stdout)"},
    {"format", 'f', "FMT", "gnuplot (default), tsv or json"},
    {"digits", PE_OPT_DIGITS, "N", "significant digits of numbers, 1-17 (default 9)"},
    {"jobs", 'j', "N", "threads over heads (default: all cores); output does not depend on it"},
    {"max-memory", PE_OPT_MAX_MEMORY, "BYTES", "refuse inputs needing more (K/M/G/T suffix; default available)"},
    {"pe", PE_OPT_PE, "SPEC", "positional what-if: rotate q and k as SPEC would (man petools-whatif(7); default rope)"},
    {"quiet", 'q', NULL, "no warnings"},
    {"verbose", 'v', NULL, "report progress and timings on stderr"},
    {"help", 'h', NULL, "show this help and exit"},
    {"version", PE_OPT_VERSION, NULL, "show the version and the linked libraries, and exit"},
    {NULL, 0, NULL, NULL}};

static size_t count_options(const pe_option *o)
{
    size_t n = 0;
    while (o && o[n].name) n++;
    return n;
}

static void usage_block(FILE *out, const pe_option *o)
{
    for (; o && o->name; o++) {
        char left[64];
        if (o->key > 0 && o->key < 256)
            snprintf(left, sizeof left, "-%c, --%s%s%s", o->key, o->name, o->arg ? " " : "",
                     o->arg ? o->arg : "");
        else
            snprintf(left, sizeof left, "    --%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        if (strlen(left) <= 24)
            fprintf(out, "  %-24s  %s\n", left, o->help);
        else
            fprintf(out, "  %s\n  %-24s  %s\n", left, "", o->help);
    }
}

void pe_cli_usage(FILE *out, const pe_tool *tool)
{
    fprintf(out, "Usage: %s %s\n%s\n\n", tool->name, tool->synopsis, tool->purpose);
    if (count_options(tool->options)) {
        fprintf(out, "Options:\n");
        usage_block(out, tool->options);
        fprintf(out, "\n");
    }
    fprintf(out, "Common options:\n");
    usage_block(out, pe_common_options);
    if (tool->epilog) fprintf(out, "\n%s", tool->epilog);
    fprintf(out, "\nExit status: 0 success, 1 data or runtime error, 2 usage error");
    if (tool->found) fprintf(out, ", 3 %s", tool->found);
    fprintf(out, ".\nSee man %s.\n", tool->name);
}

static void print_version(const pe_tool *tool)
{
    printf("%s (petools) %s\n", tool->name, PE_VERSION);
    if (tool->libraries) printf("%s\n", tool->libraries());
}

/* Appends the getopt descriptions of a table. */
static void add_getopt(const pe_option *o, struct option *lo, size_t *nl, char *so, size_t *ns)
{
    for (; o && o->name; o++) {
        lo[*nl].name = o->name;
        lo[*nl].has_arg = o->arg ? required_argument : no_argument;
        lo[*nl].flag = NULL;
        lo[*nl].val = o->key;
        (*nl)++;
        if (o->key > 0 && o->key < 256) {
            so[(*ns)++] = (char)o->key;
            if (o->arg) so[(*ns)++] = ':';
        }
    }
}

/* The option's name for messages: "--bins" (or "-t" when typed short). */
static const char *option_name(const pe_option *tables[2], int key, char *buf, size_t len)
{
    for (int t = 0; t < 2; t++)
        for (const pe_option *o = tables[t]; o && o->name; o++)
            if (o->key == key) {
                snprintf(buf, len, "--%s", o->name);
                return buf;
            }
    snprintf(buf, len, "-%c", key);
    return buf;
}

static int handle_common(int key, const char *opt, const char *arg, pe_common_opts *c, pe_err *e)
{
    long v;
    switch (key) {
    case 'l':
        free(c->layers);
        c->layers = NULL;
        return pe_parse_list(opt, arg, 0, 1000000000L, &c->layers, &c->n_layers, e);
    case 'H':
        free(c->heads);
        c->heads = NULL;
        return pe_parse_list(opt, arg, 0, 1000000L, &c->heads, &c->n_heads, e);
    case 'L':
        return pe_parse_long(opt, arg, 1, LONG_MAX / 4, &c->train_len, e);
    case PE_OPT_PAIRING: {
        static const char *const names[] = {"half", "interleaved", NULL};
        return pe_parse_choice(opt, arg, names, &c->pairing, e);
    }
    case 'o':
        if (!*arg) return pe_fail_usage(e, "%s: empty file name", opt);
        c->output = arg;
        return 0;
    case 'f':
        if (pe_format_parse(arg, &c->format) != 0)
            return pe_fail_usage(e, "%s: unknown format '%s' (gnuplot, tsv or json)", opt, arg);
        return 0;
    case PE_OPT_DIGITS:
        if (pe_parse_long(opt, arg, 1, 17, &v, e) < 0) return -1;
        c->digits = (int)v;
        return 0;
    case 'j':
        if (pe_parse_long(opt, arg, 1, 1024, &v, e) < 0) return -1;
        c->jobs = (int)v;
        return 0;
    case PE_OPT_MAX_MEMORY:
        return pe_parse_bytes(opt, arg, &c->max_memory, e);
    case PE_OPT_PE: {
        pe_whatif *w;
        pe_whatif **grown = realloc(c->pe, (c->n_pe + 1) * sizeof *grown);
        if (!grown) return pe_fail(e, "out of memory");
        c->pe = grown;
        if (pe_whatif_parse(opt, arg, &w, e) < 0) return -1;
        c->pe[c->n_pe++] = w;
        return 0;
    }
    case 'q':
        c->quiet = 1;
        return 0;
    case 'v':
        c->verbose = 1;
        return 0;
    default:
        return pe_fail_usage(e, "%s: not handled", opt);
    }
}

pe_cli_result pe_cli_parse(int argc, char **argv, const pe_tool *tool, pe_common_opts *common,
                           void *ctx, int *first_operand)
{
    size_t n = count_options(tool->options) + count_options(pe_common_options);
    struct option *lo = calloc(n + 1, sizeof *lo);
    char *so = calloc(3 * n + 2, 1);
    const pe_option *tables[2] = {tool->options, pe_common_options};
    pe_cli_result res = PE_CLI_RUN;
    size_t nl = 0, ns = 0;
    pe_err e = {0};
    int c;

    memset(common, 0, sizeof *common);
    common->pairing = -1;
    common->digits = 9;
    common->format = PE_FMT_GNUPLOT;
    if (!lo || !so) {
        fprintf(stderr, "%s: out of memory\n", tool->name);
        res = PE_CLI_EXIT_USAGE;
        goto done;
    }
    so[ns++] = ':'; /* report a missing argument as ':' */
    add_getopt(tool->options, lo, &nl, so, &ns);
    add_getopt(pe_common_options, lo, &nl, so, &ns);

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, so, lo, NULL)) != -1) {
        char name[80];
        if (c == '?' || c == ':') {
            const char *bad = argv[optind - 1];
            if (c == ':')
                fprintf(stderr, "%s: option %s needs an argument\n", tool->name, bad);
            else if (optopt && optopt < 256 && strncmp(bad, "--", 2) != 0)
                fprintf(stderr, "%s: unknown option -%c (see %s --help)\n", tool->name, optopt,
                        tool->name);
            else
                fprintf(stderr, "%s: unknown option %s (see %s --help)\n", tool->name, bad, tool->name);
            res = PE_CLI_EXIT_USAGE;
            goto done;
        }
        if (c == 'h') {
            pe_cli_usage(stdout, tool);
            res = PE_CLI_EXIT_OK;
            goto done;
        }
        if (c == PE_OPT_VERSION) {
            print_version(tool);
            res = PE_CLI_EXIT_OK;
            goto done;
        }
        option_name(tables, c, name, sizeof name);
        int is_common = 0;
        for (const pe_option *o = pe_common_options; o->name; o++)
            if (o->key == c) is_common = 1;
        int r = is_common ? handle_common(c, name, optarg, common, &e)
                          : tool->handle(c, optarg, ctx, &e);
        if (r < 0) {
            fprintf(stderr, "%s: %s\n", tool->name, e.msg);
            res = PE_CLI_EXIT_USAGE;
            goto done;
        }
    }
    *first_operand = optind;
done:
    free(lo);
    free(so);
    if (res != PE_CLI_RUN) pe_common_opts_free(common);
    return res;
}

void pe_common_opts_free(pe_common_opts *c)
{
    free(c->layers);
    free(c->heads);
    c->layers = c->heads = NULL;
    for (size_t i = 0; i < c->n_pe; i++) pe_whatif_free(c->pe[i]);
    free(c->pe);
    c->pe = NULL;
    c->n_pe = 0;
}

/* ---- strict parsers ---- */

int pe_parse_long(const char *opt, const char *s, long lo, long hi, long *out, pe_err *e)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || isspace((unsigned char)s[0]))
        return pe_fail_usage(e, "%s: '%s' is not an integer", opt, s);
    if (errno == ERANGE || v < lo || v > hi)
        return pe_fail_usage(e, "%s: %s is out of range [%ld, %ld]", opt, s, lo, hi);
    *out = v;
    return 0;
}

int pe_parse_double(const char *opt, const char *s, double lo, double hi, double *out, pe_err *e)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || isspace((unsigned char)s[0]))
        return pe_fail_usage(e, "%s: '%s' is not a number", opt, s);
    if (!isfinite(v) || errno == ERANGE)
        return pe_fail_usage(e, "%s: '%s' is not a finite number", opt, s);
    if (v < lo || v > hi) return pe_fail_usage(e, "%s: %s is out of range [%g, %g]", opt, s, lo, hi);
    *out = v;
    return 0;
}

int pe_parse_bytes(const char *opt, const char *s, double *out, pe_err *e)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double mult = 1;
    if (end == s || isspace((unsigned char)s[0]) || s[0] == '-')
        return pe_fail_usage(e, "%s: '%s' is not a byte count", opt, s);
    if (*end) {
        const char *units = "KMGT";
        const char *u = strchr(units, *end);
        if (!u || end[1] != '\0') return pe_fail_usage(e, "%s: '%s' is not a byte count", opt, s);
        for (const char *p = units; p <= u; p++) mult *= 1024.0;
    }
    v *= mult;
    if (!isfinite(v) || errno == ERANGE || v < 1)
        return pe_fail_usage(e, "%s: '%s' is not a usable byte count", opt, s);
    *out = v;
    return 0;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

int pe_parse_list(const char *opt, const char *s, long lo, long hi, long **out, size_t *n, pe_err *e)
{
    long *v = NULL;
    size_t cnt = 0, cap = 0;
    const char *p = s;
    char item[64];
    *out = NULL;
    *n = 0;
    if (!*s) return pe_fail_usage(e, "%s: empty list", opt);
    while (1) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || len >= sizeof item) {
            free(v);
            return pe_fail_usage(e, "%s: '%s' is not a list like 0,2-4", opt, s);
        }
        memcpy(item, p, len);
        item[len] = '\0';
        long a, b;
        char *dash = strchr(item + 1, '-'); /* item+1: a leading '-' is a sign */
        if (dash) {
            *dash = '\0';
            if (pe_parse_long(opt, item, lo, hi, &a, e) < 0 || pe_parse_long(opt, dash + 1, lo, hi, &b, e) < 0) {
                free(v);
                return -1;
            }
            if (b < a) {
                free(v);
                return pe_fail_usage(e, "%s: range %ld-%ld runs backwards", opt, a, b);
            }
        } else {
            if (pe_parse_long(opt, item, lo, hi, &a, e) < 0) {
                free(v);
                return -1;
            }
            b = a;
        }
        if ((unsigned long)(b - a) > 10000000UL) {
            free(v);
            return pe_fail_usage(e, "%s: range %ld-%ld is too long", opt, a, b);
        }
        for (long x = a; x <= b; x++) {
            if (cnt == cap) {
                cap = cap ? 2 * cap : 16;
                long *nv = realloc(v, cap * sizeof *nv);
                if (!nv) {
                    free(v);
                    return pe_fail(e, "%s: out of memory", opt);
                }
                v = nv;
            }
            v[cnt++] = x;
        }
        if (!comma) break;
        p = comma + 1;
    }
    qsort(v, cnt, sizeof *v, cmp_long);
    size_t u = 0;
    for (size_t i = 0; i < cnt; i++)
        if (u == 0 || v[i] != v[u - 1]) v[u++] = v[i];
    *out = v;
    *n = u;
    return 0;
}

int pe_parse_choice(const char *opt, const char *s, const char *const *names, int *out, pe_err *e)
{
    char list[256] = "";
    for (int i = 0; names[i]; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
        if (i) strncat(list, ", ", sizeof list - strlen(list) - 1);
        strncat(list, names[i], sizeof list - strlen(list) - 1);
    }
    return pe_fail_usage(e, "%s: unknown value '%s' (one of: %s)", opt, s, list);
}

int pe_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)(n > 1024 ? 1024 : n) : 1;
}
