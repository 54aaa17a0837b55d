/* pe_mask.c: DoPE masks (see pe_mask.h; the schema: man peentropy(1),
 * MASK FILE). */
#include "pe_mask.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pe_entropy.h"
#include "pe_json.h"
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

int pe_mask_rank(pe_mask_head *heads, size_t n, int desc, size_t n_top, size_t *n_out, pe_err *e)
{
    pe_entropy_cand *cand = pe_alloc(n ? n : 1, sizeof *cand, 0, e);
    pe_mask_head *copy = pe_alloc(n ? n : 1, sizeof *copy, 0, e);
    size_t *order = pe_alloc(n ? n : 1, sizeof *order, 0, e);
    int rc = -1;
    if (!cand || !copy || !order) goto done;
    for (size_t i = 0; i < n; i++) {
        cand[i] = (pe_entropy_cand){heads[i].layer, heads[i].head, heads[i].tensor, heads[i].score};
        copy[i] = heads[i];
    }
    if (pe_entropy_rank(cand, n, desc, n_top, order, n_out, e) < 0) goto done;
    for (size_t k = 0; k < *n_out; k++) heads[k] = copy[order[k]];
    rc = 0;
done:
    free(cand);
    free(copy);
    free(order);
    return rc;
}

void pe_mask_rows(pe_table *t, const pe_mask_head *heads, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        pe_table_int(t, (long long)k + 1);
        pe_table_int(t, heads[k].layer);
        pe_table_int(t, heads[k].head);
        pe_table_int(t, heads[k].kv_head);
        pe_table_str(t, heads[k].tensor == PE_TENSOR_Q ? "q" : "k");
        pe_table_dbl(t, heads[k].score);
        pe_table_end_row(t);
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

/* ---- reading a mask back (--pe dope:MASK, man petools-whatif(7)) ---- */

void pe_mask_free(pe_mask *mk)
{
    if (!mk) return;
    for (size_t i = 0; i < mk->n; i++) {
        free(mk->heads[i].query_heads);
        free(mk->heads[i].pairs);
    }
    free(mk->heads);
    free(mk);
}

/* An integer field in [lo, hi]. */
static int get_int(const pe_json *o, const char *key, long lo, long hi, long *out, const char *path,
                   const char *where, pe_err *e)
{
    const pe_json *v = pe_json_get(o, key);
    if (!v) return pe_fail(e, "%s: %s%shas no \"%s\"", path, where, *where ? "" : "the mask ", key);
    if (v->type != PE_JSON_NUMBER || v->number != floor(v->number) || v->number < (double)lo ||
        v->number > (double)hi)
        return pe_fail(e, "%s: %s\"%s\" must be an integer from %ld to %ld", path, where, key, lo, hi);
    *out = (long)v->number;
    return 0;
}

/* An array of integers in [0, hi]. */
static int get_ints(const pe_json *o, const char *key, long hi, int **out, size_t *n, const char *path,
                    const char *where, pe_err *e)
{
    const pe_json *v = pe_json_get(o, key);
    if (!v || v->type != PE_JSON_ARRAY)
        return pe_fail(e, "%s: %s\"%s\" must be an array of integers", path, where, key);
    if (!(*out = pe_alloc(v->n ? v->n : 1, sizeof **out, 0, e))) return -1;
    for (size_t i = 0; i < v->n; i++) {
        const pe_json *x = &v->items[i];
        if (x->type != PE_JSON_NUMBER || x->number != floor(x->number) || x->number < 0 || x->number > (double)hi)
            return pe_fail(e, "%s: %s\"%s\" must hold integers from 0 to %ld", path, where, key, hi);
        (*out)[i] = (int)x->number;
    }
    *n = v->n;
    return 0;
}

static int read_file(const char *path, char **text, size_t *len, pe_err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) return pe_fail(e, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *b = pe_alloc(cap, 1, 0, e);
    if (!b) {
        fclose(f);
        return -1;
    }
    for (;;) {
        if (n == cap) {
            if (cap >= ((size_t)64 << 20)) {
                free(b);
                fclose(f);
                return pe_fail(e, "%s: larger than 64 MiB: not a mask", path);
            }
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                fclose(f);
                return pe_fail(e, "%s: out of memory", path);
            }
            b = nb;
            cap *= 2;
        }
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        return pe_fail(e, "%s: read error", path);
    }
    *text = b;
    *len = n;
    return 0;
}

