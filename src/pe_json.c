/* pe_json.c: a strict recursive-descent JSON reader (see pe_json.h). */
#include "pe_json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

typedef struct parser {
    const char *s, *end, *p;
    pe_err *e;
} parser;

static int fail_at(parser *ps, const char *what)
{
    size_t line = 1, col = 1;
    for (const char *c = ps->s; c < ps->p && c < ps->end; c++) {
        if (*c == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    return pe_fail(ps->e, "line %zu, column %zu: %s", line, col, what);
}

static void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static int literal(parser *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return fail_at(ps, "not a JSON value");
    ps->p += n;
    return 0;
}

static int hex4(parser *ps, unsigned *out)
{
    unsigned v = 0;
    if (ps->end - ps->p < 4) return fail_at(ps, "\\u needs four hex digits");
    for (int i = 0; i < 4; i++) {
        char c = ps->p[i];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16) return fail_at(ps, "\\u needs four hex digits");
        v = v * 16 + d;
    }
    ps->p += 4;
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The length of a valid UTF-8 sequence at p (0: invalid). */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    unsigned cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if ((size_t)(end - p) < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return n;
}

/* A string at ps->p (on the opening quote) into a new C string. */
static int string(parser *ps, char **out)
{
    ps->p++;
    /* The decoded string is never longer than the encoded one. */
    const char *q = ps->p;
    while (q < ps->end && *q != '"') q += *q == '\\' && q + 1 < ps->end ? 2 : 1;
    if (q >= ps->end) return fail_at(ps, "unterminated string");
    char *o = pe_alloc((size_t)(q - ps->p) + 1, 1, 0, ps->e), *w = o;
    if (!o) return -1;
    while (*ps->p != '"') {
        unsigned char c = (unsigned char)*ps->p;
        if (c < 0x20) {
            free(o);
            return fail_at(ps, "control character in a string");
        }
        if (c != '\\') {
            size_t n = utf8_len((const unsigned char *)ps->p, (const unsigned char *)ps->end);
            if (!n) {
                free(o);
                return fail_at(ps, "invalid UTF-8 in a string");
            }
            memcpy(w, ps->p, n);
            w += n;
            ps->p += n;
            continue;
        }
        ps->p++;
        char esc = *ps->p++;
        unsigned cp;
        switch (esc) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '/': *w++ = '/'; break;
        case 'b': *w++ = '\b'; break;
        case 'f': *w++ = '\f'; break;
        case 'n': *w++ = '\n'; break;
        case 'r': *w++ = '\r'; break;
        case 't': *w++ = '\t'; break;
        case 'u':
            if (hex4(ps, &cp) < 0) goto bad;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                    fail_at(ps, "unpaired surrogate in a string");
                    goto bad;
                }
                ps->p += 2;
                if (hex4(ps, &lo) < 0) goto bad;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    fail_at(ps, "unpaired surrogate in a string");
                    goto bad;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                fail_at(ps, "unpaired surrogate in a string");
                goto bad;
            }
            if (cp == 0) {
                fail_at(ps, "\\u0000 in a string");
                goto bad;
            }
            w += put_utf8(w, cp);
            break;
        default:
            ps->p--;
            fail_at(ps, "unknown escape in a string");
            goto bad;
        }
    }
    ps->p++;
    *w = 0;
    *out = o;
    return 0;
bad:
    free(o);
    return -1;
}

static int digits(parser *ps)
{
    const char *b = ps->p;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    return ps->p > b;
}

/* A number by the JSON grammar, converted with strtod (the tools run in the
 * C locale). */
static int number(parser *ps, double *out)
{
    const char *b = ps->p;
    if (ps->p < ps->end && *ps->p == '-') ps->p++;
    if (ps->p < ps->end && *ps->p == '0')
        ps->p++;
    else if (!digits(ps))
        return fail_at(ps, "not a JSON value");
    if (ps->p < ps->end && *ps->p == '.') {
        ps->p++;
        if (!digits(ps)) return fail_at(ps, "a number needs digits after '.'");
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
        if (!digits(ps)) return fail_at(ps, "a number needs digits in its exponent");
    }
    char buf[64];
    size_t n = (size_t)(ps->p - b);
    if (n >= sizeof buf) {
        ps->p = b;
        return fail_at(ps, "number too long");
    }
    memcpy(buf, b, n);
    buf[n] = 0;
    *out = strtod(buf, NULL);
    return 0;
}

