#!/usr/bin/env bash
# dcem-report end to end: a real mosquitto on loopback, a collector on a
# SQLite store, two months each of the sample sites yz-alpha (March-April
# 2025: a meter replaced, a glitch) and yz-beta (May-June 2025: a register
# rollover, a differential-pricing candidate) generated with faults by
# dcem-gen, and four days of yz-gamma across New Year with a gap over
# midnight (two generated years: the counters do not meet, a reset), all
# replayed through the real ingest path by dcem-replay.
#
#   report.sh BUILD_DIR SOURCE_DIR
#
# Proves, for a month, a month as of a date inside it, and a year: the JSON
# report's figures equal dcem-audit's over the report's own readings.csv
# (the command the report prints), field by field; the XLSX cells and the
# CSV fields (energy by role, PUE, green share, threshold, verdicts with
# their clauses, surcharge, completeness, cap, inventory, meter energy,
# events, the pinned hashes) equal the JSON's; counter events are the ones
# injected; readings.csv holds the collector's export of the range;
# `sha256sum -c MANIFEST.sha256` passes and fails on a tampered file; bad
# input exits non-zero with a message and writes nothing; a second run
# replaces an earlier report in place; a report made beside the running
# collector equals one made after it stopped; without readings.csv's rows of
# the previous year dcem-audit could not reproduce January.
set -euo pipefail
build=$1
src=$2
. "$(dirname "$0")/lib.sh"
col=$build/gateway/collector/dcem-collector
report=$build/gateway/report/dcem-report
replay=$build/tests/dcem-replay
gen=$build/tests/dcem-gen
audit=$build/gateway/audit/dcem-audit
policy=$src/configs/policy/beijing-etown-2024.yaml
make_work report
t0=$SECONDS

start_mosquitto

mkdir -p "$work/sites"
cp "$src/configs/sites/yz-"{alpha,beta,gamma}.yaml "$work/sites/"
cat >"$work/collector.yaml" <<EOF
collector: report-test
sites: sites
policy: $policy
identity: {allow_unsigned: true}  # lab: this test's traffic is unsigned
mqtt: {uri: "tcp://127.0.0.1:$port", version: 5}
store: {path: store.db}
EOF
# two months of each site, through the reading that closes the second one
cut() { # cut IN OUT FIRST_DAY END_DAY
  awk -F, -v a="$3" -v b="$4" 'NR == 1 || (substr($1, 1, 10) >= a && substr($1, 1, 10) < b) ||
    substr($1, 1, 19) == b "T00:00:00"' "$1" >"$2"
}
"$gen" --site "$work/sites/yz-alpha.yaml" --year 2025 --faults --out "$work/alpha-year.csv" \
  --truth "$work/alpha-truth.json" >/dev/null
"$gen" --site "$work/sites/yz-beta.yaml" --year 2025 --faults --out "$work/beta-year.csv" \
  --truth "$work/beta-truth.json" >/dev/null
cut "$work/alpha-year.csv" "$work/alpha.csv" 2025-03-01 2025-05-01
cut "$work/beta-year.csv" "$work/beta.csv" 2025-05-01 2025-07-01
# yz-gamma: 2024-12-30 to 2025-01-03 from two generated years, silent from
# 20:00 on New Year's Eve to 04:00 on 1 January: the collector spreads the
# gap's energy into January, so readings.csv must carry each meter's last
# readings of 2024 for dcem-audit to do the same
"$gen" --site "$work/sites/yz-gamma.yaml" --year 2024 --out "$work/g24.csv" --truth "$work/g24.json" >/dev/null
"$gen" --site "$work/sites/yz-gamma.yaml" --year 2025 --out "$work/g25.csv" --truth "$work/g25.json" >/dev/null
awk -F, 'NR == 1 || (substr($1, 1, 16) >= "2024-12-30T00:00" && substr($1, 1, 16) < "2024-12-31T20:00")' \
  "$work/g24.csv" >"$work/gamma.csv"
awk -F, 'NR > 1 && ((substr($1, 1, 16) >= "2025-01-01T04:00" && substr($1, 1, 10) < "2025-01-03") ||
  substr($1, 1, 19) == "2025-01-03T00:00:00")' "$work/g25.csv" >>"$work/gamma.csv"
rm "$work/alpha-year.csv" "$work/beta-year.csv" "$work/g24.csv" "$work/g25.csv"

"$col" -c "$work/collector.yaml" >"$work/collector.out" 2>"$work/collector.err" &
col_pid=$!
pids+=("$col_pid")
wait_for "the collector's subscription" 10 grep -q "^info: mqtt: subscribed to" "$work/collector.err"
"$replay" --uri "tcp://127.0.0.1:$port" --site yz-alpha --gateway gw-a --csv "$work/alpha.csv" \
  --timeout-s 120 >"$work/replay-a.out" 2>&1 &
ra=$!
"$replay" --uri "tcp://127.0.0.1:$port" --site yz-beta --gateway gw-b --csv "$work/beta.csv" \
  --timeout-s 120 >"$work/replay-b.out" 2>&1 &
rb=$!
"$replay" --uri "tcp://127.0.0.1:$port" --site yz-gamma --gateway gw-g --csv "$work/gamma.csv" \
  --timeout-s 120 >"$work/replay-g.out" 2>&1 &
