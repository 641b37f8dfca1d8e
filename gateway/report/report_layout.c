/* report_layout.c — lays a built report out: the tables (XLSX sheets and
 * CSV files) with their bilingual headers, the JSON document, and the
 * method text. Every figure is read from the engine's dcem-audit/1 period
 * documents as they are; nothing is computed here but text. */
#include "counter.h"
#include "errors.h"
#include "parse.h"
#include "period_json.h"
#include "report_private.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- labels ---- */

static const struct {
    const char *zh, *en;
} role_labels[DCEM_ROLE_COUNT] = {
    [DCEM_ROLE_FACILITY] = {"市电进线", "Utility incomer"},
    [DCEM_ROLE_IT] = {"IT设备", "IT equipment"},
    [DCEM_ROLE_GREEN_ONSITE] = {"自有绿电", "On-site renewable generation"},
    [DCEM_ROLE_COMPUTE] = {"算力设备", "Compute (AI) racks"},
    [DCEM_ROLE_COOLING] = {"制冷", "Cooling"},
    [DCEM_ROLE_OTHER] = {"其他", "Other"},
};

static const struct {
    const char *zh, *en;
} verdict_labels[DCEM_V_COUNT] = {
    [DCEM_V_IN_SCOPE] = {"适用本措施", "In scope of the measures"},
    [DCEM_V_OUT_OF_SCOPE] = {"不适用本措施", "Out of scope of the measures"},
    [DCEM_V_INSUFFICIENT_DATA] = {"数据不足，不作结论", "Insufficient data: no conclusion"},
    [DCEM_V_PROVISIONAL] = {"临时结果（期间未结束）", "Provisional: the period is not over"},
    [DCEM_V_PUE_BELOW_LIMIT] = {"PUE低于限定值", "PUE below the limit"},
    [DCEM_V_PUE_ABOVE_LIMIT] = {"PUE超过限定值", "PUE above the limit"},
    [DCEM_V_GREEN_SHARE_ABOVE_THRESHOLD] = {"绿电占比超过当年要求",
                                            "Green share above the year's threshold"},
    [DCEM_V_REWARD_ELIGIBLE] = {"可出具年度能源消费报告并享受奖励",
                                "Reward-eligible: annual report and rewards"},
    [DCEM_V_DIFFERENTIAL_PRICING] = {"差别电价对象候选", "Differential-pricing candidate"},
    [DCEM_V_CAP_WARNING] = {"用电量达到批复预警线", "Approved cap: warning level reached"},
    [DCEM_V_CAP_PROJECTED] = {"预计超出批复用电量", "Projected to exceed the approved cap"},
    [DCEM_V_CAP_EXCEEDED] = {"已超出批复用电量", "Approved cap exceeded"},
    [DCEM_V_CONVERSION] = {"转型智能算力中心", "Computing-center conversion"},
    [DCEM_V_GREEN_SHARE_BELOW_THRESHOLD] = {"绿电占比未超过当年要求",
                                            "Green share not above the year's threshold"},
};

/* The part of 京技管发〔2024〕8号 each clause id of common/policy.c names. */
static const struct {
    const char *clause, *zh, *en;
} clause_labels[] = {
    {"scope", "一、适用范围", "Scope"},
    {"1", "二、1 摸排存量项目（台账与监测平台）", "Clause 1: ledger and monitoring platform"},
    {"2", "二、2 鼓励转型升级（PUE、绿电、年度能源消费报告）",
     "Clause 2: PUE, green electricity, annual energy consumption report"},
    {"5", "二、5 征收差别电价", "Clause 5: differential electricity pricing"},
    {"9", "二、9 明确用电上限", "Clause 9: approved electricity cap"},
    {"-", "—（非条款：期间未结束）", "— (no clause: the period is not over)"},
};

static const struct {
    const char *id, *zh, *en;
} event_labels[EV_COUNT] = {
    [EV_ESTIMATED] = {"estimated", "估算时段", "Estimated intervals"},
    [EV_DISCARDED] = {"discarded_reading", "剔除读数", "Discarded readings"},
    [EV_ROLLOVER] = {"rollover", "计数器翻转", "Counter rollover"},
    [EV_RESET] = {"reset", "计数器复位或换表", "Counter reset or meter replaced"},
};

static int verdict_id(const char *name)
{
    for (int i = 0; i < DCEM_V_COUNT; i++)
        if (!strcmp(name, dcem_verdict_name(i))) return i;
    return -1;
}

const char *dcem_report_verdict_words(const char *id, int en)
{
    int v = verdict_id(id);
    return v < 0 ? NULL : en ? verdict_labels[v].en : verdict_labels[v].zh;
}

static int clause_index(const char *clause)
{
    for (size_t i = 0; i < sizeof clause_labels / sizeof clause_labels[0]; i++)
        if (!strcmp(clause, clause_labels[i].clause)) return (int)i;
    return -1;
}

static const char *cause_name(unsigned cause)
{
    if ((cause & DCEM_SEG_GAP) && (cause & DCEM_SEG_RESET)) return "gap+reset";
    return cause & DCEM_SEG_RESET ? "reset" : "gap";
}

void dcem_report_time(const dcem_report *r, int64_t t_ms, char *buf, size_t n)
{
    dcem_zone z = r->zone; /* the cache inside is updated: a copy keeps r const */
    dcem_format_time(t_ms, dcem_zone_offset(&z, t_ms), buf, n);
}

static void local_date(const dcem_report *r, int64_t t_ms, char *buf, size_t n)
{
    char t[40];
    dcem_report_time(r, t_ms, t, sizeof t);
    snprintf(buf, n, "%.10s", t);
}

const char *dcem_report_file_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

void dcem_report_audit_command(const dcem_report *r, int names, char *buf, size_t n)
{
    char as_of[16];
    local_date(r, r->as_of_ms, as_of, sizeof as_of);
    snprintf(buf, n,
             "dcem-audit --site %s --policy %s --readings readings.csv --%s %s --as-of %s --json",
             names ? dcem_report_file_name(r->ledger_file) : r->ledger_file,
             names ? dcem_report_file_name(r->policy_file) : r->policy_file,
             r->kind == DCEM_PERIOD_YEAR ? "year" : "month", r->period, as_of);
}

/* ---- the method ---- */

#define MAX_PARAGRAPHS 16

typedef struct method {
    char *zh[MAX_PARAGRAPHS], *en[MAX_PARAGRAPHS];
    size_t n;
    int failed;
} method;

