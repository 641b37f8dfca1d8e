#!/usr/bin/python3
"""Random meter streams for tests/integration/pipeline_property.sh.

  pipeline_property.py gen SEED DIR    readings of the ledger DIR/sites/prop.yaml
  pipeline_property.py check DIR       compares the three paths' output

gen writes, from SEED alone (random.Random(SEED)):
  DIR/sorted.csv      every reading once, sorted by time (time,meter,kwh,kw,ratio)
  DIR/deliver-N.csv   the order the collector is given them: the last third
                      first, then the first two thirds, then a random 10 % again
  DIR/events.txt      what was put in the stream (printed on failure)

The stream, 2025-03-20 to 2025-04-10 (local, across the March / April month
end), the site's interval 15 minutes:
  p-fac   facility      polled every 5 min; one glitch (an absurd reading)
  p-it    it            polled every 15 min; replaced once (the counter
                        restarts near 0)
  p-pv    green_onsite  counter_modulo_kwh 10000, starts near it: rollovers
  p-cool  cooling       behind CTs: kwh is the register times the ratio of the
                        row's ratio column, which changes once (40 -> 80)
Every meter: poll times jittered by up to a minute, ~3 % of readings missing
at random and one block of missing readings across the month end (lengths
drawn per seed).

check compares, exactly (integers):
  (b) the collector's stored intervals (DIR/store-intervals.csv) with
      dcem-audit --intervals over sorted.csv (DIR/audit-intervals.csv), per
      meter and interval, every micro-kWh column and count — except each
      meter's last interval, which the collector keeps open until the meter's
      next reading; its month and year figures (DIR/collector-*.json) with
      dcem-audit --json (DIR/audit-*.json), field by field; its export
      (DIR/export.csv) with sorted.csv;
  (c) the agent's local figures (DIR/local.csv, tests/tools/
      dcem-local-figures.c) with dcem-audit's intervals added up by role, per
      interval, up to the first meter's last interval (the agent cannot close
      an interval before every meter's next reading).
"""
import collections
import csv
import datetime
import decimal
import json
import random
import sys

TZ = datetime.timezone(datetime.timedelta(hours=8))
START = datetime.datetime(2025, 3, 20, tzinfo=TZ)
END = datetime.datetime(2025, 4, 10, tzinfo=TZ)
MONTH_END = datetime.datetime(2025, 4, 1, tzinfo=TZ)
MIN = 60000
ROLES = {"p-fac": "facility", "p-it": "it", "p-pv": "green_onsite", "p-cool": "cooling"}
POLL_MIN = {"p-fac": 5, "p-it": 15, "p-pv": 15, "p-cool": 15}
MODULO = {"p-pv": 10000}


def ms(t):
    return round(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000)


def fmt(t_ms):
    d = datetime.datetime.fromtimestamp(t_ms / 1000, TZ)
    return d.isoformat(timespec="milliseconds")