rg=$!
wait "$ra" || fail "replay of yz-alpha: $(cat "$work/replay-a.out")"
wait "$rb" || fail "replay of yz-beta: $(cat "$work/replay-b.out")"
wait "$rg" || fail "replay of yz-gamma: $(cat "$work/replay-g.out")"
# a report while the collector runs (its connection open, recomputing)
"$report" -c "$work/collector.yaml" --site yz-beta --month 2025-05 --format json --out "$work/live" \
  >/dev/null 2>"$work/live.stderr" || fail "a report beside the running collector: $(cat "$work/live.stderr")"
kill -TERM "$col_pid"
wait "$col_pid" || fail "the collector did not stop cleanly"
echo "replayed yz-alpha and yz-beta (two months each) and yz-gamma (New Year) in $((SECONDS - t0)) s"

# ---- reports ----
cd "$work"
# a relative config path: the report must still name its inputs absolutely,
# since its audit command runs from the report's directory
run_report() { # run_report OUT ARGS...
  local out=$1
  shift
  "$report" -c ./collector.yaml --out "$out" "$@" >"$work/$out.stdout" 2>"$work/$out.stderr" ||
    fail "dcem-report $*: $(cat "$work/$out.stderr")"
}
run_report alpha-month --site yz-alpha --month 2025-04 --format xlsx,csv,json
run_report alpha-asof --site yz-alpha --month 2025-04 --as-of 2025-04-16 --format json,xlsx
run_report alpha-year --site yz-alpha --year 2025
run_report beta-month --site yz-beta --month 2025-06 --format csv,json,xlsx
run_report gamma-newyear --site yz-gamma --month 2025-01 --as-of 2025-01-03 --format json
run_report beta-may --site yz-beta --month 2025-05 --format json
tail -1 alpha-month.stdout
tail -1 beta-month.stdout

# the collector's own export of the range the report covers
"$col" export -c "$work/collector.yaml" --site yz-alpha --from 2025-01-01T00:00:00+08:00 \
  --to 2025-05-01T00:00:00+08:00 >"$work/alpha-export.csv"

# every report reproduced by the dcem-audit command it prints, over its own readings.csv
for d in alpha-month alpha-asof alpha-year beta-month gamma-newyear; do
  $PY - "$work/$d" "$audit" <<'EOF'
import glob, json, shlex, subprocess, sys
d, audit = sys.argv[1], sys.argv[2]
rep = json.load(open(glob.glob(f"{d}/*.json")[0]))
cmd = shlex.split(rep["inputs"]["readings"]["audit_command"])
assert cmd[0] == "dcem-audit", cmd
out = subprocess.run([audit] + cmd[1:], cwd=d, capture_output=True, text=True, check=True).stdout
open(f"{d}.audit.json", "w").write(out)
EOF
done

# the gamma export without its rows of 2024 (times are UTC in readings.csv)
awk -F, 'NR == 1 || $1 >= "2024-12-31T16:00:00Z"' "$work/gamma-newyear/readings.csv" >"$work/gamma-nohead.csv"
"$audit" --site "$work/sites/yz-gamma.yaml" --policy "$policy" --readings "$work/gamma-nohead.csv" \
  --month 2025-01 --as-of 2025-01-03 --json >"$work/gamma-nohead.audit.json"

$PY - "$work" "$policy" <<'EOF'
import csv, datetime, glob, hashlib, io, json, os, sys
import openpyxl, openpyxl.utils

w, policy = sys.argv[1], sys.argv[2]
bad = []
def check(cond, what):
    if not cond: bad.append(what)