static char *format(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static char *format(const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s) vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

static void para_zh(method *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void para_zh(method *m, const char *fmt, ...)
{
    if (m->n == MAX_PARAGRAPHS) {
        m->failed = 1;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    m->zh[m->n] = format(fmt, ap);
    va_end(ap);
    if (!m->zh[m->n]) m->failed = 1;
}

static void para_en(method *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void para_en(method *m, const char *fmt, ...)
{
    if (m->n == MAX_PARAGRAPHS) return;
    va_list ap;
    va_start(ap, fmt);
    m->en[m->n] = format(fmt, ap);
    va_end(ap);
    if (!m->en[m->n]) m->failed = 1;
    m->n++;
}

static void method_free(method *m)
{
    for (size_t i = 0; i < MAX_PARAGRAPHS; i++)
        free(m->zh[i]), free(m->en[i]);
}

static void method_build(const dcem_report *r, method *m)
{
    const dcem_policy *p = r->pol;
    const dcem_site *s = r->ledger;
    long long year = r->first_month / 12;
    char tiers_zh[512] = "", tiers_en[512] = "";
    size_t uz = 0, ue = 0;
    for (size_t i = 0; i < p->pricing.n_tiers; i++) {
        const dcem_tier *t = &p->pricing.tiers[i];
        int a, b;
        if (isnan(t->over_limit_up_to)) {
            a = snprintf(tiers_zh + uz, sizeof tiers_zh - uz, "%s其余每千瓦时加价%g元",
                         i ? "，" : "", t->cny_per_kwh);
            b = snprintf(tiers_en + ue, sizeof tiers_en - ue, "%s+%g CNY/kWh beyond", i ? ", " : "",
                         t->cny_per_kwh);
        } else {
            a = snprintf(tiers_zh + uz, sizeof tiers_zh - uz,
                         "%s超出限定值%g倍以内每千瓦时加价%g元", i ? "，" : "", t->over_limit_up_to,
                         t->cny_per_kwh);
            b = snprintf(tiers_en + ue, sizeof tiers_en - ue,
                         "%s+%g CNY/kWh up to %g× over the limit", i ? ", " : "", t->cny_per_kwh,
                         t->over_limit_up_to);
        }
        if (a > 0) uz = uz + (size_t)a < sizeof tiers_zh ? uz + (size_t)a : sizeof tiers_zh - 1;
        if (b > 0) ue = ue + (size_t)b < sizeof tiers_en ? ue + (size_t)b : sizeof tiers_en - 1;
    }
    char levels[128] = "", levels_zh[160] = "";
    size_t ul = 0, ulz = 0;
    for (size_t i = 0; i < p->cap.n_warning; i++) {
        int a = snprintf(levels + ul, sizeof levels - ul, "%s%g%%", i ? ", " : "",
                         p->cap.warning_percent[i]);
        if (a > 0) ul = ul + (size_t)a < sizeof levels ? ul + (size_t)a : sizeof levels - 1;
        a = snprintf(levels_zh + ulz, sizeof levels_zh - ulz, "%s%g%%", i ? "、" : "",
                     p->cap.warning_percent[i]);
        if (a > 0)
            ulz = ulz + (size_t)a < sizeof levels_zh ? ulz + (size_t)a : sizeof levels_zh - 1;
    }
    int excess = p->pricing.applies_to == DCEM_APPLIES_EXCESS;
    int relative = p->green.step_mode == DCEM_STEP_RELATIVE;
    char as_of[40], from[40], to[40], cmd[DCEM_REPORT_COMMAND_MAX];
    dcem_report_time(r, r->as_of_ms, as_of, sizeof as_of);
    dcem_report_time(r, r->export_from_ms, from, sizeof from);
    dcem_report_time(r, r->export_to_ms, to, sizeof to);
    dcem_report_audit_command(r, 1, cmd, sizeof cmd);

    para_zh(m, "本报告由 dcem 根据采集器存储的计量数据生成，按政策文件“%s”（%s，%s）评价。%s",
            p->policy, p->document, p->name,
            r->kind == DCEM_PERIOD_YEAR
                ? "本年度报告即该措施第二部分第2条所称的企业年度能源消费报告。"
                : "月度数值仅供参考，合规以自然年数值为准。");
    para_en(m,
            "This report was generated by dcem from the metered data in the collector's store and "
            "judged by the policy file '%s' (%s, %s). %s",
            p->policy, p->document, p->name,
            r->kind == DCEM_PERIOD_YEAR
                ? "As an annual report it is the annual energy consumption report of clause 2 of "
                  "the measures."
                : "Month values are indicative; compliance is judged on the calendar year.");
    para_zh(m,
            "电量取自各电表的累计电能寄存器（kWh），不用功率估算：一个时段的电量为相邻两次读数之差"
            "，按时间比例分配到当地时间对齐的%"
            "lld分钟时段。没有电能寄存器的表计按功率梯形积分，并标为“积分电量”。",
            s->interval_minutes);
    para_en(
        m,
        "Energy comes from each meter's cumulative energy register (kWh), not from sampled power: "
        "the energy between two readings is their difference, attributed to the %lld-minute "
        "intervals on the local clock in proportion to time. A meter without an energy register is "
        "integrated from its power samples (trapezoids) and marked integrated.",
        s->interval_minutes);
    para_zh(
        m,
        "计数器规则：读数在表计量程（counter_modulo_"
        "kwh）处回零按翻转计入；一次增量超过“额定功率×时间×%"
        "g”或回退时，该读数暂扣，由下一读数判定——若下一读数与之前的读数相符，该读数作为异常剔除（剔"
        "除读数）；若与该读数相符，则判定为计数器复位或换表，跨越复位的区段按新计数器的速率估算。",
        p->data.glitch_margin);
    para_en(m,
            "Counter rules: a register that wraps at its modulo (counter_modulo_kwh) is counted as "
            "a rollover. A reading that steps back, or forward by more than rated power × time × "
            "%g, is held and the next reading decides: if the next one agrees with the reading "
            "before, the held one was a glitch and is discarded (a discarded reading); if it "
            "agrees with the held one, the counter was reset or the meter replaced, and the "
            "segment across the reset is estimated at the new counter's rate.",
            p->data.glitch_margin);
    para_zh(m,
            "通信中断：相邻读数间隔超过%"
            "g个时段时，其电量为中断两侧读数之差，按时间均摊到中断内各时段并标为估算，不丢失也不重"
            "复；超过%lld天的中断不估算，体现在完整率中。",
            p->data.gap_intervals, p->data.max_gap_days);
    para_en(m,
            "Gaps: readings more than %g intervals apart are a gap; its energy is the difference "
            "of the readings on both sides, spread over the gap's intervals and marked estimated, "
            "so nothing is lost or counted twice. A gap longer than %lld days is not estimated and "
            "shows in the completeness.",
            p->data.gap_intervals, p->data.max_gap_days);
    para_zh(m,
            "指标：用电总量 = 市电进线 + 自有绿电（位于进线之后）；PUE = 用电总量 ÷ "
            "IT设备用电量；绿电占比 = （自有绿电 + 台账登记的绿电交易与绿证，1张绿证 = 1000 kWh）÷ "
            "用电总量；算力用电占比 = 算力设备用电量 ÷ 用电总量（算力设备为IT设备的一部分）。");
    para_en(m,
            "Figures: total energy = utility incomers + on-site renewable generation (behind the "
            "incomers); PUE = total energy / IT energy; green share = (on-site generation + green "
            "contracts and certificates in the ledger, 1 certificate = 1000 kWh) / total energy; "
            "compute share = compute energy / total energy (compute racks are part of IT).");
    para_zh(m,
            "完整率为计入指标的表计（市电进线、IT设备、自有绿电、算力设备）实测时间覆盖率中的最低值"
            "。低于%g%%"
            "时判定为“数据不足”，不给出达标、奖励、差别电价或转型结论（第1条）；用电上限判定照常给"
            "出，因为计量电量是实际用电量的下限。",
            p->data.completeness_min_percent);
    para_en(
        m,
        "Completeness is the lowest measured-time coverage of the meters that enter the figures "
        "(utility incomers, IT, on-site generation, compute). Below %g%% the verdict is "
        "insufficient data and no pass, reward, surcharge or conversion is given (clause 1); cap "
        "verdicts are still given, since metered energy is a lower bound of the true use.",
        p->data.completeness_min_percent);
    para_zh(m,
            "判定阈值（均取自政策文件）：PUE限定值%g；%lld年绿电占比要求%g%%（自%lld年%g%%起每年%s%"
            "g%s，最高%g%%）；差别电价（京发改[2015]1359号）：%s，适用于%s；批复用电量预警线%"
            "s，按最近%lld天的用电速率预测全年用电量；算力功率占比不低于%g%%"
            "且用电总量不超过基准年时为转型智能算力中心。差别电价电费为估算，由管委会确定执行对象（"
            "第5条）。",
            p->pue.limit, year, dcem_policy_green_threshold(p, year) * 100, p->green.base_year,
            p->green.base_percent, relative ? "相对递增" : "递增", p->green.step_percent,
            relative ? "%" : "个百分点", p->green.max_percent, tiers_zh,
            excess ? "超出限定值部分的电量" : "全部用电量", levels_zh, p->cap.projection_days,
            p->conversion.compute_share_min_percent);
    para_en(m,
            "Thresholds, all from the policy file: PUE limit %g; green-share threshold for %lld: "
            "%g%% (from %g%% in %lld, rising %g%s a year, at most %g%%); differential pricing "
            "(京发改[2015]1359号): %s, applied to %s; approved-cap warnings at %s, the year-end "
            "projection from the trailing %lld days; a computing-center conversion needs a compute "
            "share of at least %g%% and total energy not above the baseline. The surcharge is an "
            "estimate: the committee decides who is charged (clause 5).",
            p->pue.limit, year, dcem_policy_green_threshold(p, year) * 100, p->green.base_percent,
            p->green.base_year, p->green.step_percent,
            relative ? "% (relative)" : " percentage points", p->green.max_percent, tiers_en,
            excess ? "the energy above the limit" : "all energy", levels, p->cap.projection_days,
            p->conversion.compute_share_min_percent);
    para_zh(m,
            "数据截至%"
            "s（不含该时刻之后的数据）；截至时刻早于期间结束的期间标为临时结果。批复用电量的使用率"
            "与预测为该自然年年初至截至时刻的数值。",
            as_of);
    para_en(m,
            "Data are counted before %s; a period that ends later is provisional. Cap usage and "
            "projection are for the calendar year to that time.",
            as_of);
    para_zh(m,
            "输入文件：政策文件 %s（SHA-256 %s）；台账 %s（SHA-256 "
            "%s）。这两个哈希值确定了本报告所用的规则与表计登记。",
            dcem_report_file_name(r->policy_file), r->policy_sha,
            dcem_report_file_name(r->ledger_file), r->ledger_sha);
    para_en(m,
            "Inputs: policy file %s (SHA-256 %s); site ledger %s (SHA-256 %s). These hashes pin "
            "the rules and the meter register this report was made with.",
            dcem_report_file_name(r->policy_file), r->policy_sha,
            dcem_report_file_name(r->ledger_file), r->ledger_sha);
    para_zh(m,
            "复核：readings.csv 为 %s 至 %s "
            "的全部原始读数，另加每块表在此范围前后各最多%"
            "d条读数（使计数器起点与采集器一致）。检查人员取得上述政策文件与台账并核对哈希后，运行 "
            "%s 即可复算本报告的全部数字；sha256sum -c MANIFEST.sha256 校验本报告各文件未被改动。",
            from, to, DCEM_REPORT_CONTEXT_READINGS, cmd);
    para_en(m,
            "Verification: readings.csv holds every stored reading from %s to %s, plus up to %d "
            "readings of each meter on either side (so that each counter starts from the same "
            "reading as in the collector). With the policy file and ledger above (check their "
            "hashes), an inspector reproduces every number of this report with: %s. sha256sum -c "
            "MANIFEST.sha256 checks that no file of the report was changed.",
            from, to, DCEM_REPORT_CONTEXT_READINGS, cmd);
    if (r->pruned_before_ms != INT64_MIN &&
        r->pruned_before_ms >
            r->export_from_ms - (r->pol->data.max_gap_days + 1) * DCEM_MS_PER_DAY) {
        char pb[40];
        dcem_report_time(r, r->pruned_before_ms, pb, sizeof pb);
        para_zh(m,
                "注意：采集器只保留最近%lld天的原始读数（%s之前的读数可能已删除），readings.csv "
                "可能不完整，无法复算的数字以本报告为准（来自存储的时段电量）。",
                r->cfg->store.retention_days, pb);
        para_en(m,
                "Note: the collector keeps raw readings for %lld days (readings before %s may have "
                "been pruned), so readings.csv may be incomplete and dcem-audit may not reproduce "
                "every number; the report's figures come from the stored interval energy, which is "
                "kept.",
                r->cfg->store.retention_days, pb);
    }
}

/* ---- the figures columns: one per field of a dcem-audit/1 period ---- */

typedef struct fig_col {
    const char *key, *sub; /* sub: a field of the object key ("cap", "surcharge") */
    const char *zh, *en;
    int style;
    double width;
} fig_col;

static const fig_col fig_cols[] = {
    {"period", NULL, "期间", "Period", DCEM_RT_TEXT, 10},
    {"kind", NULL, "类型", "Kind", DCEM_RT_TEXT, 8},
    {"start", NULL, "开始", "Start", DCEM_RT_TEXT, 26},
    {"end", NULL, "结束", "End", DCEM_RT_TEXT, 26},
    {"as_of", NULL, "数据截至", "Data as of", DCEM_RT_TEXT, 26},
    {"total_kwh", NULL, "用电总量", "Total energy (kWh)", DCEM_RT_KWH, 18},
    {"facility_kwh", NULL, "市电进线电量", "Utility incomer energy (kWh)", DCEM_RT_KWH, 18},
    {"green_onsite_kwh", NULL, "自有绿电发电量", "On-site green generation (kWh)", DCEM_RT_KWH, 18},
    {"it_kwh", NULL, "IT设备用电量", "IT energy (kWh)", DCEM_RT_KWH, 18},
    {"compute_kwh", NULL, "算力设备用电量", "Compute energy (kWh)", DCEM_RT_KWH, 18},
    {"cooling_kwh", NULL, "制冷用电量", "Cooling energy (kWh)", DCEM_RT_KWH, 18},
    {"other_kwh", NULL, "其他用电量", "Other energy (kWh)", DCEM_RT_KWH, 18},
    {"green_ledger_kwh", NULL, "绿电交易与绿证电量", "Green contracts and certificates (kWh)",
     DCEM_RT_KWH, 18},
    {"green_kwh", NULL, "绿电总量", "Green energy (kWh)", DCEM_RT_KWH, 18},
    {"pue", NULL, "电能利用效率", "PUE", DCEM_RT_RATIO, 10},
    {"green_share", NULL, "绿电占比", "Green share", DCEM_RT_SHARE, 10},
    {"green_threshold", NULL, "当年绿电占比要求", "Green-share threshold", DCEM_RT_SHARE, 12},
    {"compute_share", NULL, "算力用电占比", "Compute share", DCEM_RT_SHARE, 10},
    {"completeness", NULL, "数据完整率", "Completeness", DCEM_RT_SHARE, 12},
    {"estimated_kwh", NULL, "估算电量", "Estimated energy (kWh)", DCEM_RT_KWH, 16},
    {"integrated_kwh", NULL, "功率积分电量", "Power-integrated energy (kWh)", DCEM_RT_KWH, 16},
    {"estimated_intervals", NULL, "估算时段数", "Estimated intervals", DCEM_RT_INT, 10},
    {"integrated_intervals", NULL, "积分时段数", "Integrated intervals", DCEM_RT_INT, 10},
    {"discarded_readings", NULL, "剔除读数", "Discarded readings", DCEM_RT_INT, 10},
    {"rollovers", NULL, "计数器翻转", "Counter rollovers", DCEM_RT_INT, 10},
    {"resets", NULL, "计数器复位", "Counter resets", DCEM_RT_INT, 10},
    {"cap", "approved_kwh", "批复年用电量", "Approved annual energy (kWh)", DCEM_RT_KWH, 18},
    {"cap", "ytd_kwh", "年初至今用电量", "Year-to-date energy (kWh)", DCEM_RT_KWH, 18},
    {"cap", "usage", "批复用电量使用率", "Cap usage", DCEM_RT_SHARE, 12},
    {"cap", "projected_kwh", "预计全年用电量", "Projected year energy (kWh)", DCEM_RT_KWH, 18},
    {"cap", "warning_percent", "已达预警线(%)", "Cap warning level reached (%)", DCEM_RT_PERCENT,
     12},
    {"surcharge", "applies_to", "差别电价计费范围", "Surcharge applies to", DCEM_RT_TEXT, 12},
    {"surcharge", "kwh", "差别电价计费电量", "Surcharge energy (kWh)", DCEM_RT_KWH, 18},
    {"surcharge", "cny_per_kwh", "差别电价加价", "Surcharge rate (CNY/kWh)", DCEM_RT_RATE, 12},
    {"surcharge", "cny", "估算差别电价电费", "Estimated surcharge (CNY)", DCEM_RT_CNY, 16},
    {"verdicts", NULL, "判定代码", "Verdict ids", DCEM_RT_TEXT, 40},
};
#define N_FIG_COLS (sizeof fig_cols / sizeof fig_cols[0])

static const cJSON *field(const cJSON *doc, const char *key, const char *sub)
{
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(doc, key);
    if (sub) o = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, sub) : NULL;
    return o;
}

char *dcem_report_join(const cJSON *array)
{
    size_t len = 1, used = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, array)
    {
        if (cJSON_IsString(it)) len += strlen(it->valuestring) + 1;
    }
    char *s = malloc(len);
    if (!s) return NULL;
    cJSON_ArrayForEach(it, array)
    {
        if (!cJSON_IsString(it)) continue;
        size_t n = strlen(it->valuestring);
        if (used) s[used++] = ' ';
        memcpy(s + used, it->valuestring, n);
        used += n;
    }
    s[used] = 0;
    return s;
}

/* A value of the document into cell col of the last row: numbers as
 * numbers, strings as text, arrays of strings joined with spaces, null or
 * absent as an empty cell. */
static int put_value(dcem_rt_table *t, size_t col, const cJSON *v, int style)
{
    if (cJSON_IsNumber(v)) return dcem_rt_num(t, col, v->valuedouble, style);
    if (cJSON_IsString(v)) return dcem_rt_text(t, col, v->valuestring);
    if (cJSON_IsBool(v)) return dcem_rt_bool(t, col, cJSON_IsTrue(v));
    if (!cJSON_IsArray(v)) return 0;
    char *s = dcem_report_join(v);
    if (!s) return DCEM_ENOMEM;
    int rc = dcem_rt_text(t, col, s);
    free(s);
    return rc;
}

/* ---- tables ---- */

/* v as the JSON prints it with `decimals` (dcem_json_num), read back: a sum
 * made here shows the same number in every file. */
static double fixed(double v, int decimals)
{
    char b[64];
    snprintf(b, sizeof b, "%.*f", decimals, v);
    return strtod(b, NULL);
}

static int columns(dcem_rt_table *t, const char *const (*cols)[2], const double *widths, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++)
        rc = dcem_rt_column_add(t, cols[i][0], cols[i][1], widths[i]);
    return rc;
}

/* The verdicts of a period in words, one per line: "PUE超过限定值 PUE above
 * the limit" (their ids are in a cell of their own, for tools). */
static int verdicts_in_words(dcem_rt_table *t, size_t col, const cJSON *verdicts)
{
    char text[2048];
    size_t used = 0;
    text[0] = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, verdicts)
    {
        int id = cJSON_IsString(v) ? verdict_id(v->valuestring) : -1;
        if (id < 0) continue;
        int k = snprintf(text + used, sizeof text - used, "%s%s %s", used ? "\n" : "",
                         verdict_labels[id].zh, verdict_labels[id].en);
        if (k < 0 || (size_t)k >= sizeof text - used) break;
        used += (size_t)k;
    }
    return dcem_rt_text(t, col, text);
}

