/* report_table.h — the tables a dcem report is laid out in: bilingual
 * column headers ("用电总量 Total energy (kWh)") and typed cells (text, a
 * number with the decimals it is reported to, a boolean, a date). The XLSX
 * writer and the CSV writer both render these tables, so a cell reads the
 * same in either file. No I/O here except the CSV writer's FILE. */
#ifndef DCEM_REPORT_TABLE_H
#define DCEM_REPORT_TABLE_H

#include <stddef.h>
#include <stdio.h>

/* How a number is shown. The value is always kept exactly as computed; the
 * style says how many decimals the CSV prints (the dcem-audit/1 JSON's
 * fixed point) and which number format the XLSX cell gets. */
typedef enum dcem_rt_style {
    DCEM_RT_TEXT = 0,
    DCEM_RT_INT,     /* a count: no decimals */
    DCEM_RT_KWH,     /* energy: 3 decimals, thousands separators in XLSX */
    DCEM_RT_RATIO,   /* PUE: 6 decimals (XLSX shows 4) */
    DCEM_RT_SHARE,   /* a fraction: 6 decimals, XLSX shows it as a percentage */
    DCEM_RT_CNY,     /* money: 2 decimals */
    DCEM_RT_RATE,    /* CNY per kWh: 4 decimals */
    DCEM_RT_PERCENT, /* a percentage number such as 80.0: 1 decimal */
    DCEM_RT_GENERAL, /* a ledger value (rated kW, counter modulo): shortest exact form */
    DCEM_RT_DATE,    /* a calendar date; text "YYYY-MM-DD" */
    DCEM_RT_BOOL,
    DCEM_RT_STYLE_COUNT
} dcem_rt_style;

typedef enum dcem_rt_kind {
    DCEM_RT_EMPTY = 0,
    DCEM_RT_STR,
    DCEM_RT_NUM,
    DCEM_RT_TRUTH
} dcem_rt_kind;

typedef struct dcem_rt_cell {
    int kind;   /* dcem_rt_kind */
    int style;  /* dcem_rt_style */
    double num; /* DCEM_RT_NUM; DCEM_RT_TRUTH: 0 or 1 */
    char *text; /* DCEM_RT_STR (owned); dates are text "YYYY-MM-DD" with style DATE */
} dcem_rt_cell;

typedef struct dcem_rt_column {
    const char *zh, *en; /* header "zh en"; static strings */
    double width;        /* XLSX column width in characters */
} dcem_rt_column;

#define DCEM_RT_MAX_COLUMNS 48
#define DCEM_RT_MAX_ROWS 1000000 /* a table refuses rows beyond this (DCEM_EFULL) */

typedef struct dcem_rt_table {
    const char *file;  /* CSV name suffix: "figures" -> <base>-figures.csv */
    const char *sheet; /* XLSX sheet name (<= 31 characters) */
    dcem_rt_column cols[DCEM_RT_MAX_COLUMNS];
    size_t n_cols;
    dcem_rt_cell *cells; /* n_rows * n_cols, row-major */
    size_t n_rows, cap_rows;
    int wrap; /* XLSX: wrap long text (the method sheet) */
} dcem_rt_table;

/* A new empty table; file and sheet are static strings. NULL when out of memory. */
dcem_rt_table *dcem_rt_new(const char *file, const char *sheet);
void dcem_rt_free(dcem_rt_table *t);

/* Adds a column (before any row). 0, or DCEM_EFULL past DCEM_RT_MAX_COLUMNS. */
int dcem_rt_column_add(dcem_rt_table *t, const char *zh, const char *en, double width);

/* Appends an empty row; the cells are set with the setters below on
 * row t->n_rows - 1. 0, DCEM_ENOMEM, or DCEM_EFULL past DCEM_RT_MAX_ROWS. */
int dcem_rt_row(dcem_rt_table *t);

/* Setters of the last row's cell col. Text is copied. A NaN number leaves
 * the cell empty (undefined or absent, null in the JSON). They return 0 or
 * DCEM_ENOMEM / DCEM_EINVAL (col out of range). */
int dcem_rt_text(dcem_rt_table *t, size_t col, const char *s);
int dcem_rt_num(dcem_rt_table *t, size_t col, double v, int style);
int dcem_rt_bool(dcem_rt_table *t, size_t col, int v);
int dcem_rt_date(dcem_rt_table *t, size_t col, const char *yyyy_mm_dd);

const dcem_rt_cell *dcem_rt_at(const dcem_rt_table *t, size_t row, size_t col);

/* Decimals a style prints with in the CSV (-1: shortest exact form). */
int dcem_rt_decimals(int style);

/* The CSV text of a number cell (NUL-terminated in buf of size n; 64 is enough). */
void dcem_rt_format_num(const dcem_rt_cell *c, char *buf, size_t n);

/* Writes the table as CSV (RFC 4180: fields with a comma, quote or line
 * break quoted, quotes doubled; LF line ends) with a UTF-8 byte-order
 * mark so that spreadsheet programs read the Chinese headers as UTF-8.
 * Booleans print as true / false. 0, or DCEM_ESTORAGE when writing fails. */
int dcem_rt_write_csv(const dcem_rt_table *t, FILE *f);

#endif