# The layout, written down independently of the code: header -> (key, sub) of
# a dcem-audit/1 period (docs/reports.md, "Figures").
FIG = {
    "期间 Period": ("period", None), "类型 Kind": ("kind", None), "开始 Start": ("start", None),
    "结束 End": ("end", None), "数据截至 Data as of": ("as_of", None),
    "用电总量 Total energy (kWh)": ("total_kwh", None),
    "市电进线电量 Utility incomer energy (kWh)": ("facility_kwh", None),
    "自有绿电发电量 On-site green generation (kWh)": ("green_onsite_kwh", None),
    "IT设备用电量 IT energy (kWh)": ("it_kwh", None),
    "算力设备用电量 Compute energy (kWh)": ("compute_kwh", None),
    "制冷用电量 Cooling energy (kWh)": ("cooling_kwh", None),
    "其他用电量 Other energy (kWh)": ("other_kwh", None),
    "绿电交易与绿证电量 Green contracts and certificates (kWh)": ("green_ledger_kwh", None),
    "绿电总量 Green energy (kWh)": ("green_kwh", None),
    "电能利用效率 PUE": ("pue", None), "绿电占比 Green share": ("green_share", None),
    "当年绿电占比要求 Green-share threshold": ("green_threshold", None),
    "算力用电占比 Compute share": ("compute_share", None),
    "数据完整率 Completeness": ("completeness", None),
    "估算电量 Estimated energy (kWh)": ("estimated_kwh", None),
    "功率积分电量 Power-integrated energy (kWh)": ("integrated_kwh", None),
    "估算时段数 Estimated intervals": ("estimated_intervals", None),
    "积分时段数 Integrated intervals": ("integrated_intervals", None),
    "剔除读数 Discarded readings": ("discarded_readings", None),
    "计数器翻转 Counter rollovers": ("rollovers", None), "计数器复位 Counter resets": ("resets", None),
    "批复年用电量 Approved annual energy (kWh)": ("cap", "approved_kwh"),
    "年初至今用电量 Year-to-date energy (kWh)": ("cap", "ytd_kwh"),
    "批复用电量使用率 Cap usage": ("cap", "usage"),
    "预计全年用电量 Projected year energy (kWh)": ("cap", "projected_kwh"),
    "已达预警线(%) Cap warning level reached (%)": ("cap", "warning_percent"),
    "差别电价计费范围 Surcharge applies to": ("surcharge", "applies_to"),
    "差别电价计费电量 Surcharge energy (kWh)": ("surcharge", "kwh"),
    "差别电价加价 Surcharge rate (CNY/kWh)": ("surcharge", "cny_per_kwh"),
    "估算差别电价电费 Estimated surcharge (CNY)": ("surcharge", "cny"),
    "判定代码 Verdict ids": ("verdicts", None),
}
# docs/reports.md: each verdict in words, zh then en (the Summary's 判定 Verdicts)
WORDS = {"in_scope": "适用本措施 In scope of the measures",
         "out_of_scope": "不适用本措施 Out of scope of the measures",
         "insufficient_data": "数据不足，不作结论 Insufficient data: no conclusion",
         "provisional": "临时结果（期间未结束） Provisional: the period is not over",
         "pue_below_limit": "PUE低于限定值 PUE below the limit",
         "pue_above_limit": "PUE超过限定值 PUE above the limit",
         "green_share_above_threshold": "绿电占比超过当年要求 Green share above the year's threshold",
         "reward_eligible": "可出具年度能源消费报告并享受奖励 Reward-eligible: annual report and rewards",
         "differential_pricing_candidate": "差别电价对象候选 Differential-pricing candidate",
         "cap_warning": "用电量达到批复预警线 Approved cap: warning level reached",
         "cap_projected_to_exceed": "预计超出批复用电量 Projected to exceed the approved cap",
         "cap_exceeded": "已超出批复用电量 Approved cap exceeded",
         "computing_center_conversion": "转型智能算力中心 Computing-center conversion",
         "green_share_below_threshold": "绿电占比未超过当年要求 Green share not above the year's threshold"}
# docs/figures.md: the clause behind each verdict
CLAUSE = {"in_scope": "scope", "out_of_scope": "scope", "insufficient_data": "1", "provisional": "-",
          "pue_below_limit": "2", "pue_above_limit": "5", "green_share_above_threshold": "2",
          "reward_eligible": "2", "differential_pricing_candidate": "5", "cap_warning": "9",
          "cap_projected_to_exceed": "9", "cap_exceeded": "9", "computing_center_conversion": "2",
          "green_share_below_threshold": "2"}
FIGURE_ROLES = {"facility", "it", "green_onsite", "compute"}

def value(period, key, sub):
    v = period.get(key)
    if sub is not None: v = v.get(sub) if isinstance(v, dict) else None
    if key == "verdicts": v = " ".join(v)
    return v

def same(cell, want, where):
    """A cell of the XLSX (typed) or the CSV (text) against the JSON value."""
    if isinstance(cell, str) and cell == "" or cell is None:
        ok = want is None or want == ""
    elif isinstance(want, bool):  # XLSX: in words; CSV: for tools
        ok = cell == ("是 Yes" if want else "否 No") or cell == ("true" if want else "false")
    elif isinstance(want, (int, float)):
        try: ok = not isinstance(cell, bool) and float(cell) == float(want)
        except ValueError: ok = False
    elif isinstance(cell, datetime.datetime):
        ok = cell.date().isoformat() == want
    else:
        ok = str(cell) == want
    check(ok, f"{where}: {cell!r} in the file, {want!r} in the JSON")

def xlsx_tables(path):
    wb = openpyxl.load_workbook(path, data_only=True)
    return {ws.title: [list(r) for r in ws.iter_rows(values_only=True)] for ws in wb.worksheets}

def csv_tables(d, base):
    out = {}
    for f in glob.glob(f"{d}/{base}-*.csv"):
        with open(f, encoding="utf-8") as fh:
            text = fh.read()
        check(text.startswith("\ufeff"), f"{f}: no UTF-8 byte-order mark")
        out[f[len(f"{d}/{base}-"):-4]] = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    return out

SHEETS = {"summary": "概要 Summary", "figures": "指标 Figures", "verdicts": "判定 Verdicts",
          "meters": "计量器具 Meters", "meter-energy": "分表电量 Meter energy",
          "events": "计数器事件 Events", "method": "方法 Method"}

def ledger_meters(path):
    """id -> {role, model, accuracy_class, calibrated_on} read from the YAML text."""
    meters, cur, section = {}, None, None
    for line in open(path, encoding="utf-8"):
        s = line.split("#")[0].rstrip()
        if s and not s.startswith(" ") and s.endswith(":"):
            section = s[:-1]
        if section == "meters" and s.lstrip().startswith("- id:"):
            cur = meters.setdefault(s.split(":", 1)[1].strip(), {})
        elif cur is not None and s.startswith("    ") and ":" in s:
            k, v = s.strip().split(":", 1)
            cur[k] = v.strip().strip('"')
        elif s and not s.startswith(" "):
            cur = None
    return meters