/* A row of the summary: label "zh en" in column 0; the caller sets column 1. */
static int kv(dcem_rt_table *t, const char *zh, const char *en)
{
    char label[256];
    snprintf(label, sizeof label, "%s %s", zh, en);
    int rc = dcem_rt_row(t);
    return rc ? rc : dcem_rt_text(t, 0, label);
}

static int summary_table(const dcem_report *r, dcem_rt_table *t)
{
    const dcem_site *s = r->ledger;
    const dcem_policy *p = r->pol;
    const cJSON *doc = r->doc[r->n_periods - 1];
    t->wrap = 1; /* a long value wraps in its cell, beside its label */
    int rc = dcem_rt_column_add(t, "项目", "Item", 44);
    if (!rc) rc = dcem_rt_column_add(t, "值", "Value", 60);
    char buf[DCEM_REPORT_COMMAND_MAX];
    int annual = r->kind == DCEM_PERIOD_YEAR;
    if (!rc) rc = kv(t, "报告", "Report");
    if (!rc)
        rc = dcem_rt_text(t, 1,
                          annual ? "年度能源消费报告 Annual energy consumption report"
                                 : "月度能耗报告 Monthly energy report");
    snprintf(buf, sizeof buf, "%s %s", p->document, p->name);
    if (!rc) rc = kv(t, "依据", "Basis");
    if (!rc) rc = dcem_rt_text(t, 1, buf);
    if (!rc) rc = kv(t, "政策", "Policy");
    if (!rc) rc = dcem_rt_text(t, 1, p->policy);
    if (!rc) rc = kv(t, "PUE限定值", "PUE limit");
    if (!rc) rc = dcem_rt_num(t, 1, p->pue.limit, DCEM_RT_GENERAL);
    if (!rc) rc = kv(t, "数据中心", "Site");
    if (!rc) rc = dcem_rt_text(t, 1, s->site);
    if (!rc) rc = kv(t, "名称", "Name");
    if (!rc) rc = dcem_rt_text(t, 1, s->name);
    if (!rc) rc = kv(t, "时区", "Time zone");
    if (!rc) rc = dcem_rt_text(t, 1, s->timezone);
    if (!rc) rc = kv(t, "机架数", "Racks");
    if (!rc) rc = dcem_rt_num(t, 1, (double)s->racks, DCEM_RT_INT);
    if (!rc) rc = kv(t, "机架总功率(kW)", "Rack power (kW)");
    if (!rc) rc = dcem_rt_num(t, 1, s->rack_power_kw, DCEM_RT_GENERAL);
    if (!rc) rc = kv(t, "适用本措施", "In scope");
    if (!rc) rc = dcem_rt_bool(t, 1, dcem_policy_in_scope(p, s));
    if (!rc) rc = kv(t, "判定", "Verdicts");
    if (!rc) rc = verdicts_in_words(t, 1, field(doc, "verdicts", NULL));
    if (!rc) rc = kv(t, "基准年用电量", "Baseline annual energy (kWh)");
    if (!rc) rc = dcem_rt_num(t, 1, s->baseline_annual_kwh, DCEM_RT_KWH);
    /* every figure of the period, as in the Figures sheet; the verdicts by
     * their ids there, for tools (in words above) */
    for (size_t i = 0; i < N_FIG_COLS && !rc; i++) {
        rc = kv(t, fig_cols[i].zh, fig_cols[i].en);
        if (!rc)
            rc = put_value(t, 1, field(doc, fig_cols[i].key, fig_cols[i].sub), fig_cols[i].style);
    }
    dcem_report_time(r, r->generated_ms, buf, sizeof buf);
    if (!rc) rc = kv(t, "生成时间", "Generated");
    if (!rc) rc = dcem_rt_text(t, 1, buf);
    if (!rc) rc = kv(t, "生成程序", "Generator");
    if (!rc) rc = dcem_rt_text(t, 1, r->generator);
    if (!rc) rc = kv(t, "政策文件", "Policy file");
    if (!rc) rc = dcem_rt_text(t, 1, dcem_report_file_name(r->policy_file));
    if (!rc) rc = kv(t, "政策文件 SHA-256", "Policy file SHA-256");
    if (!rc) rc = dcem_rt_text(t, 1, r->policy_sha);
    if (!rc) rc = kv(t, "台账文件", "Ledger file");
    if (!rc) rc = dcem_rt_text(t, 1, dcem_report_file_name(r->ledger_file));
    if (!rc) rc = kv(t, "台账 SHA-256", "Ledger file SHA-256");
    if (!rc) rc = dcem_rt_text(t, 1, r->ledger_sha);
    if (!rc) rc = kv(t, "读数导出", "Readings export");
    if (!rc) rc = dcem_rt_text(t, 1, "readings.csv");
    if (!rc) rc = kv(t, "读数行数", "Readings rows");
    if (!rc) rc = dcem_rt_num(t, 1, (double)r->readings_rows, DCEM_RT_INT);
    dcem_report_audit_command(r, 1, buf, sizeof buf);
    if (!rc) rc = kv(t, "复算命令", "Audit command");
    if (!rc) rc = dcem_rt_text(t, 1, buf);
    if (!rc) rc = kv(t, "事件未列出行数", "Event rows not listed");
    if (!rc) rc = dcem_rt_num(t, 1, (double)r->events_dropped, DCEM_RT_INT);
    return rc;
}