def gen(seed, w):
    rnd = random.Random(seed)
    t0, t1 = int(START.timestamp() * 1000), int(END.timestamp() * 1000)
    month_end = int(MONTH_END.timestamp() * 1000)
    rows, events = [], []
    for meter in ROLES:
        step = POLL_MIN[meter] * MIN
        times = [t0 + i * step for i in range((t1 - t0) // step + 1)]
        # a block of missing readings across the month end, and ~3 % at random
        n_block = rnd.randint(1, 12 if step == 15 * MIN else 30)
        at = month_end - rnd.randint(0, n_block) * step
        block = {t for t in times if at <= t < at + n_block * step}
        events.append(f"{meter}: {n_block} readings missing from {fmt(at)}")
        keep = [t for t in times if t not in block and (t in (t0, t1) or rnd.random() > 0.03)]
        # jitter: polled up to a minute late (never past the next poll)
        keep = [t if t in (t0, t1) else t + rnd.randint(0, 59999) for t in keep]
        reg = decimal.Decimal(rnd.randint(100000, 90000000)) / 100  # the register, 0.01 kWh
        if meter in MODULO:
            reg = decimal.Decimal(MODULO[meter] - rnd.randint(50, 400))
        ratio = 40 if meter == "p-cool" else None
        replaced = keep[rnd.randint(len(keep) // 5, len(keep) * 4 // 5)] if meter == "p-it" else None
        ratio_at = keep[rnd.randint(len(keep) // 5, len(keep) * 4 // 5)] if meter == "p-cool" else None
        glitch_at = keep[rnd.randint(len(keep) // 5, len(keep) * 4 // 5)] if meter == "p-fac" else None
        kw = {"p-fac": 400.0, "p-it": 300.0, "p-pv": 0.0, "p-cool": 2.0}[meter]
        prev = None
        for t in keep:
            if prev is not None:
                hours = (t - prev) / 3600000
                if meter == "p-pv":  # daylight only
                    hour = datetime.datetime.fromtimestamp(t / 1000, TZ).hour
                    kw = max(0.0, 150 * (1 - abs(hour - 12.5) / 6.5)) * rnd.uniform(0.6, 1)
                else:
                    kw = min(max(kw * rnd.uniform(0.9, 1.1), 0.2 * kw + 1), {"p-fac": 600,
                             "p-it": 450, "p-cool": 4}[meter])
                reg += decimal.Decimal(round(kw * hours * 100)) / 100
                if meter in MODULO and reg >= MODULO[meter]:
                    reg -= MODULO[meter]
                    events.append(f"{meter}: rollover before {fmt(t)}")
            prev = t
            if t == replaced:
                reg = decimal.Decimal(rnd.randint(0, 300)) / 100
                events.append(f"{meter}: replaced at {fmt(t)}, counter restarts at {reg}")
            if t == ratio_at:
                ratio = 80
                events.append(f"{meter}: ratio 40 -> 80 at {fmt(t)}")
            value = reg * ratio if ratio else reg
            if t == glitch_at:
                value += 500000
                events.append(f"{meter}: glitch at {fmt(t)} (+500000 kWh, one reading)")
            rows.append((t, meter, f"{value}", "", f"{ratio}" if ratio else ""))
    rows.sort()
    head = "time,meter,kwh,kw,ratio\n"

    def write(name, rs):
        with open(f"{w}/{name}", "w") as f:
            f.write(head + "".join(f"{fmt(t)},{m},{k},{p},{r}\n" for t, m, k, p, r in rs))

    write("sorted.csv", rows)
    third = len(rows) * 2 // 3
    again = sorted(rnd.sample(rows, len(rows) // 10))
    write("deliver-1.csv", rows[third:])  # the latest third first ("live")
    write("deliver-2.csv", rows[:third])  # then the history before it: late
    write("deliver-3.csv", again)  # a random 10 % again: duplicates
    events.append(f"{len(rows)} readings; delivered as {len(rows) - third} from {fmt(rows[third][0])},"
                  f" then the {third} before, then {len(again)} again")
    open(f"{w}/events.txt", "w").write("\n".join(events) + "\n")
    print("\n".join("  " + e for e in events if "rollover" not in e))
    print(f"  rollovers: {sum('rollover' in e for e in events)}")


F = ["ukwh", "estimated_ukwh", "estimated_day_ukwh", "estimated_month_ukwh", "estimated_year_ukwh",
     "integrated_ukwh", "covered_ms", "readings", "discarded", "rollovers", "resets"]


def utc(t_ms):
    return datetime.datetime.fromtimestamp(t_ms / 1000, TZ).isoformat(timespec="minutes")


def check(w):
    bad = []
    # the export is every reading once
    def table(path):
        # the export writes each value as the double it is (17 digits): compared as doubles
        return collections.Counter((ms(r["time"]), r["meter"], float(r["kwh"]), float(r["ratio"] or 1))
                                   for r in csv.DictReader(open(path)))
    sent, exp = table(f"{w}/sorted.csv"), table(f"{w}/export.csv")
    if sent != exp:
        bad.append(f"(b) export: {sum(exp.values())} rows for {sum(sent.values())} readings;"
                   f" missing {sorted(sent - exp)[:3]}, extra {sorted(exp - sent)[:3]}")

    def ivs(path, start, end):
        out = {}
        for r in csv.DictReader(open(path)):
            out[(r["meter"], start(r))] = {"end": end(r), **{k: int(r[k]) for k in F}}
        return out

    aud = ivs(f"{w}/audit-intervals.csv", lambda r: ms(r["start"]), lambda r: ms(r["end"]))
    sto = ivs(f"{w}/store-intervals.csv", lambda r: int(r["start_ms"]), lambda r: int(r["end_ms"]))
    last = {}
    for m, s in aud:
        last[m] = max(last.get(m, s), s)
    n = 0
    for k in sorted(set(aud) | set(sto)):
        if last.get(k[0]) == k[1]:
            continue  # the collector's open interval
        a, s = aud.get(k), sto.get(k)
        if a != s:
            diff = {f: (a and a[f], s and s[f]) for f in ["end"] + F if (a and a[f]) != (s and s[f])}
            bad.append(f"(b) interval {k[0]} {utc(k[1])}: (dcem-audit, collector) {diff}")
        n += 1
    # the month and year figures
    for y in ("2025",):
        col = json.load(open(f"{w}/collector-{y}.json"))
        au = json.load(open(f"{w}/audit-{y}.json"))
        if au["readings"]["rejected"]:
            bad.append(f"(a) dcem-audit rejected {au['readings']['rejected']} rows of sorted.csv")
        if len(col) != len(au["periods"]):
            bad.append(f"(b) {len(col)} periods from the collector, {len(au['periods'])} from dcem-audit")
        for c, a in zip(col, au["periods"]):
            for k, v in a.items():
                if c.get(k) != v:
                    bad.append(f"(b) {a['period']} {k}: collector {c.get(k)!r}, dcem-audit {v!r}")
    periods = {p["period"]: p for p in au["periods"]}
    counts = {k: periods["2025"][k] for k in ("discarded_readings", "rollovers", "resets")}
    if not all(counts.values()):  # the stream is meant to have each: a test of nothing otherwise
        bad.append(f"(a) the stream lacks a counter event: {counts}")
    # (c) the agent's local figures against dcem-audit's intervals by role
    cutoff = min(last.values())
    want = collections.Counter()
    for (m, s), a in aud.items():
        if s < cutoff:
            want[(s, ROLES[m])] += a["ukwh"]
    got = collections.Counter()
    for line in open(f"{w}/local.csv"):
        s, e, role, u = line.strip().split(",")
        if int(s) < cutoff:
            got[(int(s), role)] += int(u)
    n_local = 0
    for k in sorted(set(want) | set(got)):
        if want.get(k, 0) != got.get(k, 0):
            bad.append(f"(c) interval {utc(k[0])} {k[1]}: dcem-audit {want.get(k, 0)} ukWh,"
                       f" the agent's local figures {got.get(k, 0)} ukWh"
                       f" (difference {got.get(k, 0) - want.get(k, 0)})")
        n_local += 1
    print(f"  (b) {n} intervals compared ({len(last)} open ones left out), 2025 and its months"
          f" field by field; (c) {n_local} interval x role sums; 2025: {counts}")
    if bad:
        print(f"  {len(bad)} differences:")
        print("\n".join("    " + b for b in bad[:25]))
        sys.exit(1)


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(int(sys.argv[2]), sys.argv[3])
    else:
        check(sys.argv[2])
