/* pe_json.h: reading small JSON documents (RFC 8259) into a tree, for the
 * files petools reads back (the DoPE mask, man peentropy(1), MASK FILE).
 *
 * Strict: one value, nothing but white space after it, no comments, no
 * trailing commas, numbers by the JSON grammar, strings valid UTF-8 with
 * their escapes decoded (\u0000 is refused, so a string is a C string).
 * Nesting deeper than 64 is refused.  Errors name the line and column.
 *
 * Ownership: pe_json_parse returns a tree the caller frees with
 * pe_json_free; every pointer into it lives as long as the tree.
 */
#ifndef PE_JSON_H
#define PE_JSON_H

#include <stddef.h>

#include "pe_common.h"

typedef enum {
    PE_JSON_NULL = 0,
    PE_JSON_FALSE,
    PE_JSON_TRUE,
    PE_JSON_NUMBER,
    PE_JSON_STRING,
    PE_JSON_ARRAY,
    PE_JSON_OBJECT
} pe_json_type;

typedef struct pe_json {
    pe_json_type type;
    double number;          /* NUMBER */
    char *string;           /* STRING */
    struct pe_json *items;  /* ARRAY items, OBJECT values (n of them) */
    char **keys;            /* OBJECT keys, in the document's order */
    size_t n;
} pe_json;

/* Parses text[0 .. len).  Returns 0 with *out set, or -1 with e naming the
 * line and column (a data error). */
int pe_json_parse(const char *text, size_t len, pe_json **out, pe_err *e);
void pe_json_free(pe_json *j);

/* The value of key in an object (the first, if repeated), or NULL. */
const pe_json *pe_json_get(const pe_json *obj, const char *key);

/* The name of a type, for messages ("a number"). */
const char *pe_json_type_name(pe_json_type t);

#endif
