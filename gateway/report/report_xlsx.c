#include "report_xlsx.h"
#include "calendar.h"
#include "errors.h"
#include "parse.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xlsxwriter.h>

/* Excel number formats per dcem_rt_style; NULL: the cell's default. */
static const char *const num_formats[DCEM_RT_STYLE_COUNT] = {
    [DCEM_RT_INT] = "0",       [DCEM_RT_KWH] = "#,##0.000",   [DCEM_RT_RATIO] = "0.0000",
    [DCEM_RT_SHARE] = "0.00%", [DCEM_RT_CNY] = "#,##0.00",    [DCEM_RT_RATE] = "0.0000",
    [DCEM_RT_PERCENT] = "0.0", [DCEM_RT_GENERAL] = "General", [DCEM_RT_DATE] = "yyyy-mm-dd",
};

typedef struct formats {
    lxw_format *header, *wrap;
    lxw_format *num[DCEM_RT_STYLE_COUNT];
} formats;

static void make_formats(lxw_workbook *wb, formats *f)
{
    f->header = workbook_add_format(wb);
    format_set_bold(f->header);
    format_set_text_wrap(f->header);
    format_set_align(f->header, LXW_ALIGN_VERTICAL_TOP);
    format_set_bg_color(f->header, 0xDDEBF7);
    format_set_bottom(f->header, LXW_BORDER_THIN);
    f->wrap = workbook_add_format(wb);
    format_set_text_wrap(f->wrap);
    format_set_align(f->wrap, LXW_ALIGN_VERTICAL_TOP);
    for (int s = 0; s < DCEM_RT_STYLE_COUNT; s++) {
        if (!num_formats[s]) continue;
        f->num[s] = workbook_add_format(wb);
        format_set_num_format(f->num[s], num_formats[s]);
        format_set_align(f->num[s], LXW_ALIGN_VERTICAL_TOP); /* beside a wrapped label */
    }
}

static lxw_error write_cell(lxw_worksheet *ws, const formats *f, const dcem_rt_table *t,
                            lxw_row_t row, lxw_col_t col, const dcem_rt_cell *c)
{
    switch (c->kind) {
    case DCEM_RT_NUM:
        return worksheet_write_number(ws, row, col, c->num, f->num[c->style]);
    case DCEM_RT_TRUTH: /* in words for people; the CSV keeps true/false for tools */
        return worksheet_write_string(ws, row, col, c->num != 0 ? "是 Yes" : "否 No",
                                      t->wrap ? f->wrap : NULL);
    case DCEM_RT_STR:
        if (c->style == DCEM_RT_DATE) {
            int64_t day;
            if (!dcem_parse_date(c->text, strlen(c->text), &day)) {
                int64_t y;
                int m, d;
                dcem_civil_from_days(day, &y, &m, &d);
                lxw_datetime dt = {.year = (int)y, .month = m, .day = d};
                return worksheet_write_datetime(ws, row, col, &dt, f->num[DCEM_RT_DATE]);
            }
        }
        return worksheet_write_string(ws, row, col, c->text, t->wrap ? f->wrap : NULL);
    default:
        return LXW_NO_ERROR;
    }
}

/* Lines a wrapped text takes in a column `width` characters wide: spreadsheet
 * programs do not grow a row for wrapped text they did not lay out
 * themselves, so its height is set from this. A CJK character (a 3- or
 * 4-byte UTF-8 sequence) is two columns wide, others one; words are not
 * kept whole, so this may count a line short of what a word-wrap takes,
 * hence the extra half line per row in wrap_rows. */
static double text_lines(const char *s, double width)
{
    double lines = 0, col = 0, w = width > 2 ? width - 1 : 1;
    for (const unsigned char *p = (const unsigned char *)s;; p++) {
        if (!*p || *p == '\n') {
            lines += col > 0 ? ceil(col / w) : 1;
            col = 0;
            if (!*p) break;
        } else if (*p < 0x80 || (*p >= 0xC0 && *p < 0xE0)) {
            col += 1; /* ASCII, or the lead byte of a 2-byte sequence */
        } else if (*p >= 0xE0) {
            col += 2; /* the lead byte of a CJK character */
        } /* continuation bytes count with their lead */
    }
    return lines;
}

/* Heights of a wrapping table's rows: as many lines as its tallest cell. */
#define LINE_POINTS 15.0
static lxw_error wrap_rows(lxw_worksheet *ws, const dcem_rt_table *t)
{
    lxw_error rc = LXW_NO_ERROR;
    for (size_t i = 0; i < t->n_rows && !rc; i++) {
        double most = 1;
        for (size_t j = 0; j < t->n_cols; j++) {
            const dcem_rt_cell *c = dcem_rt_at(t, i, j);
            if (c->kind != DCEM_RT_STR) continue;
            double n = text_lines(c->text, t->cols[j].width > 0 ? t->cols[j].width : 14);
            if (n > most) most = n;
        }
        if (most > 1) rc = worksheet_set_row(ws, (lxw_row_t)(i + 1), LINE_POINTS * (most + 0.5), NULL);
    }
    return rc;
}

