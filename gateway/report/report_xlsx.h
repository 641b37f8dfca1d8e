/* report_xlsx.h — writes a report's tables as one XLSX workbook (one sheet
 * per table) with libxlsxwriter: a bold bilingual header row that stays in
 * view, numbers as numbers with a number format per style (kWh with
 * thousands separators, shares as percentages, CNY with 2 decimals), dates
 * as dates, booleans as booleans, empty cells for undefined values. */
#ifndef DCEM_REPORT_XLSX_H
#define DCEM_REPORT_XLSX_H

#include "report_table.h"

#include <stddef.h>
#include <time.h>

typedef struct dcem_report_xlsx_props {
    const char *title, *subject, *keywords, *comments;
    time_t created; /* the report's generation time, so equal inputs give equal bytes */
} dcem_report_xlsx_props;

/* Writes tables[0..n) to path (created or replaced). tmpdir (may be NULL:
 * the system's) is where libxlsxwriter assembles the file. Returns 0, or
 * DCEM_ESTORAGE with the library's reason in err. */
int dcem_report_xlsx_write(const char *path, const char *tmpdir, dcem_rt_table *const *tables,
                           size_t n, const dcem_report_xlsx_props *props, char *err, size_t errlen);

#endif