def check_tables(t, rep, where):
    periods = rep["figures"]["periods"]
    # figures: one row per period, every column
    fig = t["figures"]
    check(set(fig[0]) == set(FIG), f"{where} figures headers {fig[0]}")
    check(len(fig) - 1 == len(periods), f"{where} figures: {len(fig) - 1} rows, {len(periods)} periods")
    for row, p in zip(fig[1:], periods):
        for h, cell in zip(fig[0], row):
            if h in FIG: same(cell, value(p, *FIG[h]), f"{where} figures {p['period']} {h}")
    # summary: the report's own period, the site and the pinned inputs
    summ = {r[0]: r[1] for r in t["summary"][1:]}
    main = periods[-1]
    for h, (k, sub) in FIG.items():
        check(h in summ, f"{where} summary has no {h}")
        if h in summ: same(summ[h], value(main, k, sub), f"{where} summary {h}")
    site = rep["figures"]["site"]
    same(summ.get("数据中心 Site"), site["site"], f"{where} summary site")
    same(summ.get("适用本措施 In scope"), site["in_scope"], f"{where} summary in scope")
    same(summ.get("PUE限定值 PUE limit"), rep["figures"]["policy"]["pue_limit"], f"{where} PUE limit")
    same(summ.get("判定 Verdicts"), "\n".join(WORDS[v] for v in main["verdicts"]), f"{where} verdicts in words")
    # files by name (the SHA-256 identifies them), not the paths of the machine that made it
    same(summ.get("政策文件 Policy file"), os.path.basename(policy), f"{where} policy file name")
    same(summ.get("台账文件 Ledger file"), os.path.basename(rep["inputs"]["ledger"]["file"]), f"{where} ledger file name")
    check("/" not in summ.get("复算命令 Audit command", "/"), f"{where} audit command names a path")
    pin = rep["inputs"]
    same(summ.get("政策文件 SHA-256 Policy file SHA-256"), hashlib.sha256(open(policy, "rb").read()).hexdigest(),
         f"{where} policy SHA-256")
    same(summ.get("台账 SHA-256 Ledger file SHA-256"),
         hashlib.sha256(open(pin["ledger"]["file"], "rb").read()).hexdigest(), f"{where} ledger SHA-256")
    same(summ.get("读数行数 Readings rows"), pin["readings"]["rows"], f"{where} readings rows")
    # verdicts with their clauses
    want = [(v["period"], v["verdict"], v["clause"]) for v in rep["verdicts"]]
    flat = [(p["period"], v, CLAUSE[v]) for p in periods for v in p["verdicts"]]
    check(want == flat, f"{where} JSON verdicts {want} against the periods' {flat}")
    got = [(str(r[0]), r[1], r[4]) for r in t["verdicts"][1:]]
    check(got == flat, f"{where} verdicts sheet {got}, expected {flat}")
    # inventory against the JSON and the ledger file itself
    inv = {m["id"]: m for m in rep["inventory"]}
    led = ledger_meters(pin["ledger"]["file"])
    check(set(inv) == set(led), f"{where} inventory {sorted(inv)} vs ledger {sorted(led)}")
    check(len(t["meters"]) - 1 == len(inv), f"{where} meters rows")
    for r in t["meters"][1:]:
        m, l = inv.get(r[0], {}), led.get(r[0], {})
        for col, key in ((1, "role"), (3, "model"), (4, "accuracy_class"), (5, "calibrated_on"),
                         (6, "rated_kw"), (7, "counter_modulo_kwh"), (8, "counter_resolution_kwh"),
                         (9, "in_figures")):
            same(r[col], m.get(key), f"{where} meter {r[0]} {key}")
        for col, key in ((1, "role"), (3, "model"), (4, "accuracy_class"), (5, "calibrated_on")):
            same(r[col], l.get(key), f"{where} meter {r[0]} {key} against the ledger")
    # meter energy: the periods' meters and the intervals counted from the store
    mi = {(x["period"], x["meter"]): x for x in rep["meter_intervals"]}
    rows = [(p, m) for p in periods for m in p["meters"]]
    check(len(t["meter-energy"]) - 1 == len(rows), f"{where} meter energy rows")
    for r, (p, m) in zip(t["meter-energy"][1:], rows):
        x = mi[(p["period"], m["id"])]
        for col, want_v in enumerate([p["period"], m["id"], m["role"], m["kwh"], m["estimated_kwh"],
                                      m["completeness"], m["discarded_readings"], m["rollovers"],
                                      m["resets"], x["estimated_intervals"], x["integrated_intervals"]]):
            same(r[col], want_v, f"{where} meter energy {p['period']} {m['id']} column {col}")
    # events, row by row
    ev = rep["events"]["rows"]
    check(len(t["events"]) - 1 == len(ev), f"{where} events rows {len(t['events']) - 1} vs {len(ev)}")
    for r, e in zip(t["events"][1:], ev):
        for col, key in ((0, "meter"), (1, "role"), (2, "event"), (4, "from"), (5, "to"), (6, "count"),
                         (7, "estimated_kwh"), (8, "cause")):
            same(r[col], e[key], f"{where} event {e['meter']} {e['from']} {key}")
    check(len(t["method"]) > 8 and pin["policy"]["sha256"] in t["method"][9][2],
          f"{where} the method does not pin the policy")