static int figures_table(const dcem_report *r, dcem_rt_table *t)
{
    int rc = 0;
    for (size_t i = 0; i < N_FIG_COLS && !rc; i++)
        rc = dcem_rt_column_add(t, fig_cols[i].zh, fig_cols[i].en, fig_cols[i].width);
    for (int p = 0; p < r->n_periods && !rc; p++) {
        rc = dcem_rt_row(t);
        for (size_t i = 0; i < N_FIG_COLS && !rc; i++)
            rc = put_value(t, i, field(r->doc[p], fig_cols[i].key, fig_cols[i].sub),
                           fig_cols[i].style);
    }
    return rc;
}

static int verdicts_table(const dcem_report *r, dcem_rt_table *t)
{
    static const char *const cols[][2] = {{"期间", "Period"},  {"判定", "Verdict"},
                                          {"中文", "Chinese"}, {"英文", "English"},
                                          {"条款", "Clause"},  {"依据", "Basis"}};
    static const double widths[] = {10, 30, 30, 40, 8, 70};
    int rc = columns(t, cols, widths, 6);
    char basis[512];
    for (int p = 0; p < r->n_periods && !rc; p++) {
        const cJSON *period = field(r->doc[p], "period", NULL), *v;
        cJSON_ArrayForEach(v, field(r->doc[p], "verdicts", NULL))
        {
            int id = cJSON_IsString(v) ? verdict_id(v->valuestring) : -1;
            if (id < 0 || rc) continue;
            const char *clause = dcem_verdict_clause(id);
            int c = clause_index(clause);
            snprintf(basis, sizeof basis, "%s %s / %s", r->pol->document,
                     c >= 0 ? clause_labels[c].zh : clause, c >= 0 ? clause_labels[c].en : clause);
            rc = dcem_rt_row(t);
            if (!rc) rc = put_value(t, 0, period, DCEM_RT_TEXT);
            if (!rc) rc = dcem_rt_text(t, 1, v->valuestring);
            if (!rc) rc = dcem_rt_text(t, 2, verdict_labels[id].zh);
            if (!rc) rc = dcem_rt_text(t, 3, verdict_labels[id].en);
            if (!rc) rc = dcem_rt_text(t, 4, clause);
            if (!rc) rc = dcem_rt_text(t, 5, basis);
        }
    }
    return rc;
}