/* Printed: A4, one page wide (a row's label and values never part), the
 * header row on every page, the table as the print area, landscape when
 * the columns are wider than a portrait page holds at a readable size,
 * and a footer with the sheet's name and the page. */
#define PORTRAIT_MAX_CHARS 110.0
static lxw_error page_setup(lxw_worksheet *ws, const dcem_rt_table *t)
{
    double width = 0;
    for (size_t j = 0; j < t->n_cols; j++)
        width += t->cols[j].width > 0 ? t->cols[j].width : 14;
    worksheet_set_paper(ws, 9); /* A4 */
    if (width > PORTRAIT_MAX_CHARS)
        worksheet_set_landscape(ws);
    else
        worksheet_set_portrait(ws);
    worksheet_fit_to_pages(ws, 1, 0); /* 1 page wide, as many long as it takes */
    worksheet_center_horizontally(ws);
    lxw_error rc = worksheet_set_footer(ws, "&L&A&R&P / &N");
    if (!rc) rc = worksheet_repeat_rows(ws, 0, 0);
    if (!rc)
        rc = worksheet_print_area(ws, 0, 0, (lxw_row_t)t->n_rows, (lxw_col_t)(t->n_cols - 1));
    return rc;
}

static lxw_error write_sheet(lxw_workbook *wb, const formats *f, const dcem_rt_table *t)
{
    lxw_worksheet *ws = workbook_add_worksheet(wb, t->sheet);
    if (!ws) return LXW_ERROR_MEMORY_MALLOC_FAILED;
    lxw_error rc = LXW_NO_ERROR;
    for (size_t j = 0; j < t->n_cols && !rc; j++) {
        char h[256];
        snprintf(h, sizeof h, "%s %s", t->cols[j].zh, t->cols[j].en);
        rc = worksheet_set_column(ws, (lxw_col_t)j, (lxw_col_t)j,
                                  t->cols[j].width > 0 ? t->cols[j].width : 14, NULL);
        if (!rc) rc = worksheet_write_string(ws, 0, (lxw_col_t)j, h, f->header);
    }
    if (!rc) rc = worksheet_set_row(ws, 0, 32, NULL);
    for (size_t i = 0; i < t->n_rows && !rc; i++)
        for (size_t j = 0; j < t->n_cols && !rc; j++)
            rc = write_cell(ws, f, t, (lxw_row_t)(i + 1), (lxw_col_t)j, dcem_rt_at(t, i, j));
    worksheet_freeze_panes(ws, 1, 0);
    if (!rc && t->n_rows && !t->wrap)
        rc = worksheet_autofilter(ws, 0, 0, (lxw_row_t)t->n_rows, (lxw_col_t)(t->n_cols - 1));
    if (!rc && t->wrap) rc = wrap_rows(ws, t);
    if (!rc) rc = page_setup(ws, t);
    return rc;
}

int dcem_report_xlsx_write(const char *path, const char *tmpdir, dcem_rt_table *const *tables,
                           size_t n, const dcem_report_xlsx_props *props, char *err, size_t errlen)
{
    lxw_workbook_options o = {.tmpdir = (char *)tmpdir};
    lxw_workbook *wb = workbook_new_opt(path, &o);
    if (!wb) {
        snprintf(err, errlen, "%s: cannot create the workbook", path);
        return DCEM_ESTORAGE;
    }
    lxw_doc_properties dp = {.title = (char *)props->title,
                             .subject = (char *)props->subject,
                             .author = "dcem-report",
                             .keywords = (char *)props->keywords,
                             .comments = (char *)props->comments,
                             .created = props->created};
    lxw_error rc = workbook_set_properties(wb, &dp);
    formats f = {0};
    make_formats(wb, &f);
    for (size_t i = 0; i < n && !rc; i++)
        rc = write_sheet(wb, &f, tables[i]);
    /* workbook_close writes the file and frees the workbook, even after an
     * earlier error */
    lxw_error rc_close = workbook_close(wb);
    if (!rc) rc = rc_close;
    if (rc) {
        snprintf(err, errlen, "%s: %s", path, lxw_strerror(rc));
        return DCEM_ESTORAGE;
    }
    /* on disk before the report's directory is renamed into place */
    int fd = open(path, O_RDONLY);
    if (fd < 0 || fsync(fd)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return DCEM_EIO;
    }
    close(fd);
    return 0;
}
