#include "report_table.h"
#include "errors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

dcem_rt_table *dcem_rt_new(const char *file, const char *sheet)
{
    dcem_rt_table *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->file = file;
    t->sheet = sheet;
    return t;
}

void dcem_rt_free(dcem_rt_table *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
        free(t->cells[i].text);
    free(t->cells);
    free(t);
}

int dcem_rt_column_add(dcem_rt_table *t, const char *zh, const char *en, double width)
{
    if (t->n_cols == DCEM_RT_MAX_COLUMNS || t->n_rows) return DCEM_EFULL;
    t->cols[t->n_cols++] = (dcem_rt_column){zh, en, width};
    return 0;
}

int dcem_rt_row(dcem_rt_table *t)
{
    if (t->n_rows == DCEM_RT_MAX_ROWS) return DCEM_EFULL;
    if (t->n_rows == t->cap_rows) {
        size_t cap = t->cap_rows ? t->cap_rows * 2 : 16;
        dcem_rt_cell *c = realloc(t->cells, cap * t->n_cols * sizeof *c);
        if (!c) return DCEM_ENOMEM;
        t->cells = c;
        t->cap_rows = cap;
    }
    memset(&t->cells[t->n_rows * t->n_cols], 0, t->n_cols * sizeof *t->cells);
    t->n_rows++;
    return 0;
}

static dcem_rt_cell *last(dcem_rt_table *t, size_t col)
{
    if (!t->n_rows || col >= t->n_cols) return NULL;
    return &t->cells[(t->n_rows - 1) * t->n_cols + col];
}

int dcem_rt_text(dcem_rt_table *t, size_t col, const char *s)
{
    dcem_rt_cell *c = last(t, col);
    if (!c) return DCEM_EINVAL;
    char *copy = strdup(s ? s : "");
    if (!copy) return DCEM_ENOMEM;
    free(c->text);
    *c = (dcem_rt_cell){.kind = DCEM_RT_STR, .style = DCEM_RT_TEXT, .text = copy};
    return 0;
}

int dcem_rt_num(dcem_rt_table *t, size_t col, double v, int style)
{
    dcem_rt_cell *c = last(t, col);
    if (!c) return DCEM_EINVAL;
    free(c->text);
    *c =
        (dcem_rt_cell){.kind = isfinite(v) ? DCEM_RT_NUM : DCEM_RT_EMPTY, .style = style, .num = v};
    return 0;
}

int dcem_rt_bool(dcem_rt_table *t, size_t col, int v)
{
    dcem_rt_cell *c = last(t, col);
    if (!c) return DCEM_EINVAL;
    free(c->text);
    *c = (dcem_rt_cell){.kind = DCEM_RT_TRUTH, .style = DCEM_RT_BOOL, .num = v ? 1 : 0};
    return 0;
}

int dcem_rt_date(dcem_rt_table *t, size_t col, const char *yyyy_mm_dd)
{
    int rc = dcem_rt_text(t, col, yyyy_mm_dd);
    if (!rc) last(t, col)->style = DCEM_RT_DATE;
    return rc;
}

const dcem_rt_cell *dcem_rt_at(const dcem_rt_table *t, size_t row, size_t col)
{
    return row < t->n_rows && col < t->n_cols ? &t->cells[row * t->n_cols + col] : NULL;
}

int dcem_rt_decimals(int style)
{
    switch (style) {
    case DCEM_RT_INT:
        return 0;
    case DCEM_RT_KWH:
        return 3;
    case DCEM_RT_RATIO:
    case DCEM_RT_SHARE:
        return 6;
    case DCEM_RT_CNY:
        return 2;
    case DCEM_RT_RATE:
        return 4;
    case DCEM_RT_PERCENT:
        return 1;
    default:
        return -1;
    }
}

void dcem_rt_format_num(const dcem_rt_cell *c, char *buf, size_t n)
{
    int d = dcem_rt_decimals(c->style);
    if (d >= 0) {
        snprintf(buf, n, "%.*f", d, c->num);
        /* never "-0.000": the JSON it mirrors has no negative zero */
        if (buf[0] == '-' && strspn(buf + 1, "0.") == strlen(buf + 1))
            memmove(buf, buf + 1, strlen(buf));
        return;
    }
    snprintf(buf, n, "%.15g", c->num);
    if (strtod(buf, NULL) != c->num) snprintf(buf, n, "%.17g", c->num);
}

static int put_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) return fputs(s, f) < 0 ? -1 : 0;
    if (fputc('"', f) == EOF) return -1;
    for (; *s; s++) {
        if (*s == '"' && fputc('"', f) == EOF) return -1;
        if (fputc(*s, f) == EOF) return -1;
    }
    return fputc('"', f) == EOF ? -1 : 0;
}

int dcem_rt_write_csv(const dcem_rt_table *t, FILE *f)
{
    int bad = fputs("\xEF\xBB\xBF", f) < 0;
    for (size_t j = 0; j < t->n_cols && !bad; j++) {
        char h[256];
        snprintf(h, sizeof h, "%s %s", t->cols[j].zh, t->cols[j].en);
        bad |= (j && fputc(',', f) == EOF) || put_field(f, h);
    }
    bad |= fputc('\n', f) == EOF;
    for (size_t i = 0; i < t->n_rows && !bad; i++) {
        for (size_t j = 0; j < t->n_cols && !bad; j++) {
            const dcem_rt_cell *c = dcem_rt_at(t, i, j);
            char num[64] = "";
            const char *s = "";
            if (c->kind == DCEM_RT_STR)
                s = c->text;
            else if (c->kind == DCEM_RT_TRUTH)
                s = c->num ? "true" : "false";
            else if (c->kind == DCEM_RT_NUM)
                dcem_rt_format_num(c, num, sizeof num), s = num;
            bad |= (j && fputc(',', f) == EOF) || put_field(f, s);
        }
        bad |= fputc('\n', f) == EOF;
    }
    return bad || ferror(f) ? DCEM_ESTORAGE : 0;
}
