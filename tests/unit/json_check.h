/* A strict little JSON reader for tests (RFC 8259: no trailing commas, no
 * comments, no NaN, control characters escaped, valid \u escapes, one
 * value and nothing after it), so that a command's --json output is
 * checked for well-formedness and then field by field. Header-only, no
 * GLib. */
#ifndef CUDALINK_JSON_CHECK_H
#define CUDALINK_JSON_CHECK_H

/* each test uses some of these */
#define JSON_CHECK_FN static __attribute__((unused))

#include <stdlib.h>
#include <string.h>

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_value {
  json_type type;
  int boolean;
  double number;
  char *string;               /* JSON_STRING, decoded to UTF-8 */
  struct json_value **items;  /* JSON_ARRAY / JSON_OBJECT values */
  char **keys;                /* JSON_OBJECT keys */
  size_t count;
} json_value;

typedef struct json_reader {
  const char *p;
  int depth;
} json_reader;

JSON_CHECK_FN void
json_free(json_value *v)
{
  if (!v)
    return;
  for (size_t i = 0; i < v->count; i++) {
    json_free(v->items[i]);
    if (v->keys)
      free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  free(v->string);
  free(v);
}

JSON_CHECK_FN void
json_space(json_reader *r)
{
  while (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')
    r->p++;
}

JSON_CHECK_FN int
json_hex4(const char *p, unsigned *out)
{
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
      v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      v |= (unsigned)(c - 'A' + 10);
    else
      return 0;
  }
  *out = v;
  return 1;
}

JSON_CHECK_FN size_t
json_put_utf8(char *o, unsigned cp)
{
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xc0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xe0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
  }
  o[0] = (char)(0xf0 | (cp >> 18));
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
  o[3] = (char)(0x80 | (cp & 0x3f));
  return 4;
}

/* A string at r->p (on its opening quote); malloc'd, or NULL. */
JSON_CHECK_FN char *
json_read_string(json_reader *r)
{
  const char *p = r->p + 1;
  size_t cap = strlen(p) + 1, n = 0;
  char *out = malloc(cap);
  if (!out)
    return NULL;
  for (;;) {
    unsigned char c = (unsigned char)*p;
    if (c == '"') {
      p++;
      break;
    }
    if (c < 0x20) /* control characters must be escaped; NUL ends the text */
      goto bad;
    if (c != '\\') {
      out[n++] = (char)c;
      p++;
      continue;
    }
    p++;
    switch (*p) {
    case '"':
    case '\\':
    case '/':
      out[n++] = *p++;
      break;
    case 'b':
      out[n++] = '\b', p++;
      break;
    case 'f':
      out[n++] = '\f', p++;
      break;
    case 'n':
      out[n++] = '\n', p++;
      break;
    case 'r':
      out[n++] = '\r', p++;
      break;
    case 't':
      out[n++] = '\t', p++;
      break;
    case 'u': {
      unsigned cp, lo;
      if (!json_hex4(p + 1, &cp))
        goto bad;
      p += 5;
      if (cp >= 0xd800 && cp <= 0xdbff) {
        if (p[0] != '\\' || p[1] != 'u' || !json_hex4(p + 2, &lo) || lo < 0xdc00 || lo > 0xdfff)
          goto bad;
        p += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
      } else if (cp >= 0xdc00 && cp <= 0xdfff) {
        goto bad;
      }
      if (cp == 0)
        goto bad; /* would cut the C string */
      n += json_put_utf8(out + n, cp);
      break;
    }
    default:
      goto bad;
    }
  }
  out[n] = '\0';
  r->p = p;
  return out;
bad:
  free(out);
  return NULL;
}

static json_value *json_read_value(json_reader *r);

JSON_CHECK_FN int
json_push(json_value *v, json_value *item, char *key)
{
  json_value **items = realloc(v->items, (v->count + 1) * sizeof *items);
  if (!items)
    return 0;
  v->items = items;
  if (v->type == JSON_OBJECT) {
    char **keys = realloc(v->keys, (v->count + 1) * sizeof *keys);
    if (!keys)
      return 0;
    v->keys = keys;
    v->keys[v->count] = key;
  }
  v->items[v->count++] = item;
  return 1;
}