static int meters_table(const dcem_report *r, dcem_rt_table *t)
{
    static const char *const cols[][2] = {{"表计", "Meter"},
                                          {"用途", "Role"},
                                          {"用途说明", "Role description"},
                                          {"型号", "Model"},
                                          {"准确度等级", "Accuracy class"},
                                          {"检定日期", "Calibrated on"},
                                          {"额定功率(kW)", "Rated power (kW)"},
                                          {"计数器量程(kWh)", "Counter modulo (kWh)"},
                                          {"计数器分辨率(kWh)", "Counter resolution (kWh)"},
                                          {"计入指标", "Enters the figures"},
                                          {"电流互感器变比", "CT ratio"},
                                          {"电压互感器变比", "PT ratio"}};
    static const double widths[] = {20, 14, 30, 22, 12, 14, 14, 16, 16, 12, 12, 12};
    int rc = columns(t, cols, widths, 12);
    char label[128];
    for (size_t i = 0; i < r->ledger->n_meters && !rc; i++) {
        const dcem_meter *m = &r->ledger->meters[i];
        snprintf(label, sizeof label, "%s %s", role_labels[m->role].zh, role_labels[m->role].en);
        rc = dcem_rt_row(t);
        if (!rc) rc = dcem_rt_text(t, 0, m->id);
        if (!rc) rc = dcem_rt_text(t, 1, dcem_role_name(m->role));
        if (!rc) rc = dcem_rt_text(t, 2, label);
        if (!rc) rc = dcem_rt_text(t, 3, m->model);
        if (!rc) rc = dcem_rt_text(t, 4, m->accuracy_class);
        if (!rc) rc = dcem_rt_date(t, 5, m->calibrated_on);
        if (!rc) rc = dcem_rt_num(t, 6, m->rated_kw, DCEM_RT_GENERAL);
        if (!rc) rc = dcem_rt_num(t, 7, m->counter_modulo_kwh, DCEM_RT_GENERAL);
        if (!rc) rc = dcem_rt_num(t, 8, m->counter_resolution_kwh, DCEM_RT_GENERAL);
        if (!rc) rc = dcem_rt_bool(t, 9, dcem_role_in_figures(m->role));
        if (!rc) rc = dcem_rt_num(t, 10, m->ct_ratio, DCEM_RT_GENERAL);
        if (!rc) rc = dcem_rt_num(t, 11, m->pt_ratio, DCEM_RT_GENERAL);
    }
    return rc;
}