def check_json(d, rep, aud):
    periods = rep["figures"]["periods"]
    # identical to dcem-audit over the report's own readings.csv, field by field
    check(aud["readings"]["rejected"] == 0, f"{d}: dcem-audit rejected {aud['readings']['rejected']} rows")
    for k in ("site", "policy"):
        check(rep["figures"][k] == aud[k], f"{d} {k}: report {rep['figures'][k]} audit {aud[k]}")
    check(len(periods) == len(aud["periods"]), f"{d}: {len(periods)} periods, dcem-audit {len(aud['periods'])}")
    for p, a in zip(periods, aud["periods"]):
        for k, v in a.items():
            check(p.get(k) == v, f"{d} {a['period']} {k}: report {p.get(k)!r}, dcem-audit {v!r}")
    # the counts per meter add up to the period's, and the event log to the counts
    mi = {(x["period"], x["meter"]): x for x in rep["meter_intervals"]}
    for p in periods:
        fm = [m for m in p["meters"] if m["role"] in FIGURE_ROLES]
        for k in ("discarded_readings", "rollovers", "resets"):
            check(sum(m[k] for m in fm) == p[k], f"{d} {p['period']} {k} per meter")
        check(sum(mi[(p["period"], m["id"])]["estimated_intervals"] for m in fm) == p["estimated_intervals"],
              f"{d} {p['period']} estimated intervals per meter")
    main = periods[-1]
    if rep["events"]["dropped"] == 0:
        log = {}
        for e in rep["events"]["rows"]:
            log[(e["meter"], e["event"])] = log.get((e["meter"], e["event"]), 0) + e["count"]
        for m in main["meters"]:
            for k, ev in (("discarded_readings", "discarded_reading"), ("rollovers", "rollover"),
                          ("resets", "reset")):
                check(log.get((m["id"], ev), 0) == m[k], f"{d} event log {m['id']} {ev}")
            check(log.get((m["id"], "estimated"), 0) == mi[(main["period"], m["id"])]["estimated_intervals"],
                  f"{d} event log {m['id']} estimated intervals")

def check_manifest(d, rep):
    names = sorted(os.listdir(d))
    lines = open(f"{d}/MANIFEST.sha256").read().splitlines()
    listed = [l[66:] for l in lines]
    check(listed == sorted(n for n in names if n != "MANIFEST.sha256"), f"{d}: manifest lists {listed}, dir has {names}")
    for l in lines:
        check(hashlib.sha256(open(f"{d}/{l[66:]}", "rb").read()).hexdigest() == l[:64], f"{d}: {l}")

reports = {}
for d in ("alpha-month", "alpha-asof", "alpha-year", "beta-month", "gamma-newyear"):
    path = f"{w}/{d}"
    base = os.path.basename(glob.glob(f"{path}/*.json")[0])[:-5]
    rep = json.load(open(f"{path}/{base}.json"))
    reports[d] = rep
    check_json(d, rep, json.load(open(f"{path}.audit.json")))
    check_manifest(path, rep)
    if os.path.exists(f"{path}/{base}.xlsx"):
        x = xlsx_tables(f"{path}/{base}.xlsx")
        check(list(x) == list(SHEETS.values()), f"{d}: sheets {list(x)}")
        check_tables({k: x[v] for k, v in SHEETS.items()}, rep, f"{d} xlsx")
    if glob.glob(f"{path}/{base}-*.csv"):
        c = csv_tables(path, base)
        check(sorted(c) == sorted(SHEETS), f"{d}: CSV files {sorted(c)}")
        check_tables(c, rep, f"{d} csv")

# the numbers are typed in the XLSX: numbers with formats, not text
ws = openpyxl.load_workbook(f"{w}/alpha-month/yz-alpha-2025-04.xlsx")["指标 Figures"]
hdr = [c.value for c in ws[1]]
pue = ws.cell(row=2, column=hdr.index("电能利用效率 PUE") + 1)
share = ws.cell(row=2, column=hdr.index("绿电占比 Green share") + 1)
total = ws.cell(row=2, column=hdr.index("用电总量 Total energy (kWh)") + 1)
check(isinstance(pue.value, float) and pue.number_format == "0.0000", f"PUE cell {pue.value!r} {pue.number_format}")
check(share.number_format == "0.00%" and total.number_format == "#,##0.000", "number formats")
cal = openpyxl.load_workbook(f"{w}/alpha-month/yz-alpha-2025-04.xlsx")["计量器具 Meters"].cell(row=2, column=6)
check(cal.is_date, f"calibration date cell {cal.value!r} is not a date")