JSON_CHECK_FN int
json_read_number(json_reader *r, json_value *v)
{
  const char *p = r->p;
  if (*p == '-')
    p++;
  if (*p == '0')
    p++;
  else if (*p >= '1' && *p <= '9')
    while (*p >= '0' && *p <= '9')
      p++;
  else
    return 0;
  if (*p == '.') {
    p++;
    if (!(*p >= '0' && *p <= '9'))
      return 0;
    while (*p >= '0' && *p <= '9')
      p++;
  }
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '+' || *p == '-')
      p++;
    if (!(*p >= '0' && *p <= '9'))
      return 0;
    while (*p >= '0' && *p <= '9')
      p++;
  }
  v->number = strtod(r->p, NULL);
  r->p = p;
  return 1;
}

JSON_CHECK_FN json_value *
json_read_value(json_reader *r)
{
  json_value *v = calloc(1, sizeof *v);
  if (!v || ++r->depth > 64)
    goto bad;
  json_space(r);
  switch (*r->p) {
  case 'n':
    if (strncmp(r->p, "null", 4) != 0)
      goto bad;
    v->type = JSON_NULL;
    r->p += 4;
    break;
  case 't':
  case 'f':
    v->type = JSON_BOOL;
    v->boolean = *r->p == 't';
    if (strncmp(r->p, v->boolean ? "true" : "false", v->boolean ? 4 : 5) != 0)
      goto bad;
    r->p += v->boolean ? 4 : 5;
    break;
  case '"':
    v->type = JSON_STRING;
    if (!(v->string = json_read_string(r)))
      goto bad;
    break;
  case '[':
  case '{': {
    int object = *r->p == '{';
    char close = object ? '}' : ']';
    v->type = object ? JSON_OBJECT : JSON_ARRAY;
    r->p++;
    json_space(r);
    if (*r->p == close) {
      r->p++;
      break;
    }
    for (;;) {
      char *key = NULL;
      json_value *item;
      json_space(r);
      if (object) {
        if (*r->p != '"' || !(key = json_read_string(r)))
          goto bad;
        json_space(r);
        if (*r->p != ':') {
          free(key);
          goto bad;
        }
        r->p++;
      }
      if (!(item = json_read_value(r)) || !json_push(v, item, key)) {
        json_free(item);
        free(key);
        goto bad;
      }
      json_space(r);
      if (*r->p == ',') {
        r->p++;
        continue;
      }
      if (*r->p != close)
        goto bad;
      r->p++;
      break;
    }
    break;
  }
  default:
    v->type = JSON_NUMBER;
    if (!json_read_number(r, v))
      goto bad;
  }
  r->depth--;
  return v;
bad:
  json_free(v);
  return NULL;
}

/* The one value text holds (surrounding white space allowed), or NULL. */
JSON_CHECK_FN json_value *
json_parse(const char *text)
{
  json_reader r = {text, 0};
  json_value *v = json_read_value(&r);
  if (!v)
    return NULL;
  json_space(&r);
  if (*r.p) {
    json_free(v);
    return NULL;
  }
  return v;
}

/* An object's member, or NULL. */
JSON_CHECK_FN const json_value *
json_get(const json_value *obj, const char *key)
{
  if (!obj || obj->type != JSON_OBJECT)
    return NULL;
  for (size_t i = 0; i < obj->count; i++)
    if (strcmp(obj->keys[i], key) == 0)
      return obj->items[i];
  return NULL;
}

/* A member's string ("" when absent or not a string). */
JSON_CHECK_FN const char *
json_str(const json_value *obj, const char *key)
{
  const json_value *v = json_get(obj, key);
  return v && v->type == JSON_STRING ? v->string : "";
}

/* A member's number (-12345 when absent or not a number). */
JSON_CHECK_FN double
json_num(const json_value *obj, const char *key)
{
  const json_value *v = json_get(obj, key);
  return v && v->type == JSON_NUMBER ? v->number : -12345.0;
}

JSON_CHECK_FN int
json_is_null(const json_value *obj, const char *key)
{
  const json_value *v = json_get(obj, key);
  return v && v->type == JSON_NULL;
}

#endif