int pe_mask_read(const char *path, pe_mask **out, pe_err *e)
{
    char *text = NULL;
    size_t len = 0;
    pe_json *doc = NULL;
    pe_mask *mk = NULL;
    pe_err je;
    long v;
    if (read_file(path, &text, &len, e) < 0) return -1;
    if (pe_json_parse(text, len, &doc, &je) < 0) {
        pe_fail(e, "%s: not JSON: %s", path, je.msg);
        goto bad;
    }
    const pe_json *fmt = pe_json_get(doc, "format");
    if (doc->type != PE_JSON_OBJECT || !fmt || fmt->type != PE_JSON_STRING || strcmp(fmt->string, "petools-dope-mask")) {
        pe_fail(e, "%s: not a DoPE mask (\"format\" is not \"petools-dope-mask\")", path);
        goto bad;
    }
    if (get_int(doc, "format_version", 0, 1000000, &v, path, "", e) < 0) goto bad;
    if (v != 1) {
        pe_fail(e, "%s: format_version %ld is not 1, the only one this version reads", path, v);
        goto bad;
    }
    if (!(mk = pe_alloc(1, sizeof *mk, 1, e))) goto bad;
    static const char *const shape[] = {"n_heads", "n_kv_heads", "head_dim", "rotary_dim"};
    int *dst[] = {&mk->n_heads, &mk->n_kv_heads, &mk->head_dim, &mk->rotary_dim};
    for (int i = 0; i < 4; i++) {
        if (get_int(doc, shape[i], i == 3 ? 0 : 1, 1 << 20, &v, path, "", e) < 0) goto bad;
        *dst[i] = (int)v;
    }
    const pe_json *rp = pe_json_get(doc, "rope_pairing");
    mk->pairing = -1;
    if (rp && rp->type == PE_JSON_STRING) {
        pe_pairing pp;
        if (pe_pairing_parse(rp->string, &pp) < 0) {
            pe_fail(e, "%s: \"rope_pairing\" must be \"half\", \"interleaved\" or null", path);
            goto bad;
        }
        mk->pairing = (int)pp;
    } else if (!rp || rp->type != PE_JSON_NULL) {
        pe_fail(e, "%s: \"rope_pairing\" must be \"half\", \"interleaved\" or null", path);
        goto bad;
    }
    const pe_json *hs = pe_json_get(doc, "heads");
    if (!hs || hs->type != PE_JSON_ARRAY) {
        pe_fail(e, "%s: \"heads\" must be an array", path);
        goto bad;
    }
    if (!(mk->heads = pe_alloc(hs->n ? hs->n : 1, sizeof *mk->heads, 1, e))) goto bad;
    for (size_t i = 0; i < hs->n; i++) {
        const pe_json *h = &hs->items[i];
        pe_mask_entry *me = &mk->heads[i];
        char where[64];
        snprintf(where, sizeof where, "heads[%zu]: ", i);
        mk->n = i + 1;
        if (h->type != PE_JSON_OBJECT) {
            pe_fail(e, "%s: %snot an object", path, where);
            goto bad;
        }
        const pe_json *tn = pe_json_get(h, "tensor");
        if (!tn || tn->type != PE_JSON_STRING || (strcmp(tn->string, "q") && strcmp(tn->string, "k"))) {
            pe_fail(e, "%s: %s\"tensor\" must be \"q\" or \"k\"", path, where);
            goto bad;
        }
        me->tensor = tn->string[0] == 'q' ? PE_TENSOR_Q : PE_TENSOR_K;
        if (get_int(h, "layer", 0, 1L << 30, &me->layer, path, where, e) < 0) goto bad;
        if (get_int(h, "head", 0, mk->n_heads - 1, &v, path, where, e) < 0) goto bad;
        me->head = (int)v;
        if (get_int(h, "kv_head", 0, mk->n_kv_heads - 1, &v, path, where, e) < 0) goto bad;
        me->kv_head = (int)v;
        if (get_ints(h, "query_heads", mk->n_heads - 1, &me->query_heads, &me->n_query, path, where, e) < 0 ||
            get_ints(h, "pairs", mk->rotary_dim / 2 - 1 < 0 ? 0 : mk->rotary_dim / 2 - 1, &me->pairs, &me->n_pairs,
                     path, where, e) < 0)
            goto bad;
        if (mk->rotary_dim == 0 && me->n_pairs) {
            pe_fail(e, "%s: %s\"pairs\" must be empty: rotary_dim is 0", path, where);
            goto bad;
        }
    }
    free(text);
    pe_json_free(doc);
    *out = mk;
    return 0;
bad:
    free(text);
    pe_json_free(doc);
    pe_mask_free(mk);
    return -1;
}

int pe_mask_fits(const pe_mask *mk, const char *mask_path, const pe_meta *m, const char *file, pe_err *e)
{
    static const char *const names[] = {"n_heads", "n_kv_heads", "head_dim", "rotary_dim"};
    const int have[] = {mk->n_heads, mk->n_kv_heads, mk->head_dim, mk->rotary_dim};
    const int want[] = {m->n_heads, m->n_kv_heads, m->head_dim, m->rotary_dim};
    for (int i = 0; i < 4; i++)
        if (have[i] != want[i])
            return pe_fail(e, "%s: made for another model: %s %d, but %s has %d", mask_path, names[i], have[i], file,
                           want[i]);
    if (m->rotary_dim > 0 && mk->pairing != (int)m->pairing)
        return pe_fail(e, "%s: made for another model: rope_pairing %s, but %s has %s", mask_path,
                       mk->pairing < 0 ? "null" : pe_pairing_name((pe_pairing)mk->pairing), file,
                       pe_pairing_name(m->pairing));
    for (size_t i = 0; i < mk->n; i++)
        if (pe_meta_find_layer(m, mk->heads[i].layer) < 0)
            return pe_fail(e, "%s: heads[%zu]: layer %ld is not in %s", mask_path, i, mk->heads[i].layer, file);
    return 0;
}
