/* pe_run.h: the life of one run of a tool, the same for the three tools.
 *
 * A tool describes itself (its command line, pe_cli.h) and its tables; the
 * engine does the rest, in this order:
 *   1. parses the command line (common options, then the tool's own);
 *   2. checks the options (the tool's check hook: usage errors, status 2);
 *   3. opens and checks the inputs, pooled (pe_inputs) or one by one;
 *   4. refuses a table that needs the training length when there is none;
 *   5. lists the tasks: per selected layer, the selected query heads, then
 *      (for tables that ask) the key heads they use;
 *   6. lets the table prepare (its checks on the metadata, its state);
 *   7. refuses a run whose memory estimate is over --max-memory or the
 *      available memory, before anything is allocated or written;
 *   8. opens the output (written to a temporary file, renamed when whole),
 *      writes the comment lines (version, inputs, how pemerge pools each
 *      column, then the table's own);
 *   9. runs the tasks on one persistent pool of threads (pe_pool.h):
 *      work(task) on any thread, emit(task) in task order on this one, so
 *      that the output never depends on -j;
 *  10. lets the table finish (rows that need every head), closes and
 *      renames the outputs, reports progress and errors, cleans up.
 * Errors are one line "prog: message" on standard error; the exit status is
 * 0, 1 (data, I/O), 2 (usage) or 3 (a gating option found its condition).
 *
 * A head's vectors enter through one door, pe_run_read: read (pe_dump) ->
 * rotate when the table wants rotated vectors, with the layer's frequencies
 * as the --pe SPEC changes them (pe_whatif.h, man petools-whatif(7)).
 * Key heads used by several query heads are read once for their group
 * (pe_run_key), unless the spec rotates the heads of a group differently.
 *
 * Ownership: the engine owns everything in a pe_run; a table keeps its own
 * state in r->state (allocated by its prepare hook, freed by the tool's
 * cleanup hook) and its per-task results in the slot the engine gives it
 * (freed by its release hook after the task is emitted).
 */
#ifndef PE_RUN_H
#define PE_RUN_H

#include <stddef.h>
#include <stdio.h>

#include "pe_cli.h"
#include "pe_common.h"
#include "pe_dump.h"
#include "pe_pool.h"
#include "pe_table.h"
#include "pe_whatif.h"

/* A column and how pemerge pools it across shards (the comment block at the
 * top of scripts/pemerge, which is also its --help):
 *   block       identifies a block of rows; blocks sort by the first block
 *               column, then the word ones, then the other numbers
 *   block(a,b)  the same for a word column, sorted in the order given
 *   key         identifies a row within its block
 *   lo, hi      the first and last distance (or position) of a bin
 *   sum         added
 *   mean(C)     mean weighted by column C of the same row (a nan makes
 *               the pooled value nan)
 *   known(C)    the same over the shards that have a value (nan: no value
 *               here, as an exceedance in-train)
 *   mean(tokens), mean(files)
 *               mean weighted by the tokens, or by the files, of each shard
 *   share(C)    C's pooled value over the sum of C in its block
 *   last(C)     mean weighted by the files that reach the row's distances
 *   rank        recomputed by ranking the merged rows on column C (select)
 *   fixed       a value of the whole pooled input: shards of different
 *               files cannot be merged */
typedef struct pe_column {
    const char *name;
    const char *merge;
} pe_column;

typedef struct pe_task {
    size_t lj;        /* the layer's slot among the selected (pe_inputs.layers) */
    long layer;       /* its index */
    pe_tensor tensor; /* Q: a query head's task; K: a key head's */
    int head;         /* the query head, or the key head */
    int kv_head;      /* the key head the head attends with */
} pe_task;