# printed, every sheet is A4, one page wide (a row's label and values stay
# together), its header row on every page, the table as the print area, a
# wide table landscape; the Summary's values wrap beside their labels
for path in (f"{w}/alpha-year/yz-alpha-2025.xlsx", f"{w}/alpha-month/yz-alpha-2025-04.xlsx"):
    for ws in openpyxl.load_workbook(path).worksheets:
        where = f"{os.path.basename(path)} {ws.title}"
        ps = ws.page_setup
        # fitToWidth absent means 1 (the OOXML default)
        check(ws.sheet_properties.pageSetUpPr.fitToPage and ps.fitToWidth in (None, 1) and ps.fitToHeight == 0,
              f"{where}: not fit to one page wide ({ps.fitToWidth} x {ps.fitToHeight})")
        check(ps.paperSize == 9, f"{where}: paper {ps.paperSize}, not A4")
        check(ws.print_title_rows in ("1:1", "$1:$1"), f"{where}: header rows repeated {ws.print_title_rows!r}")
        last = f"${openpyxl.utils.get_column_letter(ws.max_column)}${ws.max_row}"
        check(ws.print_area and ws.print_area[0].endswith(last), f"{where}: print area {ws.print_area}, table to {last}")
        wide = sum(ws.column_dimensions[openpyxl.utils.get_column_letter(c)].width or 14
                   for c in range(1, ws.max_column + 1)) > 110
        check(ps.orientation == ("landscape" if wide else "portrait"), f"{where}: {ps.orientation}, wide {wide}")
    summ = openpyxl.load_workbook(path)["概要 Summary"]
    check(all(summ.cell(row=r, column=2).alignment.wrap_text for r in range(2, summ.max_row + 1) if summ.cell(row=r, column=2).value is not None and isinstance(summ.cell(row=r, column=2).value, str)),
          f"{path}: Summary values do not wrap")

# what the sites are built to show (tests/gen/dcem-gen.c --faults, configs/sites/)
am, ay, aa, bm = (reports[k]["figures"]["periods"] for k in ("alpha-month", "alpha-year", "alpha-asof", "beta-month"))
check(am[0]["period"] == "2025-04" and "reward_eligible" in am[0]["verdicts"], f"alpha April {am[0]['verdicts']}")
check(am[0]["discarded_readings"] == 1, f"alpha April: the glitch on alpha-ups-b, {am[0]['discarded_readings']}")
check(len(ay) == 13 and ay[2]["resets"] == 1 and ay[3]["discarded_readings"] == 1,
      "alpha year: a reset in March and a glitch in April")
check("insufficient_data" in ay[12]["verdicts"], f"alpha year on two months: {ay[12]['verdicts']}")
check(ay[0]["completeness"] == 0 and ay[2]["completeness"] > 0.99, "alpha year completeness by month")
check("provisional" in aa[0]["verdicts"] and aa[0]["as_of"] == "2025-04-16T00:00:00+08:00", f"as-of {aa[0]['as_of']}")
check(bm[0]["rollovers"] >= 1, f"beta June: the injected rollover, {bm[0]['rollovers']}")
check("differential_pricing_candidate" in bm[0]["verdicts"] and bm[0]["surcharge"]["cny"] > 0,
      f"beta June: {bm[0]['verdicts']} surcharge {bm[0]['surcharge']}")
gn = reports["gamma-newyear"]
g = gn["figures"]["periods"][0]
n_meters = len(gn["inventory"])
check(gn["inputs"]["readings"]["context_rows"] >= 2 * n_meters, f"gamma: context rows {gn['inputs']['readings']}")
first = [e for e in gn["events"]["rows"] if e["event"] == "estimated" and e["from"] == "2025-01-01T00:00:00+08:00"]
check(g["estimated_kwh"] > 0 and len(first) == n_meters, f"gamma January: the gap over midnight, {first}")
# and those 2024 rows are what lets dcem-audit see it: without them it does not
head = json.loads(open(f"{w}/gamma-nohead.audit.json").read())["periods"][0]
check(head["estimated_kwh"] != g["estimated_kwh"], "gamma: dcem-audit agrees even without the 2024 rows")
ev = reports["alpha-year"]["events"]["rows"]
check(any(e["event"] == "reset" and e["meter"] == "alpha-ups-a" for e in ev), "the reset in the event log")
check(any(e["event"] == "estimated" and e["cause"] == "reset" for e in ev), "the reset's estimated interval")

# readings.csv holds the collector's own export of the year to date, in order
exp = open(f"{w}/alpha-export.csv").read().splitlines()[1:]
mine = open(f"{w}/alpha-month/readings.csv").read().splitlines()
check(mine[0] == "time,meter,kwh,kw,ratio", f"readings.csv header {mine[0]}")
body = mine[1:]
ctx = reports["alpha-month"]["inputs"]["readings"]["context_rows"]
check(len(body) == len(exp) + ctx and exp[0] in body, f"readings.csv: {len(body)} rows, export {len(exp)} + {ctx}")
if exp[0] in body:
    i = body.index(exp[0])
    check(body[i:i + len(exp)] == exp, "readings.csv does not hold the collector's export")

live = json.load(open(glob.glob(f"{w}/live/*.json")[0]))["figures"]
later = json.load(open(glob.glob(f"{w}/beta-may/*.json")[0]))["figures"]
check(live == later, "the report made beside the running collector differs from the one made after")

