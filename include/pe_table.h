/* pe_table.h: the one writer of every table the tools print.
 *
 * Three formats over the same calls:
 * - gnuplot (default): "# key: value" comment lines, one header line, then
 *   tab-separated rows; a blank line ends a series (pe_table_break(t, 1)) and
 *   two blank lines end a block (level 2), so that gnuplot's `index` picks a
 *   block (a head) and a series is one curve.
 * - tsv: the same without blank lines (for awk, sort, datamash -H).
 * - json: one document {"tool":..,"table":..,"meta":{..},
 *   "columns":[..],"rows":[{..},..]}, null for NaN.
 * Numbers: %.9g by default (digits 1..17), always with '.', "nan" for NaN and
 * infinities (never "inf" or "-nan").  Nothing depends on the locale.
 *
 * Output files are written to a temporary name in the same folder and renamed
 * over the target only when the whole table was written (pe_output_*).
 *
 * Ownership: pe_table_open returns a table freed by pe_table_finish (which
 * also reports write errors).  The FILE stays the caller's.
 */
#ifndef PE_TABLE_H
#define PE_TABLE_H

#include <stdint.h>
#include <stdio.h>

#include "pe_common.h"

typedef enum { PE_FMT_GNUPLOT = 0, PE_FMT_TSV, PE_FMT_JSON } pe_format;

int pe_format_parse(const char *s, pe_format *out);

typedef struct pe_table pe_table;

/* columns: ncol names, borrowed for the table's life.  The tool and table
 * names open the header comments (or are the JSON fields "tool", "table");
 * everything else, the version included, goes through pe_table_meta. */
pe_table *pe_table_open(FILE *out, pe_format fmt, int digits, const char *tool,
                        const char *table_name, const char *const *columns, int ncol, pe_err *e);

/* A "# key: value" line (gnuplot, tsv) or a meta field (json); call before
 * the first row.  Values are plain text. */
void pe_table_meta(pe_table *t, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Cells, left to right; pe_table_end_row after the last column. */
void pe_table_int(pe_table *t, long long v);
void pe_table_str(pe_table *t, const char *s);
void pe_table_dbl(pe_table *t, double v);
/* A cell that is nan in text formats and null in json. */
void pe_table_nan(pe_table *t);
void pe_table_end_row(pe_table *t);

/* level 1: end of a series; level 2: end of a block.  Ignored by tsv/json;
 * never written before the first row or twice in a row. */
void pe_table_break(pe_table *t, int level);

/* Rows that start with the same cells (a series): after writing them once,
 * pe_table_mark_prefix keeps the row's cells so far; pe_table_use_prefix
 * starts a later row with them, as if written again. */
void pe_table_mark_prefix(pe_table *t);
void pe_table_use_prefix(pe_table *t);

/* Forks: rows of one table formatted on several threads, then written in
 * order.  A fork is a table that writes to memory and behaves as if it
 * continued its parent at `at` (rows written so far, the break waiting):
 * JSON separators and gnuplot blank lines come out exactly as if the parent
 * had written the rows itself.  pe_table_state_of reads the parent's state
 * (on the thread that writes to it); pe_table_fork reads only the parent's
 * fixed settings and, under a lock, takes a row buffer a joined fork left,
 * so it may run on any thread; pe_table_join (on the
 * parent's thread, forks in order) writes the fork's text, takes over its
 * state and frees it; pe_table_fork_free drops a fork unwritten. */
typedef struct pe_table_state {
    int rows;
    int pending;
} pe_table_state;
pe_table_state pe_table_state_of(const pe_table *t);
pe_table *pe_table_fork(pe_table *t, pe_table_state at, pe_err *e);
int pe_table_join(pe_table *t, pe_table *fork, pe_err *e);
void pe_table_fork_free(pe_table *fork);

/* Ends the rows and starts a section of other columns (peanalyze -t loss's
 * calibration): gnuplot: two blank lines, "# section: NAME" and a header
 * line; tsv: the comment and the header line; json: the field NAME,
 * {"columns": [...], "rows": [...]}, after "rows".  Then its rows as any
 * others; columns are borrowed until pe_table_finish. */
void pe_table_section(pe_table *t, const char *name, const char *const *columns, int ncol);

/* Writes what is pending (the header of an empty table, the end of the JSON
 * document) and frees t.  Write errors are left in the stream's error flag,
 * where pe_output_close finds and names them.  Returns 0. */
int pe_table_finish(pe_table *t, pe_err *e);

/* A matrix instead of rows (peanalyze's heat map), after the meta lines:
 * nr rows at y[r], nc columns of keys lo[c]..hi[c], values v (nr x nc,
 * row-major).  gnuplot: the "matrix nonuniform" layout, a line with nc and
 * the column centres (lo + hi) / 2, then per row y and its values; json:
 * "rows", "key_lo", "key_hi", "key_centre" and "values" (an array per row)
 * after "meta"; tsv: one row per cell in the table's four columns
 * (y, lo, hi, value).  Then pe_table_finish. */
void pe_table_matrix(pe_table *t, size_t nr, size_t nc, const int64_t *y, const int64_t *lo, const int64_t *hi,
                     const double *v);

/* Writes s as a JSON string literal, escaped (for documents the table writer
 * does not make, such as a heat map or a mask). */
void pe_json_string(FILE *f, const char *s);

/* Formats a double the way tables do into buf (at least 32 bytes). */
const char *pe_format_double(double v, int digits, char *buf, size_t len);

/* ---- output files ---- */

typedef struct pe_output {
    FILE *fp;        /* where to write: stdout or the temporary file */
    char *path;      /* target path, NULL for stdout */
    char *tmp_path;  /* temporary name, NULL for stdout */
    char *buf;       /* the file's stdio buffer (1 MiB), freed at close */
} pe_output;

/* path NULL or "-" is stdout.  A path naming one of the inputs (same file)
 * or in a missing folder is refused (usage error); `opt` names the option in
 * the message ("--output", "--mask").  The temporary file is created next to
 * the target. */
int pe_output_open(pe_output *o, const char *path, const char *opt, char *const *inputs, size_t n_inputs,
                   pe_err *e);
/* ok != 0: flush, check, rename into place; ok == 0: remove the temporary.
 * For stdout, flushes and checks write errors (a reader that went away, EPIPE,
 * ends the tool by SIGPIPE, quietly).  Returns 0 or -1. */
int pe_output_close(pe_output *o, int ok, pe_err *e);

/* Removes every temporary output file still open.  Async-signal-safe: the
 * crash guard of pe_dump calls it before it ends a tool. */
void pe_output_abandon_all(void);

/* The last thing a tool's main does: closes standard output and returns the
 * exit status, turned into 1 with a "prog: standard output: write error"
 * line when buffered output could not be written (a full disk); a reader that
 * went away ends the tool quietly by SIGPIPE instead. */
int pe_close_stdout(const char *prog, int status);

#endif
