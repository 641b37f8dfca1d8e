#include "cfg.h"
#include "errors.h"
#include "parse.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct walker {
    const char *name;
    yaml_document_t *doc;
    char *err;
    size_t errlen;
} walker;

int dcem_cfg_error(char *err, size_t errlen, const char *name, int line, const char *key,
                   const char *fmt, ...)
{
    if (err && errlen) {
        int n = snprintf(err, errlen, "%s:%d: %s: ", name, line, key && *key ? key : "(top)");
        if (n >= 0 && (size_t)n < errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return DCEM_ECONFIG;
}

static int node_line(const yaml_node_t *n)
{
    return (int)n->start_mark.line + 1;
}

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static void *at(void *base, size_t off)
{
    return (char *)base + off;
}

static void apply_defaults(const dcem_cfg_field *t, void *out)
{
    for (; t->type != DCEM_CFG_END; t++) {
        void *p = at(out, t->offset);
        switch (t->type) {
        case DCEM_CFG_INT: *(long long *)p = isnan(t->def) ? 0 : (long long)t->def; break;
        case DCEM_CFG_DOUBLE: *(double *)p = t->def; break;
        case DCEM_CFG_BOOL:
        case DCEM_CFG_ENUM: *(int *)p = isnan(t->def) ? 0 : (int)t->def; break;
        case DCEM_CFG_MONTH:
        case DCEM_CFG_LINE: *(int *)p = 0; break;
        case DCEM_CFG_STRING:
        case DCEM_CFG_DATE:
            if (t->def_str) snprintf(p, t->type == DCEM_CFG_DATE ? 11 : t->size, "%s", t->def_str);
            else *(char *)p = '\0';
            break;
        case DCEM_CFG_MAP: apply_defaults(t->sub, p); break;
        case DCEM_CFG_LIST: *(size_t *)at(out, t->count_offset) = 0; break;
        case DCEM_CFG_END: break;
        }
    }
}

static int check_range(walker *w, const dcem_cfg_field *f, const char *path, int line, double v)
{
    if (!isnan(f->min) && ((f->flags & DCEM_CFG_MIN_EXCL) ? v <= f->min : v < f->min))
        return dcem_cfg_error(w->err, w->errlen, w->name, line, path, "must be %s %g, got %g",
                              (f->flags & DCEM_CFG_MIN_EXCL) ? ">" : ">=", f->min, v);
    if (!isnan(f->max) && v > f->max)
        return dcem_cfg_error(w->err, w->errlen, w->name, line, path, "must be <= %g, got %g",
                              f->max, v);
    return 0;
}

static int walk_map(walker *w, yaml_node_t *node, const dcem_cfg_field *table, void *out,
                    const char *path);

static int run_check(walker *w, const dcem_cfg_field *f, const void *value, size_t count,
                     int line, const char *path)
{
    char why[256] = "invalid value";
    if (!f->check || !f->check(value, count, why, sizeof why)) return 0;
    return dcem_cfg_error(w->err, w->errlen, w->name, line, path, "%s", why);
}

/* One scalar of type `type` into p; f gives range, size and names. */
static int set_scalar(walker *w, const dcem_cfg_field *f, dcem_cfg_type type, yaml_node_t *n,
                      void *p, size_t size, const char *path)
{
    int line = node_line(n);
    if (n->type != YAML_SCALAR_NODE)
        return dcem_cfg_error(w->err, w->errlen, w->name, line, path, "expected a single value");
    const char *s = scalar(n);
    switch (type) {
    case DCEM_CFG_INT: {
        char *end;
        errno = 0;
        long long v = *s ? strtoll(s, &end, 10) : 0;
        if (!*s || *end || errno == ERANGE)
            return dcem_cfg_error(w->err, w->errlen, w->name, line, path,
                                  "expected an integer, got '%s'", s);
        int rc = check_range(w, f, path, line, (double)v);
        if (rc) return rc;
        *(long long *)p = v;
        return 0;
    }
    case DCEM_CFG_DOUBLE: {
        double v;
        if (dcem_parse_double(s, strlen(s), &v))
            return dcem_cfg_error(w->err, w->errlen, w->name, line, path,
                                  "expected a number, got '%s'", s);
        int rc = check_range(w, f, path, line, v);
        if (rc) return rc;
        *(double *)p = v;
        return 0;
    }
    case DCEM_CFG_STRING:
        if (strlen(s) >= size)
            return dcem_cfg_error(w->err, w->errlen, w->name, line, path,
                                  "longer than %zu characters", size - 1);
        if (!*s && (f->flags & DCEM_CFG_REQUIRED))
            return dcem_cfg_error(w->err, w->errlen, w->name, line, path, "must not be empty");
        memcpy(p, s, strlen(s) + 1);
        return 0;
    case DCEM_CFG_BOOL: {
        static const char *const yes[] = {"true", "yes", "on", NULL};
        static const char *const no[] = {"false", "no", "off", NULL};
        for (int i = 0; yes[i]; i++) {
            if (!strcmp(s, yes[i])) return *(int *)p = 1, 0;
            if (!strcmp(s, no[i])) return *(int *)p = 0, 0;
        }
        return dcem_cfg_error(w->err, w->errlen, w->name, line, path,
                              "expected true or false, got '%s'", s);
    }
    case DCEM_CFG_ENUM: {
        char valid[256] = "";
        size_t used = 0;
        for (int i = 0; f->names[i]; i++) {
            if (!strcmp(s, f->names[i])) return *(int *)p = i, 0;
            int k = snprintf(valid + used, sizeof valid - used, "%s%s", i ? ", " : "",
                             f->names[i]);
            if (k > 0 && used + (size_t)k < sizeof valid) used += (size_t)k;
        }
        return dcem_cfg_error(w->err, w->errlen, w->name, line, path,
                              "'%s' is not one of: %s", s, valid);
    }
    case DCEM_CFG_DATE: {
        int64_t day;
        if (dcem_parse_date(s, strlen(s), &day))
            return dcem_cfg_error(w->err, w->errlen, w->name, line, path,
                                  "expected a date YYYY-MM-DD, got '%s'", s);
        memcpy(p, s, 11);
        return 0;
    }
    case DCEM_CFG_MONTH: {
        long long month;
        if (dcem_parse_month(s, strlen(s), &month))
            return dcem_cfg_error(w->err, w->errlen, w->name, line, path,
                                  "expected a month YYYY-MM, got '%s'", s);
        *(int *)p = (int)month;
        return 0;
    }
    default:
        return dcem_cfg_error(w->err, w->errlen, w->name, line, path, "unsupported type");
    }
}

static int walk_list(walker *w, const dcem_cfg_field *f, yaml_node_t *n, void *out,
                     const char *path)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return dcem_cfg_error(w->err, w->errlen, w->name, node_line(n), path, "expected a list");
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (!isnan(f->max) && (double)count > f->max)
        return dcem_cfg_error(w->err, w->errlen, w->name, node_line(n), path,
                              "at most %g items allowed, got %zu", f->max, count);
    if (!isnan(f->min) && (double)count < f->min)
        return dcem_cfg_error(w->err, w->errlen, w->name, node_line(n), path,
                              "at least %g items required, got %zu", f->min, count);
    char *base = at(out, f->offset);
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *item = yaml_document_get_node(w->doc, n->data.sequence.items.start[i]);
        char ipath[256];
        snprintf(ipath, sizeof ipath, "%.200s[%zu]", path, i); /* paths are for messages */
        void *p = base + i * f->size;
        int rc;
        if (f->sub) {
            apply_defaults(f->sub, p);
            rc = walk_map(w, item, f->sub, p, ipath);
        } else {
            dcem_cfg_field scalar_f = *f;
            scalar_f.min = scalar_f.max = NAN; /* list bounds are item counts */
            rc = set_scalar(w, &scalar_f, f->item, item, p, f->size, ipath);
        }
        if (rc) return rc;
    }
    *(size_t *)at(out, f->count_offset) = count;
    return run_check(w, f, base, count, node_line(n), path);
}