/* What a table needs and how its tasks run. */
enum {
    PE_TABLE_NEEDS_L = 1 << 0,    /* refused without the training length */
    PE_TABLE_KEY_TASKS = 1 << 1,  /* tasks for the key heads too, after each layer's query heads */
    PE_TABLE_NO_TASKS = 1 << 2,   /* no per-head work: finish writes everything */
    PE_TABLE_ONE_HEAD = 1 << 3,   /* one head at a time, spread over every thread inside */
    PE_TABLE_EACH_FILE = 1 << 4,  /* the files opened one by one, not pooled */
    PE_TABLE_NO_FILES = 1 << 5,   /* may run without an input file */
    PE_TABLE_RAW = 1 << 6,        /* writes its own layout to r->out (not a pe_table) */
    PE_TABLE_MANY_PE = 1 << 7,    /* compares every --pe: r->specs is rope, then each --pe */
    PE_TABLE_FILE_PE = 1 << 8     /* each file rotated with the spec its loss was recorded with
                                     (the nll's pe attribute): r->specs are those, --pe refused */
};

/* How the door hands out a head (pe_run_read, pe_run_key). */
enum {
    PE_READ_RAW = 0,     /* as the model made it: unrotated */
    PE_READ_ROTATED = 1, /* rotated as the run's spec would (plain RoPE by default) */
    PE_READ_PHASE = 2    /* the spec's rotation without the position phase of its
                            frequency pairs (gauss draws, the query's logit factor):
                            the caller applies exp(j delta theta_i) itself */
};

typedef struct pe_run pe_run;

typedef struct pe_table_def {
    const char *name;       /* the "# TOOL table: NAME" line */
    const pe_column *cols;  /* the columns (r->ncol may be fewer: prepare decides) */
    int ncol;
    unsigned flags;
    size_t result_size;     /* bytes of a task's result slot (zeroed before work) */
    /* After the inputs are open: the table's checks and state.  0 or -1. */
    int (*prepare)(pe_run *r, pe_err *e);
    /* Bytes the run holds at its peak (may set r->mem_jobs). */
    double (*memory)(pe_run *r);
    /* Comment lines after version, inputs and merge (pe_table_meta). */
    void (*meta)(pe_run *r);
    /* One task into its result slot, on any thread. */
    int (*work)(pe_run *r, const pe_task *t, void *res, pe_err *e);
    /* Its rows, in task order, on the calling thread. */
    int (*emit)(pe_run *r, const pe_task *t, void *res, pe_err *e);
    /* After the last task. */
    int (*finish)(pe_run *r, pe_err *e);
    /* Frees what a result slot holds (after emit, or on failure). */
    void (*release)(void *res);
} pe_table_def;

typedef struct pe_tool_def {
    pe_tool cli;
    /* The table the parsed options ask for. */
    const pe_table_def *(*table)(const void *opts);
    /* Checks of the options alone, before any file is opened. */
    int (*check)(pe_run *r, pe_err *e);
    /* Frees r->state. */
    void (*cleanup)(pe_run *r);
} pe_tool_def;

/* Everything of a run.  Tables read it; the tool's check and the table's
 * prepare hooks may set the fields marked "set", before the tasks exist. */