summary = ", ".join(f"{k} {len(r['figures']['periods'])} periods" for k, r in reports.items())
print(f"identical to dcem-audit: {summary}; XLSX and CSV cells equal the JSON")
print(f"alpha April PUE {am[0]['pue']} green {am[0]['green_share']} (threshold {am[0]['green_threshold']}), "
      f"{am[0]['verdicts']}; beta June PUE {bm[0]['pue']}, surcharge {bm[0]['surcharge']['cny']} CNY")
if bad: print("\n".join(bad[:30])); print(f"... {len(bad)} problems"); sys.exit(1)
EOF

# ---- the manifest: sha256sum checks it, and a changed file fails it ----
for d in alpha-month alpha-asof alpha-year beta-month gamma-newyear; do
  (cd "$work/$d" && sha256sum --quiet -c MANIFEST.sha256) || fail "$d: sha256sum -c failed"
done
cp -r "$work/alpha-month" "$work/tampered"
sed -i '2s/,\([0-9]\)/,9\1/' "$work/tampered/readings.csv"
if (cd "$work/tampered" && sha256sum --quiet -c MANIFEST.sha256 >/dev/null 2>&1); then
  fail "a tampered readings.csv passes sha256sum -c"
fi

# ---- the zone report: every site in one table, each row its site report's ----
for p in "--month 2025-06" "--year 2025"; do
  tag=${p##* }
  # shellcheck disable=SC2086
  run_report "zone-$tag" --zone $p
  for s in yz-alpha yz-beta yz-gamma; do
    # shellcheck disable=SC2086
    run_report "zone-$tag-$s" --site "$s" $p --format json
  done
  (cd "$work/zone-$tag" && sha256sum --quiet -c MANIFEST.sha256) || fail "zone-$tag: sha256sum -c failed"
  $PY - "$work" "$tag" <<'EOF'
import csv, io, json, sys
import openpyxl
w, tag = sys.argv[1], sys.argv[2]
bad = []
def check(cond, what):
    if not cond: bad.append(what)
z = json.load(open(f"{w}/zone-{tag}/zone-{tag}.json"))
check(z["format"] == "dcem-zone-report/1" and z["period"] == tag, f"zone {z['format']} {z['period']}")
# docs/reports.md: the status is the first of these verdicts a site has, most urgent first
ORDER = ["cap_exceeded", "differential_pricing_candidate", "cap_projected_to_exceed", "cap_warning",
         "insufficient_data", "green_share_below_threshold", "pue_above_limit", "in_scope",
         "reward_eligible", "out_of_scope"]
def rank(verdicts):
    return next((i for i, s in enumerate(ORDER) if s in verdicts), len(ORDER))
sites = z["sites"]
want = sorted(sites, key=lambda s: (rank(s["figures"]["verdicts"]), s["site"]))
check([s["site"] for s in sites] == [s["site"] for s in want], f"zone {tag}: order {[s['site'] for s in sites]}")
check(sorted(s["site"] for s in sites) == ["yz-alpha", "yz-beta", "yz-gamma"], "zone: every site of the config")
for s in sites:
    own = json.load(open(f"{w}/zone-{tag}-{s['site']}/{s['site']}-{tag}.json"))["figures"]["periods"][-1]
    check(s["figures"] == own, f"zone {tag} {s['site']}: figures differ from its site report")
    r = rank(own["verdicts"])
    check(s["status"] == (ORDER[r] if r < len(ORDER) else "in_scope"), f"zone {tag} {s['site']}: status {s['status']} for {own['verdicts']}")
    check(s["final"] == ("provisional" not in own["verdicts"]), f"zone {tag} {s['site']}: final")
t = z["totals"]
def total(k, only_pue=False):
    return sum(s["figures"][k] or 0 for s in sites if not only_pue or s["figures"]["pue"] is not None)
for k in ("total_kwh", "it_kwh", "green_kwh"):
    check(abs(t[k] - total(k)) < 1e-6, f"zone {tag} totals {k}: {t[k]} vs {total(k)}")
check(t["sites"] == 3 and t["in_scope"] == sum("in_scope" in s["figures"]["verdicts"] for s in sites), f"zone totals {t}")
it = total("it_kwh", True)
check(t["pue"] is None if it == 0 else abs(t["pue"] - total("total_kwh", True) / it) < 1e-9, f"zone {tag} PUE {t['pue']}")
check(abs((t["surcharge_cny"] or 0) - sum((s["figures"]["surcharge"] or {}).get("cny") or 0 for s in sites)) < 1e-6,
      f"zone {tag} surcharge {t['surcharge_cny']}")
for k in ORDER:
    check(t["sites_with"][k] == sum(k in s["figures"]["verdicts"] for s in sites), f"zone {tag} count {k}")
# the CSV and the XLSX: one row per site in the JSON's order, then the totals
rows = list(csv.reader(io.StringIO(open(f"{w}/zone-{tag}/zone-{tag}-zone.csv", encoding="utf-8").read().lstrip("\ufeff"))))
x = [list(r) for r in openpyxl.load_workbook(f"{w}/zone-{tag}/zone-{tag}.xlsx")["全区 Zone"].iter_rows(values_only=True)]
for name, table in (("csv", rows), ("xlsx", x)):
    check(len(table) == len(sites) + 2, f"zone {tag} {name}: {len(table)} rows")
    h = table[0]
    for r, s in zip(table[1:], sites):
        f = s["figures"]
        check(r[h.index("数据中心 Site")] == s["site"] and r[h.index("状态 Status")] == s["status_words"],
              f"zone {tag} {name} {s['site']}: {r[:3]}")
        for col, v in (("电能利用效率 PUE", f["pue"]), ("用电总量 Total energy (kWh)", f["total_kwh"]),
                       ("批复用电量使用率 Cap usage", (f["cap"] or {}).get("usage"))):
            cell = r[h.index(col)]
            check((cell in (None, "") and v is None) or (v is not None and abs(float(cell) - v) < 1e-6),
                  f"zone {tag} {name} {s['site']} {col}: {cell!r} vs {v!r}")
        check(r[h.index("判定代码 Verdict ids")] == " ".join(f["verdicts"]), f"zone {tag} {name} {s['site']} ids")
    check(table[-1][0] == "合计 Total" and abs(float(table[-1][h.index("用电总量 Total energy (kWh)")]) - t["total_kwh"]) < 1e-3,
          f"zone {tag} {name}: totals row {table[-1][:2]}")
print(f"zone {tag}: " + ", ".join(f"{s['site']} {s['status']}" for s in sites) +
      f"; total {t['total_kwh']:.0f} kWh, PUE {t['pue']}, surcharge {t['surcharge_cny']}")
if bad: print("\n".join(bad[:30])); print(f"... {len(bad)} problems"); sys.exit(1)
EOF
done

# ---- bad input: a message, a non-zero exit, nothing written ----
expect_fail() { # expect_fail STATUS MESSAGE-PATTERN ARGS...
  local want=$1 pat=$2 rc=0
  shift 2
  "$report" "$@" >"$work/bad.out" 2>"$work/bad.err" || rc=$?
  [[ $rc == "$want" ]] || fail "dcem-report $*: exit $rc, expected $want ($(cat "$work/bad.err"))"
  grep -q -- "$pat" "$work/bad.err" || fail "dcem-report $*: no '$pat' in: $(cat "$work/bad.err")"
  [[ ! -e $work/bad-out ]] || fail "dcem-report $*: wrote $work/bad-out"
}
c=(-c "$work/collector.yaml")
expect_fail 2 "no such site" "${c[@]}" --site yz-nowhere --month 2025-04 --out "$work/bad-out"
expect_fail 2 "give --site S or --zone" "${c[@]}" --site yz-alpha --zone --month 2025-04 --out "$work/bad-out"
expect_fail 2 "nothing to report yet" "${c[@]}" --zone --month 2025-04 --as-of 2025-04-01 --out "$work/bad-out"
expect_fail 2 "--month '2025-13'" "${c[@]}" --site yz-alpha --month 2025-13 --out "$work/bad-out"
expect_fail 2 "--out DIR is required" "${c[@]}" --site yz-alpha --month 2025-04
expect_fail 2 "give --month" "${c[@]}" --site yz-alpha --month 2025-04 --year 2025 --out "$work/bad-out"
expect_fail 2 "'pdf' is not a format" "${c[@]}" --site yz-alpha --month 2025-04 --format json,pdf --out "$work/bad-out"
expect_fail 2 "after today" "${c[@]}" --site yz-alpha --month 2025-04 --as-of 2999-01-01 --out "$work/bad-out"
expect_fail 2 "nothing to report yet" "${c[@]}" --site yz-alpha --month 2025-04 --as-of 2025-04-01 --out "$work/bad-out"
sed 's/^store: {path: store.db}/store: {path: store.db, colour: blue}/' "$work/collector.yaml" >"$work/broken.yaml"
expect_fail 1 "broken.yaml:6" -c "$work/broken.yaml" --site yz-alpha --month 2025-04 --out "$work/bad-out"
sed 's/^store: {path: store.db}/store: {path: missing.db}/' "$work/collector.yaml" >"$work/nostore.yaml"
expect_fail 1 "missing.db" -c "$work/nostore.yaml" --site yz-alpha --month 2025-04 --out "$work/bad-out"
[[ ! -e $work/missing.db ]] || fail "a report created a store"
# a directory that holds something else is refused and left alone
mkdir "$work/bad-out"
echo keep >"$work/bad-out/notes.txt"
rc=0
"$report" "${c[@]}" --site yz-alpha --month 2025-04 --out "$work/bad-out" 2>"$work/bad.err" || rc=$?
[[ $rc == 1 ]] && grep -q "not part of an earlier report" "$work/bad.err" ||
  fail "a foreign directory: exit $rc, $(cat "$work/bad.err")"
[[ $(ls "$work/bad-out") == notes.txt ]] || fail "the foreign directory was changed"
[[ -z $(ls -d "$work"/bad-out.* 2>/dev/null) ]] || fail "temporary directories left behind"
# an earlier report is replaced whole: other formats, other files
run_report alpha-month --site yz-alpha --month 2025-04 --format json
ls "$work/alpha-month" | grep -q xlsx && fail "the earlier report's XLSX was left"
(cd "$work/alpha-month" && sha256sum --quiet -c MANIFEST.sha256) || fail "the replaced report's manifest"
[[ $(ls "$work/alpha-month" | wc -l) == 3 ]] || fail "replaced report holds $(ls "$work/alpha-month")"

echo "report.sh: passed in $((SECONDS - t0)) s"
