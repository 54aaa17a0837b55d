/* pe_mask.c: DoPE masks (see pe_mask.h; the schema: man peentropy(1),
 * MASK FILE). */
#include "pe_mask.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pe_numfmt.h"
#include "pe_table.h"

static const double TWO_PI = 6.283185307179586476925286766559;

static void json_num(FILE *f, double v)
{
    char buf[PE_NUMFMT_MAX];
    if (!isfinite(v)) {
        fputs("null", f);
        return;
    }
    fwrite(buf, 1, pe_fmt_g(buf, v, 17), f);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The pairs of a head that the mask names: theta_i <= 2 pi / L, as a list
 * of pair numbers (what 0), their dims (1) or their frequencies (2). */
static void pair_list(FILE *f, const pe_meta *m, const double *theta, double thr, int what)
{
    int first = 1;
    for (int i = 0; i < m->n_pairs; i++) {
        if (!(theta[i] <= thr)) continue;
        if (!first) fputs(", ", f);
        first = 0;
        if (what == 0) {
            fprintf(f, "%d", i);
        } else if (what == 1) {
            int a, b;
            pe_rope_pair_dims(m->pairing, m->rotary_dim, i, &a, &b);
            fprintf(f, "[%d, %d]", a, b);
        } else {
            json_num(f, theta[i]);
        }
    }
}

int pe_mask_write(FILE *f, const char *created_by, char *const *inputs, size_t n_inputs, const pe_meta *m, long L,
                  const pe_mask_selection *sel, const pe_mask_head *heads, size_t n_heads, int kv_group, pe_err *e)
{
    const double thr = TWO_PI / (double)L;
    char **sorted = pe_alloc(n_inputs ? n_inputs : 1, sizeof *sorted, 0, e);
    if (!sorted) return -1;
    for (size_t i = 0; i < n_inputs; i++) sorted[i] = inputs[i];
    qsort(sorted, n_inputs, sizeof *sorted, cmp_str);

    fputs("{\"format\": \"petools-dope-mask\",\n \"format_version\": 1,\n \"created_by\": ", f);
    pe_json_string(f, created_by);
    fputs(",\n \"inputs\": [", f);
    for (size_t i = 0; i < n_inputs; i++) {
        if (i) fputs(", ", f);
        pe_json_string(f, sorted[i]);
    }
    free(sorted);
    fputs("],\n \"model\": ", f);
    if (m->model)
        pe_json_string(f, m->model);
    else
        fputs("null", f);
    fprintf(f, ",\n \"n_heads\": %d, \"n_kv_heads\": %d, \"head_dim\": %d, \"rotary_dim\": %d,\n", m->n_heads,
            m->n_kv_heads, m->head_dim, m->rotary_dim);
    fputs(" \"rope_pairing\": ", f);
    if (m->rotary_dim > 0)
        pe_json_string(f, pe_pairing_name(m->pairing));
    else
        fputs("null", f);
    fprintf(f, ", \"train_len\": %ld,\n \"threshold\": ", L);
    json_num(f, thr);
    fprintf(f, ",\n \"selection\": {\"score\": \"%s\", \"order\": \"%s\", \"top\": %ld, \"r\": %d, "
               "\"stage\": \"%s\", \"prep\": \"%s\", \"tensor\": \"%s\", \"broadcast\": %s, ",
            sel->score, sel->order, sel->top, sel->r, sel->stage, sel->prep, sel->tensor,
            sel->broadcast ? "true" : "false");
    if (sel->ntk_len) {
        fprintf(f, "\"ntk_len\": %ld, \"ntk_factor\": ", sel->ntk_len);
        json_num(f, sel->ntk_factor);
    } else {
        fputs("\"ntk_len\": null, \"ntk_factor\": null", f);
    }
    fputs("},\n \"heads\": [", f);
    for (size_t k = 0; k < n_heads; k++) {
        const pe_mask_head *h = &heads[k];
        fprintf(f, "%s\n  {\"rank\": %zu, \"layer\": %ld, \"tensor\": \"%s\", \"head\": %d, \"kv_head\": %d, "
                   "\"query_heads\": [",
                k ? "," : "", k + 1, h->layer, h->tensor == PE_TENSOR_Q ? "q" : "k", h->head, h->kv_head);
        if (h->tensor == PE_TENSOR_Q || sel->broadcast) {
            fprintf(f, "%d", h->head);
        } else {
            for (int q = h->kv_head * kv_group; q < (h->kv_head + 1) * kv_group; q++)
                fprintf(f, "%s%d", q > h->kv_head * kv_group ? ", " : "", q);
        }
        fputs("], \"score\": ", f);
        json_num(f, h->score);
        fputs(",\n   \"pairs\": [", f);
        pair_list(f, m, h->theta, thr, 0);
        fputs("], \"dims\": [", f);
        pair_list(f, m, h->theta, thr, 1);
        fputs("], \"theta\": [", f);
        pair_list(f, m, h->theta, thr, 2);
        fputs("]}", f);
    }
    fputs(n_heads ? "\n ]}\n" : "]}\n", f);
    return 0;
}
