/* pe_table.c: table output in gnuplot, tsv and json (see pe_table.h), and
 * output files that appear only when complete. */
#include "pe_table.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pe_numfmt.h"

#define PE_TABLE_SPARES 8

struct pe_table {
    FILE *out;
    pe_format fmt;
    int digits;
    const char *const *cols;
    int ncol;
    int col;          /* next column of the current row */
    int header_done;  /* header (or JSON prologue) written */
    int rows;         /* rows written */
    int pending;      /* break level waiting to be written before the next row */
    int meta_open;    /* json: inside "meta": { */
    int meta_count;
    const char *tool, *table_name;
    char *line;       /* the row being built, written with one fwrite */
    size_t len, cap;
    int oom;          /* the row buffer could not grow: report at finish */
    /* pe_table_mark_prefix: the first cells of a row, kept for reuse */
    char *prefix;
    size_t prefix_len, prefix_cap, open_len;
    int prefix_cols;
    /* a fork (pe_table_fork, out NULL): its rows stay in line, one after
     * another, counted from base_rows */
    int base_rows;
    /* a parent: the row buffers of joined forks, for the next forks (their
     * pages are already there), under spare_mu */
    pthread_mutex_t spare_mu;
    char *spare[PE_TABLE_SPARES];
    size_t spare_cap[PE_TABLE_SPARES];
    int n_spare;
    int matrix_done; /* json: pe_table_matrix closed the document */
    int sections;    /* json: sections opened after the rows (each closes with "]}") */
};

/* The first write error's errno: stdio keeps only a flag, and errno at
 * close time may tell nothing (the failed bytes were dropped earlier). */
static int pe_write_errno;

static void note_write(size_t wrote, size_t want)
{
    if (wrote < want && !pe_write_errno) pe_write_errno = errno ? errno : EIO;
}

/* Makes room for n more bytes and a terminator in the row buffer; 0 when
 * it could not grow (t->oom is set, the row is dropped at its end). */
static int reserve(pe_table *t, size_t n)
{
    if (t->len + n + 1 <= t->cap) return 1;
    size_t cap = t->cap ? t->cap : 256;
    while (t->len + n + 1 > cap) cap *= 2;
    char *nl = realloc(t->line, cap);
    if (!nl) {
        t->oom = 1;
        return 0;
    }
    t->line = nl;
    t->cap = cap;
    return 1;
}

/* Appends n bytes to the row buffer. */
static void put(pe_table *t, const char *s, size_t n)
{
    if (!reserve(t, n)) return;
    if (n == 1) /* separators: no memcpy call */
        t->line[t->len] = *s;
    else
        memcpy(t->line + t->len, s, n);
    t->len += n;
}

static void puts_(pe_table *t, const char *s)
{
    put(t, s, strlen(s));
}

int pe_format_parse(const char *s, pe_format *out)
{
    static const char *const names[] = {"gnuplot", "tsv", "json"};
    for (int i = 0; i < 3; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (pe_format)i;
            return 0;
        }
    }
    return -1;
}

const char *pe_format_double(double v, int digits, char *buf, size_t len)
{
    char tmp[PE_NUMFMT_MAX];
    pe_fmt_g(tmp, v, digits);
    snprintf(buf, len, "%s", tmp);
    return buf;
}

/* A JSON string literal of s, into a FILE or (f == NULL) the row buffer. */
static void json_string_to(pe_table *t, FILE *f, const char *s)
{
    char esc[8];
    const unsigned char *p = (const unsigned char *)s, *run = p;
#define PE_EMIT(str, n) (f ? (void)fwrite((str), 1, (n), f) : put(t, (const char *)(str), (n)))
    PE_EMIT("\"", 1);
    for (; *p; p++) {
        const char *rep = NULL;
        switch (*p) {
        case '"': rep = "\\\""; break;
        case '\\': rep = "\\\\"; break;
        case '\n': rep = "\\n"; break;
        case '\t': rep = "\\t"; break;
        case '\r': rep = "\\r"; break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                rep = esc;
            }
        }
        if (rep) {
            PE_EMIT(run, (size_t)(p - run));
            PE_EMIT(rep, strlen(rep));
            run = p + 1;
        }
    }
    PE_EMIT(run, (size_t)(p - run));
    PE_EMIT("\"", 1);