static int meter_energy_table(const dcem_report *r, dcem_rt_table *t)
{
    static const char *const cols[][2] = {{"期间", "Period"},
                                          {"表计", "Meter"},
                                          {"用途", "Role"},
                                          {"电量", "Energy (kWh)"},
                                          {"估算电量", "Estimated energy (kWh)"},
                                          {"完整率", "Completeness"},
                                          {"剔除读数", "Discarded readings"},
                                          {"计数器翻转", "Counter rollovers"},
                                          {"计数器复位", "Counter resets"},
                                          {"估算时段数", "Estimated intervals"},
                                          {"积分时段数", "Integrated intervals"}};
    static const double widths[] = {10, 20, 14, 18, 16, 12, 10, 10, 10, 10, 10};
    static const struct {
        const char *key;
        int style;
    } from_doc[] = {{"kwh", DCEM_RT_KWH},
                    {"estimated_kwh", DCEM_RT_KWH},
                    {"completeness", DCEM_RT_SHARE},
                    {"discarded_readings", DCEM_RT_INT},
                    {"rollovers", DCEM_RT_INT},
                    {"resets", DCEM_RT_INT}};
    int rc = columns(t, cols, widths, 11);
    size_t nm = r->ledger->n_meters;
    for (int p = 0; p < r->n_periods && !rc; p++) {
        const cJSON *period = field(r->doc[p], "period", NULL), *m;
        cJSON_ArrayForEach(m, field(r->doc[p], "meters", NULL))
        {
            const cJSON *id = field(m, "id", NULL);
            int i = cJSON_IsString(id)
                        ? dcem_site_find_meter(r->ledger, id->valuestring, strlen(id->valuestring))
                        : -1;
            if (i < 0 || rc) continue;
            rc = dcem_rt_row(t);
            if (!rc) rc = put_value(t, 0, period, DCEM_RT_TEXT);
            if (!rc) rc = put_value(t, 1, id, DCEM_RT_TEXT);
            if (!rc) rc = put_value(t, 2, field(m, "role", NULL), DCEM_RT_TEXT);
            for (size_t k = 0; k < sizeof from_doc / sizeof from_doc[0] && !rc; k++)
                rc = put_value(t, 3 + k, field(m, from_doc[k].key, NULL), from_doc[k].style);
            if (!rc)
                rc = dcem_rt_num(t, 9, (double)r->est_iv[(size_t)p * nm + (size_t)i], DCEM_RT_INT);
            if (!rc)
                rc = dcem_rt_num(t, 10, (double)r->int_iv[(size_t)p * nm + (size_t)i], DCEM_RT_INT);
        }
    }
    return rc;
}