static int value(parser *ps, pe_json *v, int depth);

/* Appends a zeroed item to v (array or object). */
static pe_json *push(parser *ps, pe_json *v, size_t *cap)
{
    if (v->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        pe_json *ni = realloc(v->items, nc * sizeof *ni);
        if (!ni) {
            pe_fail(ps->e, "out of memory reading JSON");
            return NULL;
        }
        v->items = ni;
        if (v->type == PE_JSON_OBJECT) {
            char **nk = realloc(v->keys, nc * sizeof *nk);
            if (!nk) {
                pe_fail(ps->e, "out of memory reading JSON");
                return NULL;
            }
            v->keys = nk;
        }
        *cap = nc;
    }
    pe_json *it = &v->items[v->n];
    memset(it, 0, sizeof *it);
    if (v->type == PE_JSON_OBJECT) v->keys[v->n] = NULL;
    v->n++;
    return it;
}

static int container(parser *ps, pe_json *v, int depth)
{
    char close = v->type == PE_JSON_ARRAY ? ']' : '}';
    size_t cap = 0;
    if (depth >= MAX_DEPTH) return fail_at(ps, "nested too deeply");
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return 0;
    }
    for (;;) {
        pe_json *it = push(ps, v, &cap);
        if (!it) return -1;
        skip_ws(ps);
        if (v->type == PE_JSON_OBJECT) {
            if (ps->p >= ps->end || *ps->p != '"') return fail_at(ps, "expected a string key");
            if (string(ps, &v->keys[v->n - 1]) < 0) return -1;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') return fail_at(ps, "expected ':'");
            ps->p++;
        }
        if (value(ps, it, depth + 1) < 0) return -1;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == close) {
            ps->p++;
            return 0;
        }
        return fail_at(ps, v->type == PE_JSON_ARRAY ? "expected ',' or ']'" : "expected ',' or '}'");
    }
}

static int value(parser *ps, pe_json *v, int depth)
{
    skip_ws(ps);
    if (ps->p >= ps->end) return fail_at(ps, "unexpected end of the document");
    switch (*ps->p) {
    case '{': v->type = PE_JSON_OBJECT; return container(ps, v, depth);
    case '[': v->type = PE_JSON_ARRAY; return container(ps, v, depth);
    case '"': v->type = PE_JSON_STRING; return string(ps, &v->string);
    case 't': v->type = PE_JSON_TRUE; return literal(ps, "true");
    case 'f': v->type = PE_JSON_FALSE; return literal(ps, "false");
    case 'n': v->type = PE_JSON_NULL; return literal(ps, "null");
    default: v->type = PE_JSON_NUMBER; return number(ps, &v->number);
    }
}

static void release(pe_json *j)
{
    for (size_t i = 0; i < j->n; i++) {
        release(&j->items[i]);
        if (j->keys) free(j->keys[i]);
    }
    free(j->items);
    free(j->keys);
    free(j->string);
}

int pe_json_parse(const char *text, size_t len, pe_json **out, pe_err *e)
{
    parser ps = {text, text + len, text, e};
    pe_json *root = pe_alloc(1, sizeof *root, 1, e);
    if (!root) return -1;
    if (value(&ps, root, 0) < 0) goto bad;
    skip_ws(&ps);
    if (ps.p != ps.end) {
        fail_at(&ps, "text after the JSON value");
        goto bad;
    }
    *out = root;
    return 0;
bad:
    pe_json_free(root);
    return -1;
}

void pe_json_free(pe_json *j)
{
    if (!j) return;
    release(j);
    free(j);
}

const pe_json *pe_json_get(const pe_json *obj, const char *key)
{
    if (!obj || obj->type != PE_JSON_OBJECT) return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
    return NULL;
}

const char *pe_json_type_name(pe_json_type t)
{
    static const char *const names[] = {"null", "false", "true", "a number", "a string", "an array", "an object"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}