#undef PE_EMIT
}

void pe_json_string(FILE *f, const char *s)
{
    json_string_to(NULL, f, s);
}

static void json_string(FILE *f, const char *s)
{
    pe_json_string(f, s);
}

pe_table *pe_table_open(FILE *out, pe_format fmt, int digits, const char *tool,
                        const char *table_name, const char *const *columns, int ncol, pe_err *e)
{
    pe_table *t = pe_alloc(1, sizeof *t, 1, e);
    if (!t) return NULL;
    pthread_mutex_init(&t->spare_mu, NULL);
    t->out = out;
    t->fmt = fmt;
    t->digits = digits < 1 ? 1 : digits > 17 ? 17 : digits;
    t->cols = columns;
    t->ncol = ncol;
    t->tool = tool;
    t->table_name = table_name;
    if (fmt == PE_FMT_JSON) {
        fputs("{\"tool\":", out);
        json_string(out, tool);
        fputs(",\"table\":", out);
        json_string(out, table_name);
        fputs(",\"meta\":{", out);
        t->meta_open = 1;
    } else {
        fprintf(out, "# %s table: %s\n", tool, table_name);
    }
    return t;
}

void pe_table_meta(pe_table *t, const char *key, const char *fmt, ...)
{
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (t->header_done) return;
    if (t->fmt == PE_FMT_JSON) {
        if (t->meta_count++) fputc(',', t->out);
        json_string(t->out, key);
        fputc(':', t->out);
        json_string(t->out, buf);
    } else {
        /* A value with a newline would end the comment early. */
        for (char *p = buf; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
        fprintf(t->out, "# %s: %s\n", key, buf);
    }
}

static void write_header(pe_table *t)
{
    if (t->header_done) return;
    t->header_done = 1;
    if (t->fmt == PE_FMT_JSON) {
        fputs("},\"columns\":[", t->out);
        for (int i = 0; i < t->ncol; i++) {
            if (i) fputc(',', t->out);
            json_string(t->out, t->cols[i]);
        }
        fputs("],\"rows\":[", t->out);
    } else {
        for (int i = 0; i < t->ncol; i++) {
            if (i) fputc('\t', t->out);
            fputs(t->cols[i], t->out);
        }
        fputc('\n', t->out);
    }
}

/* Starts a cell: the row's opening, separators, the JSON key. */
static void cell_slow(pe_table *t)
{
    if (t->col == 0) {
        write_header(t);
        if (t->out) t->len = 0; /* a fork keeps its rows in line */
        if (t->fmt == PE_FMT_JSON) {
            puts_(t, t->rows ? ",\n{" : "\n{");
        } else if (t->pending && t->rows) {
            puts_(t, t->pending == 1 ? "\n" : "\n\n");
        }
        t->pending = 0;
        t->open_len = t->len;
    } else {
        put(t, t->fmt == PE_FMT_JSON ? "," : "\t", 1);
    }
    if (t->fmt == PE_FMT_JSON) {
        json_string_to(t, NULL, t->col < t->ncol ? t->cols[t->col] : "extra");
        put(t, ":", 1);
    }
    t->col++;
}

/* The common case inline: a tab between text cells. */
static inline void cell(pe_table *t)
{
    if (t->col == 0 || t->fmt == PE_FMT_JSON || t->len + 2 > t->cap) {
        cell_slow(t);
        return;
    }
    t->line[t->len++] = '\t';
    t->col++;
}

/* Numbers are formatted in place, at the end of the row buffer. */
void pe_table_int(pe_table *t, long long v)
{
    cell(t);
    if (reserve(t, PE_NUMFMT_MAX)) t->len += pe_fmt_int(t->line + t->len, v);
}

void pe_table_str(pe_table *t, const char *s)
{
    cell(t);
    if (t->fmt == PE_FMT_JSON)
        json_string_to(t, NULL, s);
    else
        puts_(t, s);
}

void pe_table_dbl(pe_table *t, double v)
{
    cell(t);
    if (t->fmt == PE_FMT_JSON && !isfinite(v))
        puts_(t, "null");
    else if (reserve(t, PE_NUMFMT_MAX))
        t->len += pe_fmt_g(t->line + t->len, v, t->digits);
}

void pe_table_nan(pe_table *t)
{
    pe_table_dbl(t, NAN);
}

void pe_table_mark_prefix(pe_table *t)
{
    size_t n = t->len - t->open_len;
    if (n + 1 > t->prefix_cap) {
        char *p = realloc(t->prefix, n + 1);
        if (!p) {
            t->oom = 1;
            return;
        }
        t->prefix = p;
        t->prefix_cap = n + 1;
    }
    memcpy(t->prefix, t->line + t->open_len, n);
    t->prefix_len = n;
    t->prefix_cols = t->col;
}

void pe_table_use_prefix(pe_table *t)
{
    if (!t->prefix_cols) return;
    /* The row's opening as cell() writes it, then the kept cells. */
    cell(t);
    t->len = t->open_len;
    put(t, t->prefix, t->prefix_len);
    t->col = t->prefix_cols;
}

void pe_table_end_row(pe_table *t)
{
    put(t, t->fmt == PE_FMT_JSON ? "}" : "\n", 1);
    if (!t->out) { /* a fork: the row stays where it is */
        t->col = 0;
        t->rows++;
        return;
    }
    if (!t->oom) note_write(fwrite(t->line, 1, t->len, t->out), t->len);
    t->len = 0;
    t->col = 0;
    t->rows++;
}

/* ---- forks: rows formatted on other threads ---- */

pe_table *pe_table_fork(pe_table *t, pe_table_state at, pe_err *e)
{
    pe_table *f = pe_alloc(1, sizeof *f, 1, e);
    if (!f) return NULL;
    f->fmt = t->fmt;
    f->digits = t->digits;
    f->cols = t->cols;
    f->ncol = t->ncol;
    f->tool = t->tool;
    f->table_name = t->table_name;
    f->header_done = 1;
    f->rows = at.rows;
    f->base_rows = at.rows;
    f->pending = t->fmt == PE_FMT_GNUPLOT ? at.pending : 0; /* as pe_table_break */
    pthread_mutex_lock(&t->spare_mu); /* the only state of t that changes here */
    if (t->n_spare > 0) {
        t->n_spare--;
        f->line = t->spare[t->n_spare];
        f->cap = t->spare_cap[t->n_spare];
    }
    pthread_mutex_unlock(&t->spare_mu);
    if (!f->line && (f->line = malloc(1 << 16))) f->cap = 1 << 16; /* else put grows it */
    return f; /* out stays NULL: rows are kept in line */
}

pe_table_state pe_table_state_of(const pe_table *t)
{
    pe_table_state s = {t->rows, t->pending};
    return s;
}

int pe_table_join(pe_table *t, pe_table *f, pe_err *e)
{
    int bad = f->oom;
    if (!bad) {
        write_header(t);
        note_write(fwrite(f->line, 1, f->len, t->out), f->len);
        t->rows += f->rows - f->base_rows;
        t->pending = f->pending;
    }
    pthread_mutex_lock(&t->spare_mu);
    if (t->n_spare < PE_TABLE_SPARES && f->line) {
        t->spare[t->n_spare] = f->line;
        t->spare_cap[t->n_spare++] = f->cap;
        f->line = NULL;
    }
    pthread_mutex_unlock(&t->spare_mu);
    free(f->line);
    free(f->prefix);
    free(f);
    return bad ? pe_fail(e, "out of memory while formatting the table") : 0;
}

void pe_table_fork_free(pe_table *f)
{
    if (!f) return;
    free(f->line);
    free(f->prefix);
    free(f);
}

void pe_table_break(pe_table *t, int level)
{
    if (t->fmt != PE_FMT_GNUPLOT || !t->rows) return;
    if (level > t->pending) t->pending = level;
}

/* One number as a cell of the matrix layouts (nan as null in json). */
static void matrix_num(pe_table *t, double v)
{
    char buf[PE_NUMFMT_MAX];
    if (t->fmt == PE_FMT_JSON && !isfinite(v))
        fputs("null", t->out);
    else
        fwrite(buf, 1, pe_fmt_g(buf, v, t->digits), t->out);
}

void pe_table_matrix(pe_table *t, size_t nr, size_t nc, const int64_t *y, const int64_t *lo, const int64_t *hi,
                     const double *v)
{
    if (t->fmt == PE_FMT_TSV) {
        for (size_t r = 0; r < nr; r++)
            for (size_t c = 0; c < nc; c++) {
                pe_table_int(t, y[r]);
                pe_table_int(t, lo[c]);
                pe_table_int(t, hi[c]);
                pe_table_dbl(t, v[r * nc + c]);
                pe_table_end_row(t);
            }
        return;
    }
    t->header_done = 1; /* the layout has no header line */
    if (t->fmt == PE_FMT_GNUPLOT) {
        fprintf(t->out, "%zu", nc);
        for (size_t c = 0; c < nc; c++) {
            fputc('\t', t->out);
            matrix_num(t, 0.5 * ((double)lo[c] + (double)hi[c]));
        }
        fputc('\n', t->out);
        for (size_t r = 0; r < nr; r++) {
            fprintf(t->out, "%lld", (long long)y[r]);
            for (size_t c = 0; c < nc; c++) {
                fputc('\t', t->out);
                matrix_num(t, v[r * nc + c]);
            }
            fputc('\n', t->out);
        }
        return;
    }
    fputs("},\n\"rows\":[", t->out);
    for (size_t r = 0; r < nr; r++) fprintf(t->out, "%s%lld", r ? "," : "", (long long)y[r]);
    static const char *const names[] = {"key_lo", "key_hi", "key_centre"};
    for (int w = 0; w < 3; w++) {
        fprintf(t->out, "],\n\"%s\":[", names[w]);
        for (size_t c = 0; c < nc; c++) {
            if (c) fputc(',', t->out);
            if (w < 2)
                fprintf(t->out, "%lld", (long long)(w == 0 ? lo[c] : hi[c]));
            else
                matrix_num(t, 0.5 * ((double)lo[c] + (double)hi[c]));
        }
    }
    fputs("],\n\"values\":[", t->out);
    for (size_t r = 0; r < nr; r++) {
        fputs(r ? ",\n[" : "\n[", t->out);
        for (size_t c = 0; c < nc; c++) {
            if (c) fputc(',', t->out);
            matrix_num(t, v[r * nc + c]);
        }
        fputc(']', t->out);
    }
    fputs("\n]}\n", t->out);
    t->matrix_done = 1;
}

void pe_table_section(pe_table *t, const char *name, const char *const *columns, int ncol)
{
    write_header(t);
    if (t->fmt == PE_FMT_JSON) {
        fputs(t->rows ? "\n],\n" : "],\n", t->out);
        json_string(t->out, name);
        fputs(":{\"columns\":[", t->out);
        for (int i = 0; i < ncol; i++) {
            if (i) fputc(',', t->out);
            json_string(t->out, columns[i]);
        }
        fputs("],\"rows\":[", t->out);
        t->sections++;
    } else {
        if (t->fmt == PE_FMT_GNUPLOT && t->rows) fputs("\n\n", t->out);
        fprintf(t->out, "# section: %s\n", name);
        for (int i = 0; i < ncol; i++) {
            if (i) fputc('\t', t->out);
            fputs(columns[i], t->out);
        }
        fputc('\n', t->out);
    }
    t->cols = columns;
    t->ncol = ncol;
    t->rows = 0;
    t->pending = 0;
}

int pe_table_finish(pe_table *t, pe_err *e)
{
    if (!t) return 0;
    write_header(t);
    if (t->fmt == PE_FMT_JSON && !t->matrix_done) {
        fputs(t->rows ? "\n]" : "]", t->out);
        for (int i = 0; i < t->sections; i++) fputs("}", t->out);
        fputs("}\n", t->out);
    }
    int oom = t->oom;
    free(t->line);
    free(t->prefix);
    for (int i = 0; i < t->n_spare; i++) free(t->spare[i]);
    pthread_mutex_destroy(&t->spare_mu);
    free(t);
    /* Write errors stay in the stream's error flag for pe_output_close. */
    if (oom) return pe_fail(e, "out of memory while writing the table");
    return 0;
}

/* ---- output files ---- */

/* Temporary files still being written: removed when a signal (Ctrl-C, kill,
 * a closed terminal) ends the tool, so that nothing half-written stays. */
#define PE_MAX_TMP 4
static char pe_tmp[PE_MAX_TMP][4096];
static volatile sig_atomic_t pe_tmp_used[PE_MAX_TMP];

void pe_output_abandon_all(void)
{
    for (int i = 0; i < PE_MAX_TMP; i++)
        if (pe_tmp_used[i]) unlink(pe_tmp[i]);
}

static void remove_tmp_and_die(int sig)
{
    pe_output_abandon_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int tmp_register(const char *path)
{
    static int handlers;
    if (!handlers) {
        static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = remove_tmp_and_die;
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
            struct sigaction old;
            /* A signal the caller ignores (nohup) stays ignored. */
            if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
            sigaction(sigs[i], &sa, NULL);
        }
        handlers = 1;
    }
    for (int i = 0; i < PE_MAX_TMP; i++)
        if (!pe_tmp_used[i] && strlen(path) < sizeof pe_tmp[i]) {
            memcpy(pe_tmp[i], path, strlen(path) + 1);
            pe_tmp_used[i] = 1;
            return i;
        }
    return -1;
}

static void tmp_unregister(const char *path)
{
    for (int i = 0; i < PE_MAX_TMP; i++)
        if (pe_tmp_used[i] && strcmp(pe_tmp[i], path) == 0) pe_tmp_used[i] = 0;
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Output goes out in 1 MiB writes instead of stdio's 4 KiB: a
 * full-resolution table is hundreds of MB. */
#define PE_OUTPUT_BUFFER ((size_t)1 << 20)
static char pe_stdout_buffer[PE_OUTPUT_BUFFER];

int pe_output_open(pe_output *o, const char *path, const char *opt, char *const *inputs, size_t n_inputs,
                   pe_err *e)
{
    struct stat st;
    char *resolved = NULL;
    memset(o, 0, sizeof *o);
    if (!path || strcmp(path, "-") == 0) {
        o->fp = stdout;
        /* A terminal keeps its line buffering; a pipe or file gets big
         * writes (before anything is written, as setvbuf requires). */
        if (!isatty(STDOUT_FILENO)) setvbuf(stdout, pe_stdout_buffer, _IOFBF, sizeof pe_stdout_buffer);
        return 0;
    }
    for (size_t i = 0; i < n_inputs; i++)
        if (same_file(path, inputs[i]))
            return pe_fail_usage(e, "%s: '%s' is an input file; refusing to overwrite it", opt, path);
    if (lstat(path, &st) == 0) {
        /* The table replaces a link's target, never the link. */
        if (S_ISLNK(st.st_mode)) {
            if (!(resolved = realpath(path, NULL)) || stat(resolved, &st) != 0) {
                free(resolved);
                return pe_fail_usage(e, "%s: '%s' is a link to nothing", opt, path);
            }
            path = resolved;
        }
        if (S_ISDIR(st.st_mode)) {
            free(resolved);
            return pe_fail_usage(e, "%s: '%s' is a directory", opt, path);
        }
        if (!S_ISREG(st.st_mode)) {
            pe_fail_usage(e, "%s: '%s' is not a regular file (redirect standard output to write to it)", opt,
                          path);
            free(resolved);
            return -1;
        }
    }
    size_t n = strlen(path);
    o->path = pe_strdup(path, e);
    free(resolved);
    if (!o->path) return -1;
    path = o->path;
    if (!(o->tmp_path = pe_alloc(n + 16, 1, 0, e))) goto fail;
    /* The temporary sits next to the target so that rename() is atomic. */
    snprintf(o->tmp_path, n + 16, "%s.tmpXXXXXX", path);
    int fd = mkstemp(o->tmp_path);
    if (fd < 0) {
        pe_fail_usage(e, "%s: cannot create '%s': %s", opt, path, strerror(errno));
        goto fail;
    }
    tmp_register(o->tmp_path);
    /* mkstemp makes 0600; a table is an ordinary file. */
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    if (!(o->fp = fdopen(fd, "w"))) {
        pe_fail(e, "%s: %s: %s", opt, path, strerror(errno));
        close(fd);
        unlink(o->tmp_path);
        tmp_unregister(o->tmp_path);
        goto fail;
    }
    /* glibc ignores the size unless it is given the buffer too. */
    if ((o->buf = malloc(PE_OUTPUT_BUFFER))) setvbuf(o->fp, o->buf, _IOFBF, PE_OUTPUT_BUFFER);
    return 0;
fail:
    free(o->path);
    free(o->tmp_path);
    memset(o, 0, sizeof *o);
    return -1;
}

/* The reader of our standard output went away (| head -1): end quietly, as
 * SIGPIPE would have ended us had the caller not ignored it. */
static void reader_gone(void)
{
    signal(SIGPIPE, SIG_DFL);
    raise(SIGPIPE);
    _exit(141); /* only if SIGPIPE is blocked */
}

int pe_close_stdout(const char *prog, int status)
{
    errno = 0;
    if (fclose(stdout) == 0) return status;
    int err = errno ? errno : pe_write_errno ? pe_write_errno : EIO;
    if (err == EPIPE) reader_gone();
    if (status != PE_EXIT_OK && status != PE_EXIT_FOUND) return status; /* already reported */
    fprintf(stderr, "%s: standard output: write error: %s\n", prog, strerror(err));
    return PE_EXIT_DATA;
}

int pe_output_close(pe_output *o, int ok, pe_err *e)
{
    int rc = 0;
    if (!o->fp) return 0;
    if (!o->tmp_path) {
        /* stdout: a full disk shows up here or at fclose. */
        errno = 0;
        if (ok && (fflush(stdout) != 0 || ferror(stdout))) {
            if (errno == EPIPE) reader_gone();
            if (!errno && pe_write_errno == EPIPE) reader_gone();
            rc = pe_fail(e, "standard output: write error: %s",
                         strerror(errno ? errno : pe_write_errno ? pe_write_errno : EIO));
        }
        o->fp = NULL;
        return rc;
    }
    int bad = fflush(o->fp) != 0 || ferror(o->fp);
    int err = errno;
    if (fclose(o->fp) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    o->fp = NULL;
    free(o->buf);
    o->buf = NULL;
    if (ok && bad)
        rc = pe_fail(e, "%s: write error: %s", o->path, strerror(err ? err : pe_write_errno ? pe_write_errno : EIO));
    if (ok && !bad && rename(o->tmp_path, o->path) != 0)
        rc = pe_fail(e, "%s: cannot rename the finished table into place: %s", o->path, strerror(errno));
    if (!ok || rc != 0) unlink(o->tmp_path);
    tmp_unregister(o->tmp_path);
    free(o->path);
    free(o->tmp_path);
    o->path = o->tmp_path = NULL;
    return rc;
}