static void valid_keys(const dcem_cfg_field *table, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (const dcem_cfg_field *f = table; f->type != DCEM_CFG_END; f++) {
        if (f->type == DCEM_CFG_LINE) continue;
        int k = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", f->key);
        if (k < 0 || used + (size_t)k >= len) break;
        used += (size_t)k;
    }
}

static int walk_map(walker *w, yaml_node_t *node, const dcem_cfg_field *table, void *out,
                    const char *path)
{
    if (node->type != YAML_MAPPING_NODE)
        return dcem_cfg_error(w->err, w->errlen, w->name, node_line(node), path,
                              "expected a mapping of keys to values");
    size_t nfields = 0;
    while (table[nfields].type != DCEM_CFG_END) nfields++;
    unsigned char seen[64] = {0};
    if (nfields > sizeof seen)
        return dcem_cfg_error(w->err, w->errlen, w->name, node_line(node), path,
                              "table too large");

    for (yaml_node_pair_t *pr = node->data.mapping.pairs.start; pr < node->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = yaml_document_get_node(w->doc, pr->key);
        yaml_node_t *v = yaml_document_get_node(w->doc, pr->value);
        if (k->type != YAML_SCALAR_NODE)
            return dcem_cfg_error(w->err, w->errlen, w->name, node_line(k), path,
                                  "keys must be plain names");
        const char *key = scalar(k);
        char kpath[256];
        snprintf(kpath, sizeof kpath, "%.180s%s%.60s", path, *path ? "." : "", key);
        size_t i;
        for (i = 0; i < nfields; i++)
            if (table[i].type != DCEM_CFG_LINE && !strcmp(table[i].key, key)) break;
        if (i == nfields) {
            char valid[512];
            valid_keys(table, valid, sizeof valid);
            return dcem_cfg_error(w->err, w->errlen, w->name, node_line(k), kpath,
                                  "unknown key (valid: %s)", valid);
        }
        if (seen[i])
            return dcem_cfg_error(w->err, w->errlen, w->name, node_line(k), kpath,
                                  "duplicate key");
        seen[i] = 1;
        const dcem_cfg_field *f = &table[i];
        int rc;
        if (f->type == DCEM_CFG_MAP) rc = walk_map(w, v, f->sub, at(out, f->offset), kpath);
        else if (f->type == DCEM_CFG_LIST) rc = walk_list(w, f, v, out, kpath);
        else {
            rc = set_scalar(w, f, f->type, v, at(out, f->offset), f->size, kpath);
            if (!rc) rc = run_check(w, f, at(out, f->offset), 1, node_line(v), kpath);
        }
        if (rc) return rc;
    }
    for (size_t i = 0; i < nfields; i++) {
        const dcem_cfg_field *f = &table[i];
        if (f->type == DCEM_CFG_LINE) *(int *)at(out, f->offset) = node_line(node);
        else if (!seen[i] && (f->flags & DCEM_CFG_REQUIRED))
            return dcem_cfg_error(w->err, w->errlen, w->name, node_line(node),
                                  *path ? path : f->key, "missing required key '%s'", f->key);
    }
    return 0;
}

int dcem_cfg_parse(const char *name, const char *buf, size_t len, const dcem_cfg_field *table,
                   void *out, char *err, size_t errlen)
{
    apply_defaults(table, out);
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) return DCEM_ENOMEM;
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    if (!yaml_parser_load(&parser, &doc)) {
        int rc = dcem_cfg_error(err, errlen, name, (int)parser.problem_mark.line + 1, "",
                                "YAML syntax: %s", parser.problem ? parser.problem : "error");
        yaml_parser_delete(&parser);
        return rc;
    }
    walker w = {name, &doc, err, errlen};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    int rc = root ? walk_map(&w, root, table, out, "")
                  : dcem_cfg_error(err, errlen, name, 1, "", "empty document");
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}