static int events_table(const dcem_report *r, dcem_rt_table *t)
{
    static const char *const cols[][2] = {
        {"表计", "Meter"},         {"用途", "Role"},
        {"事件", "Event"},         {"事件说明", "Description"},
        {"开始", "From"},          {"结束", "To"},
        {"次数或时段数", "Count"}, {"估算电量", "Estimated energy (kWh)"},
        {"原因", "Cause"}};
    static const double widths[] = {20, 14, 18, 36, 26, 26, 12, 16, 10};
    int rc = columns(t, cols, widths, 9);
    char a[40], b[40], label[128];
    for (size_t i = 0; i < r->n_events && !rc; i++) {
        const dcem_report_event *e = &r->events[i];
        const dcem_meter *m = &r->ledger->meters[e->meter];
        dcem_report_time(r, e->from_ms, a, sizeof a);
        dcem_report_time(r, e->to_ms, b, sizeof b);
        snprintf(label, sizeof label, "%s %s", event_labels[e->kind].zh, event_labels[e->kind].en);
        rc = dcem_rt_row(t);
        if (!rc) rc = dcem_rt_text(t, 0, m->id);
        if (!rc) rc = dcem_rt_text(t, 1, dcem_role_name(m->role));
        if (!rc) rc = dcem_rt_text(t, 2, event_labels[e->kind].id);
        if (!rc) rc = dcem_rt_text(t, 3, label);
        if (!rc) rc = dcem_rt_text(t, 4, a);
        if (!rc) rc = dcem_rt_text(t, 5, b);
        if (!rc) rc = dcem_rt_num(t, 6, (double)e->count, DCEM_RT_INT);
        if (!rc && e->kind == EV_ESTIMATED) rc = dcem_rt_num(t, 7, fixed(dcem_ukwh_kwh(e->ukwh), 3), DCEM_RT_KWH);
        if (!rc && e->kind == EV_ESTIMATED) rc = dcem_rt_text(t, 8, cause_name(e->cause));
    }
    return rc;
}

static int method_table(const dcem_report *r, dcem_rt_table *t)
{
    static const char *const cols[][2] = {
        {"序号", "No."}, {"中文", "Chinese"}, {"英文", "English"}};
    static const double widths[] = {6, 80, 80};
    int rc = columns(t, cols, widths, 3);
    t->wrap = 1;
    method m = {0};
    method_build(r, &m);
    if (m.failed) rc = DCEM_ENOMEM;
    for (size_t i = 0; i < m.n && !rc; i++) {
        rc = dcem_rt_row(t);
        if (!rc) rc = dcem_rt_num(t, 0, (double)(i + 1), DCEM_RT_INT);
        if (!rc) rc = dcem_rt_text(t, 1, m.zh[i]);
        if (!rc) rc = dcem_rt_text(t, 2, m.en[i]);
    }
    method_free(&m);
    return rc;
}

int dcem_report_tables(const dcem_report *r, dcem_rt_table *tables[DCEM_REPORT_N_TABLES])
{
    static const struct {
        const char *file, *sheet;
        int (*fill)(const dcem_report *, dcem_rt_table *);
    } sheets[DCEM_REPORT_N_TABLES] = {
        {"summary", "概要 Summary", summary_table},
        {"figures", "指标 Figures", figures_table},
        {"verdicts", "判定 Verdicts", verdicts_table},
        {"meters", "计量器具 Meters", meters_table},
        {"meter-energy", "分表电量 Meter energy", meter_energy_table},
        {"events", "计数器事件 Events", events_table},
        {"method", "方法 Method", method_table},
    };
    int rc = 0;
    for (size_t i = 0; i < DCEM_REPORT_N_TABLES; i++)
        tables[i] = NULL;
    for (size_t i = 0; i < DCEM_REPORT_N_TABLES && !rc; i++) {
        tables[i] = dcem_rt_new(sheets[i].file, sheets[i].sheet);
        rc = tables[i] ? sheets[i].fill(r, tables[i]) : DCEM_ENOMEM;
    }
    if (rc)
        for (size_t i = 0; i < DCEM_REPORT_N_TABLES; i++)
            dcem_rt_free(tables[i]), tables[i] = NULL;
    return rc;
}

/* ---- JSON ---- */

static cJSON *time_item(const dcem_report *r, int64_t t_ms)
{
    char b[40];
    dcem_report_time(r, t_ms, b, sizeof b);
    return cJSON_CreateString(b);
}

static void add_figures(const dcem_report *r, cJSON *root)
{
    const dcem_site *site = r->ledger;
    const dcem_policy *pol = r->pol;
    /* the same "site" and "policy" objects as dcem-audit --json prints */
    cJSON *f = cJSON_AddObjectToObject(root, "figures");
    dcem_audit_doc_head(f, site, pol);
    cJSON *periods = cJSON_AddArrayToObject(f, "periods");
    /* the engine's documents verbatim: not a digit is reformatted */
    for (int i = 0; i < r->n_periods; i++)
        cJSON_AddItemToArray(periods, cJSON_CreateRaw(r->doc_text[i]));
}

static void add_verdicts(const dcem_report *r, cJSON *root)
{
    cJSON *a = cJSON_AddArrayToObject(root, "verdicts");
    for (int p = 0; p < r->n_periods; p++) {
        const cJSON *period = field(r->doc[p], "period", NULL), *v;
        cJSON_ArrayForEach(v, field(r->doc[p], "verdicts", NULL))
        {
            int id = cJSON_IsString(v) ? verdict_id(v->valuestring) : -1;
            if (id < 0) continue;
            const char *clause = dcem_verdict_clause(id);
            int c = clause_index(clause);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "period", cJSON_IsString(period) ? period->valuestring : "");
            cJSON_AddStringToObject(o, "verdict", v->valuestring);
            cJSON_AddStringToObject(o, "zh", verdict_labels[id].zh);
            cJSON_AddStringToObject(o, "en", verdict_labels[id].en);
            cJSON_AddStringToObject(o, "clause", clause);
            cJSON_AddStringToObject(o, "basis_zh", c >= 0 ? clause_labels[c].zh : clause);
            cJSON_AddStringToObject(o, "basis_en", c >= 0 ? clause_labels[c].en : clause);
            cJSON_AddItemToArray(a, o);
        }
    }
}