struct pe_run {
    const pe_tool_def *tool;
    const pe_table_def *def;
    const char *prog;
    pe_common_opts c;
    void *opts;          /* the tool's parsed options */
    void *state;         /* the tool's, for this run (freed by tool->cleanup) */
    char *const *files;
    size_t n_files;
    pe_inputs in;        /* pooled inputs (without EACH_FILE) */
    pe_dump **each;      /* EACH_FILE: each file alone */
    int kv_group;        /* query heads per key head */
    int jobs;            /* -j, or the number of cores */
    pe_pool *pool;
    pe_task *tasks;
    size_t n_tasks;
    size_t T_max;        /* the longest input */
    pe_output out;
    pe_table *table;     /* NULL for RAW tables and without output */
    /* set: */
    long *heads;         /* a head selection instead of --heads (NULL: --heads) */
    size_t n_heads;
    const char *heads_opt;  /* the option that gave r->heads, for messages */
    const char *needs_L_for; /* an option that needs the training length */
    int query_tasks;     /* tasks for the query heads (default 1) */
    int key_tasks;       /* and for the key heads (default: KEY_TASKS) */
    size_t result_size;  /* default def->result_size */
    const char *table_name; /* default def->name */
    const pe_column *cols;  /* default def->cols */
    int ncol;               /* default def->ncol */
    int mem_jobs;        /* threads named in the memory message (default jobs) */
    int no_output;       /* the table is not written (only a side output is) */
    const char *side_path, *side_opt; /* a second output file and its option */
    pe_output side;
    int found;           /* exit status 3 */
    const char **colnames;
    /* The specs (man petools-whatif(7)): specs[0] is what the door applies
     * (the first --pe, or rope: NULL); MANY_PE tables get rope, then every
     * --pe.  spec_names[s] is the text to print. */
    pe_whatif **specs;
    const char **spec_names;
    size_t n_specs;
    size_t *file_spec;   /* FILE_PE: the spec of each file (else NULL: spec 0) */
    struct pe_run_priv *priv;
};

/* The linked libraries and their versions, for --version. */
const char *pe_run_libraries(void);

/* The whole run; returns the exit status. */
int pe_run_main(int argc, char **argv, const pe_tool_def *tool, void *opts);

/* ---- for tables ---- */

/* The door: head `head` of tensor tn of task t's layer in file f, read as
 * doubles (T x D) into this thread's buffer number `slot` (0-5), as `how`
 * (PE_READ_*) says.  A rotation is the task's: a query task's for its query
 * and its key (the spec may differ per query head), a key task's for its
 * key head.  The buffer stays this thread's until its next read into the
 * same slot. */
double *pe_run_read(pe_run *r, const pe_task *t, size_t f, pe_tensor tn, int head, int how, int slot,
                    pe_err *e);
/* The key head of a query task in file f (PE_READ_*): with one input file
 * and a spec that rotates every head of a group alike, read once for all
 * the query heads of its group and shared (release it with
 * pe_run_key_done); else read into this thread's buffer `slot`. */
const double *pe_run_key(pe_run *r, const pe_task *t, size_t f, int rotate, int slot, pe_err *e);
void pe_run_key_done(pe_run *r, const pe_task *t, size_t f);

/* This thread's buffer number `slot` (0-5) of at least n doubles, kept from
 * task to task. */
double *pe_run_buffer(pe_run *r, int slot, size_t n, pe_err *e);

/* The dump of file f, and the slot of task t's layer in it. */
pe_dump *pe_run_dump(const pe_run *r, size_t f);
int pe_run_slot(const pe_run *r, size_t f, size_t lj);
/* The frequencies of selected layer lj (the first file's), as the model
 * has them (no spec). */
const double *pe_run_theta(const pe_run *r, size_t lj);
/* The rotation of spec s (r->specs) for task t in file f: the frequencies
 * theta_i of its pairs, its gauss pairs and its logit factor. */
const pe_rotation *pe_run_rotation(const pe_run *r, size_t s, const pe_task *t, size_t f);
/* The geometry of layer slot `slot` of file f. */
pe_geom pe_run_geom(const pe_run *r, size_t f, int slot);

/* Comment lines shared by several tables: train_len, pairing, attn_scale
 * and (when the files have one) attn_softcap with `softcap_note`. */
void pe_run_meta_geometry(pe_run *r, const char *softcap_note);

/* The first columns of a per-head row: layer, head, kv_head. */
void pe_run_row_start(pe_table *t, const pe_task *tk);

/* The result slot of task i (kept until the end when the table has no
 * release hook). */
void *pe_run_result(pe_run *r, size_t i);
/* The index of the task of (selected layer lj, tensor, head). */
size_t pe_run_task_index(const pe_run *r, size_t lj, pe_tensor tn, int head);

/* Whether t is the last task of its layer. */
int pe_run_last_of_layer(const pe_run *r, const pe_task *t);

#endif