static void add_inventory(const dcem_report *r, cJSON *root)
{
    cJSON *a = cJSON_AddArrayToObject(root, "inventory");
    for (size_t i = 0; i < r->ledger->n_meters; i++) {
        const dcem_meter *m = &r->ledger->meters[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", m->id);
        cJSON_AddStringToObject(o, "role", dcem_role_name(m->role));
        cJSON_AddStringToObject(o, "model", m->model);
        cJSON_AddStringToObject(o, "accuracy_class", m->accuracy_class);
        cJSON_AddStringToObject(o, "calibrated_on", m->calibrated_on);
        cJSON_AddNumberToObject(o, "rated_kw", m->rated_kw);
        if (isnan(m->counter_modulo_kwh))
            cJSON_AddNullToObject(o, "counter_modulo_kwh");
        else
            cJSON_AddNumberToObject(o, "counter_modulo_kwh", m->counter_modulo_kwh);
        cJSON_AddNumberToObject(o, "counter_resolution_kwh", m->counter_resolution_kwh);
        cJSON_AddBoolToObject(o, "in_figures", dcem_role_in_figures(m->role));
        cJSON_AddNumberToObject(o, "ct_ratio", m->ct_ratio);
        cJSON_AddNumberToObject(o, "pt_ratio", m->pt_ratio);
        cJSON_AddItemToArray(a, o);
    }
}

static void add_events(const dcem_report *r, cJSON *root)
{
    size_t nm = r->ledger->n_meters;
    cJSON *mi = cJSON_AddArrayToObject(root, "meter_intervals");
    for (int p = 0; p < r->n_periods; p++) {
        const cJSON *period = field(r->doc[p], "period", NULL);
        for (size_t i = 0; i < nm; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "period", cJSON_IsString(period) ? period->valuestring : "");
            cJSON_AddStringToObject(o, "meter", r->ledger->meters[i].id);
            cJSON_AddNumberToObject(o, "estimated_intervals",
                                    (double)r->est_iv[(size_t)p * nm + i]);
            cJSON_AddNumberToObject(o, "integrated_intervals",
                                    (double)r->int_iv[(size_t)p * nm + i]);
            cJSON_AddItemToArray(mi, o);
        }
    }
    cJSON *ev = cJSON_AddObjectToObject(root, "events");
    cJSON *rows = cJSON_AddArrayToObject(ev, "rows");
    for (size_t i = 0; i < r->n_events; i++) {
        const dcem_report_event *e = &r->events[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "meter", r->ledger->meters[e->meter].id);
        cJSON_AddStringToObject(o, "role", dcem_role_name(r->ledger->meters[e->meter].role));
        cJSON_AddStringToObject(o, "event", event_labels[e->kind].id);
        cJSON_AddItemToObject(o, "from", time_item(r, e->from_ms));
        cJSON_AddItemToObject(o, "to", time_item(r, e->to_ms));
        cJSON_AddNumberToObject(o, "count", (double)e->count);
        if (e->kind == EV_ESTIMATED) {
            cJSON_AddItemToObject(o, "estimated_kwh", dcem_json_num(dcem_ukwh_kwh(e->ukwh), 3));
            cJSON_AddStringToObject(o, "cause", cause_name(e->cause));
        } else {
            cJSON_AddNullToObject(o, "estimated_kwh");
            cJSON_AddNullToObject(o, "cause");
        }
        cJSON_AddItemToArray(rows, o);
    }
    cJSON_AddNumberToObject(ev, "max_rows", DCEM_REPORT_MAX_EVENTS);
    cJSON_AddNumberToObject(ev, "dropped", (double)r->events_dropped);
}

static void add_inputs(const dcem_report *r, cJSON *root)
{
    cJSON *in = cJSON_AddObjectToObject(root, "inputs");
    cJSON_AddStringToObject(in, "config", r->cfg->file);
    cJSON *st = cJSON_AddObjectToObject(in, "store");
    cJSON_AddStringToObject(st, "backend", r->cfg->store.backend);
    if (!strcmp(r->cfg->store.backend, "sqlite"))
        cJSON_AddStringToObject(st, "path", r->cfg->store.path);
    else /* never the DSN itself: it may hold a password */
        cJSON_AddStringToObject(st, "database", r->cfg->store.label);
    cJSON_AddNumberToObject(st, "retention_days", (double)r->cfg->store.retention_days);
    cJSON *p = cJSON_AddObjectToObject(in, "policy");
    cJSON_AddStringToObject(p, "file", r->policy_file);
    cJSON_AddStringToObject(p, "sha256", r->policy_sha);
    cJSON *l = cJSON_AddObjectToObject(in, "ledger");
    cJSON_AddStringToObject(l, "file", r->ledger_file);
    cJSON_AddStringToObject(l, "sha256", r->ledger_sha);
    if (!r->exported) {
        cJSON_AddNullToObject(in, "readings");
        return;
    }
    cJSON *rd = cJSON_AddObjectToObject(in, "readings");
    cJSON_AddStringToObject(rd, "file", "readings.csv");
    cJSON_AddNumberToObject(rd, "rows", (double)r->readings_rows);
    cJSON_AddItemToObject(rd, "from", time_item(r, r->export_from_ms));
    cJSON_AddItemToObject(rd, "to", time_item(r, r->export_to_ms));
    cJSON_AddNumberToObject(rd, "context_rows", (double)r->context_rows);
    cJSON_AddNumberToObject(rd, "context_per_meter", DCEM_REPORT_CONTEXT_READINGS);
    int64_t need = r->export_from_ms - (r->pol->data.max_gap_days + 1) * DCEM_MS_PER_DAY;
    int pruned = r->pruned_before_ms != INT64_MIN && r->pruned_before_ms > need;
    cJSON_AddBoolToObject(rd, "complete", !pruned);
    if (r->pruned_before_ms == INT64_MIN)
        cJSON_AddNullToObject(rd, "pruned_before");
    else
        cJSON_AddItemToObject(rd, "pruned_before", time_item(r, r->pruned_before_ms));
    char cmd[DCEM_REPORT_COMMAND_MAX];
    dcem_report_audit_command(r, 0, cmd, sizeof cmd);
    cJSON_AddStringToObject(rd, "audit_command", cmd);
}

char *dcem_report_json_text(const dcem_report *r)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    cJSON_AddStringToObject(root, "format", "dcem-report/1");
    cJSON *rep = cJSON_AddObjectToObject(root, "report");
    int annual = r->kind == DCEM_PERIOD_YEAR;
    cJSON_AddStringToObject(rep, "kind", annual ? "year" : "month");
    cJSON_AddStringToObject(rep, "period", r->period);
    cJSON_AddStringToObject(rep, "site", r->ledger->site);
    cJSON_AddStringToObject(rep, "title_zh", annual ? "年度能源消费报告" : "月度能耗报告");
    cJSON_AddStringToObject(rep, "title_en",
                            annual ? "Annual energy consumption report" : "Monthly energy report");
    cJSON_AddItemToObject(rep, "start", time_item(r, r->start_ms));
    cJSON_AddItemToObject(rep, "end", time_item(r, r->end_ms));
    cJSON_AddItemToObject(rep, "as_of", time_item(r, r->as_of_ms));
    cJSON_AddItemToObject(rep, "generated", time_item(r, r->generated_ms));
    cJSON_AddStringToObject(rep, "generator", r->generator);
    add_inputs(r, root);
    add_figures(r, root);
    add_verdicts(r, root);
    add_inventory(r, root);
    add_events(r, root);
    method m = {0};
    method_build(r, &m);
    cJSON *ma = cJSON_AddArrayToObject(root, "method");
    for (size_t i = 0; i < m.n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "zh", m.zh[i] ? m.zh[i] : "");
        cJSON_AddStringToObject(o, "en", m.en[i] ? m.en[i] : "");
        cJSON_AddItemToArray(ma, o);
    }
    int failed = m.failed;
    method_free(&m);
    char *text = failed ? NULL : cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}
