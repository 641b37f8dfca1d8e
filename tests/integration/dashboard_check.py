#!/usr/bin/python3
"""Checks a DOM the dashboard rendered (chromium --dump-dom) against the API.

    API=http://127.0.0.1:PORT TOKEN=… KIND=site|site-live|site-zh|overview|overview-zh|operator|forbidden|public
    SITE=yz-alpha GLITCH=<time of the glitched reading> dashboard_check.py PAGE.html

Every element with data-figure="<endpoint>:<json path>" is compared with the
value at that path of the API's answer to GET /api/v1/<endpoint> (fetched
with curl and the same token; public endpoints without one), formatted by
the rules of gateway/dashboard/js/format.js (data-format). Then the view's
own checks (KIND): what must be on it, the language, who sees what.
site-live is a site's live view (this year) of a site whose readings run up
to now: besides the site checks, its figures are numbers, not dashes — the
four PUE, energy, green share, cap use — its burn-down has a line point and
a bar of energy for every month so far, and live power a sparkline.
Prints one line of counts; exits 1 naming every mismatch."""
import html.parser
import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal

API, TOKEN, KIND, SITE = os.environ["API"], os.environ.get("TOKEN", ""), os.environ["KIND"], os.environ.get("SITE", "")
LIVE = KIND == "site-live"
if LIVE:
    KIND = "site"
NONE = "—"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
CJK = re.compile(r"[\u4e00-\u9fff]")


class Page(html.parser.HTMLParser):
    """The figures (attributes and text), the body's attributes, all text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []  # [tag, attrs, text parts or None]
        self.figures = []
        self.body = {}
        self.html = {}
        self.rows = []  # data-site of overview rows
        self.zone = {}  # period -> the API URLs of its zone report files the page offers
        self.text = []
        self.svg = []  # (tag, attrs) of the charts' lines, points and bars

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if tag == "html":
            self.html = a
        if tag == "tr" and "data-site" in a:
            self.rows.append(a["data-site"])
        if tag == "li" and "data-zone" in a:
            self.zone_period = a["data-zone"]
            self.zone[self.zone_period] = []
        if tag == "a" and "data-zone-file" in a:
            self.zone[self.zone_period].append(a["data-zone-file"])
        if tag in ("polyline", "rect", "circle"):
            self.svg.append((tag, a))
        if tag in VOID:
            return
        self.stack.append([tag, a, [] if "data-figure" in a else None])

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        while self.stack:
            t, a, parts = self.stack.pop()
            if parts is not None:
                self.figures.append((a, "".join(parts).strip()))
            if t == tag:
                break

    def handle_data(self, data):
        self.text.append(data)
        for t, a, parts in self.stack:
            if parts is not None:
                parts.append(data)


def fixed(v, n):
    q = Decimal(v).quantize(Decimal(1).scaleb(-n), rounding=ROUND_HALF_UP)
    return f"{q:,.{n}f}"


def fmt(v, spec):
    """js/format.js in Python: toFixed rounds the exact double half away from zero."""
    if v is None:
        return NONE
    kind, _, n = spec.partition(":")
    if kind == "fixed":
        return fixed(v, int(n or 0))
    if kind == "pct":
        return fixed(v * 100, int(n or 0)) + "%"
    if kind == "time":
        return str(v)[:16].replace("T", " ", 1)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


cache = {}


def fetch(ep):
    if ep not in cache:
        cmd = ["curl", "-s", "-w", "\n%{http_code}", f"{API}/api/v1/{ep}"]
        if TOKEN and not ep.startswith("public/"):
            cmd[1:1] = ["-H", f"Authorization: Bearer {TOKEN}"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        body, _, code = out.rpartition("\n")
        cache[ep] = (int(code), json.loads(body) if body else None)
    return cache[ep]


MISSING = object()


def walk(obj, path):
    for k in path.split("."):
        if isinstance(obj, list):
            if not k.isdigit() or int(k) >= len(obj):
                return MISSING
            obj = obj[int(k)]
        elif isinstance(obj, dict):
            if k not in obj:
                return MISSING
            obj = obj[k]
        else:
            return MISSING
    return obj


page = Page()
page.feed(open(sys.argv[1], encoding="utf-8").read())
page.close()
text = " ".join(page.text)
bad = []


def check(cond, what):
    if not cond:
        bad.append(what)
    return cond


# --- every figure equals the API's -------------------------------------------
figs = []
for a, shown in page.figures:
    ep, _, path = a["data-figure"].rpartition(":")
    spec = a.get("data-format", "text")
    figs.append((ep, path, spec, shown, a))
    code, body = fetch(ep)
    if not check(code == 200, f"{ep}: HTTP {code}"):
        continue
    v = walk(body, path)
    if not check(v is not MISSING, f"{ep}:{path}: no such value in the API's answer"):
        continue
    if spec == "code":
        raw = "" if v is None else v if isinstance(v, str) else json.dumps(v)
        check(a.get("data-value") == raw, f"{ep}:{path}: data-value {a.get('data-value')!r}, API {raw!r}")
        check(shown != "", f"{ep}:{path}: an empty badge")
        if KIND.endswith("-zh") and isinstance(v, str) and v not in ("", "ok"):
            check(CJK.search(shown) or shown == v.upper(), f"{ep}:{path}: {v!r} shown untranslated as {shown!r}")
    else:
        want = fmt(v, spec)
        check(shown == want, f"{ep}:{path} ({spec}): page {shown!r}, API {v!r} -> {want!r}")

eps = {f[0] for f in figs}
paths = {(f[0], f[1]) for f in figs}


def has(ep, path):
    return (ep, path) in paths


def has_re(ep_re, path_re):
    return [p for p in paths if re.fullmatch(ep_re, p[0]) and re.fullmatch(path_re, p[1])]


# --- the view ------------------------------------------------------------------
state, view = page.body.get("data-state"), page.body.get("data-view")
if KIND == "forbidden":
    check(state == "error" and page.body.get("data-error") == "403", f"state {state}, error {page.body.get('data-error')}")
    check(not any(SITE in ep for ep in eps), f"figures of {SITE} shown to its non-operator: {sorted(eps)}")
    check("403" in text, "no 403 message")
else:
    check(state == "ready", f"data-state {state!r}, not ready")

if KIND in ("site", "site-zh"):
    s = SITE
    check(view == "site", f"view {view}")
    p, fg, v = f"sites/{s}/power", f"sites/{s}/figures?period=", f"sites/{s}/verdicts"
    need = [(p, "total_kw")] + [(p, f"roles.{r}") for r in ("facility", "it", "green_onsite", "compute", "cooling", "other")]
    need += [(fg + k, "figures.pue") for k in ("month", "ytd", "rolling12")]
    need += [(fg + "ytd", f"figures.{k}") for k in ("green_share", "green_threshold", "cap.approved_kwh",
                                                     "cap.ytd_kwh", "cap.usage", "cap.projected_kwh")]
    need += [(v, "verdicts.0.id"), (v, "verdicts.0.clause"), (f"sites/{s}/meters", "meters.0.status"),
             (f"sites/{s}/meters", "meters.0.last_reading.t"), (f"sites/{s}/meters", "meters.0.month.rollovers"),
             (f"sites/{s}/meters", "meters.0.month.discarded_readings"), (f"sites/{s}", "name")]
    for n in need:
        check(has(*n), f"not shown: {n[0]}:{n[1]}")
    check(has_re(re.escape(fg) + r"interval(&at=.*)?", r"figures\.pue"), "no interval PUE")
    # the burn-down: each month of the year so far, the cumulative energy at its end
    ytd = fetch(fg + "ytd")[1]["figures"]
    months = int(ytd["as_of"][5:7])
    pts = has_re(re.escape(fg) + r"month&at=\d{4}-\d\d", r"figures\.cap\.ytd_kwh")
    check(len(pts) == months, f"burn-down points {len(pts)}, months {months}")
    check(int(page.body.get("data-power-updates", "0")) >= 2, f"live power refreshed {page.body.get('data-power-updates')} times")
    check(len(figs) >= 150, f"only {len(figs)} figures")
    mt = fetch(f"sites/{s}/meters")[1]
    if s == "yz-beta":
        stale = [f for f in figs if f[0] == f"sites/{s}/meters" and f[2] == "code" and f[4].get("data-value") == "stale"]
        check(len(stale) == 1, "the stale meter is not shown stale")
        check(any(a.get("data-value") == "meter_stale" for a, _ in page.figures), "no meter_stale alert")
        check(any(a.get("data-value") == "gateway_offline" for a, _ in page.figures), "no gateway_offline alert")
        check(any(a.get("data-value") == "cap_projected_to_exceed" or a.get("data-value") == "cap_warning"
                  or a.get("data-value") == "cap_exceeded" for a, _ in page.figures), "no cap verdict")
        g = os.environ.get("GLITCH", "")
        crac = [m for m in mt["meters"] if m["id"] == "beta-crac"][0]
        if g and crac["month"] and g[:7] == crac["month"]["period"]:  # the glitch fell in this month
            i = mt["meters"].index(crac)
            shown = [f[3] for f in figs if f[0] == f"sites/{s}/meters" and f[1] == f"meters.{i}.month.discarded_readings"]
            check(shown and shown[0] not in ("0", NONE), f"the glitch is not shown as a discarded reading: {shown}")
    if LIVE:
        # this year's live view with data: numbers, not dashes
        shown = {(f[0], f[1]): f[3] for f in figs}
        fg = f"sites/{s}/figures?period="
        def number(ep, path):
            t = shown.get((ep, path), NONE)
            try:
                return float(t.replace(",", "").rstrip("%"))
            except ValueError:
                return None
        iv = has_re(re.escape(fg) + r"interval(&at=.*)?", r"figures\.pue")
        for ep in [fg + "month", fg + "ytd", fg + "rolling12"] + [p[0] for p in iv[:1]]:
            v = number(ep, "figures.pue")
            check(v is not None and 1 < v < 2, f"live view: {ep}: PUE shown as {shown.get((ep, 'figures.pue'))!r}")
            v = number(ep, "figures.total_kwh")
            check(v is not None and v > 0, f"live view: {ep}: energy shown as {shown.get((ep, 'figures.total_kwh'))!r}")
        for path in ("figures.green_share", "figures.cap.ytd_kwh", "figures.cap.usage", "figures.cap.projected_kwh",
                     "figures.completeness"):
            v = number(fg + "ytd", path)
            check(v is not None and v > 0, f"live view: year to date {path} shown as {shown.get((fg + 'ytd', path))!r}")
        # the burn-down: the line from 1 January through each month's end to
        # now, rising, and a bar of energy per month so far
        lines = [a["points"] for t, a in page.svg if t == "polyline" and a.get("class") == "cum-line"]
        ys = [float(p.split(",")[1]) for p in lines[0].split()] if lines else []
        check(len(ys) == months + 2, f"burn-down line: {len(ys)} points, want {months + 2} (1 January, {months} months, now)")
        check(all(b <= a for a, b in zip(ys, ys[1:])) and ys and ys[-1] < ys[0], f"burn-down line does not rise: {ys}")
        bars = [a for t, a in page.svg if t == "rect" and a.get("class") == "bar" and not (a.get("width") == "14" and a.get("height") == "10")]
        check(len(bars) == months and all(float(a["height"]) > 0 for a in bars),
              f"burn-down bars: {[a.get('height') for a in bars]}, want {months} of non-zero energy")
        # live power: a non-zero total, refreshed into a sparkline
        v = number(p, "total_kw")
        check(v is not None and v > 0, f"live power shown as {shown.get((p, 'total_kw'))!r}")
        spark = [a["points"] for t, a in page.svg if t == "polyline" and a.get("class") == "spark-line"]
        check(spark and len(spark[0].split()) >= 2, f"no live power sparkline: {spark}")
    if KIND == "site-zh":
        for label in ("电能利用效率 PUE", "绿电占比", "用能上限", "实时功率", "计量表状态", "告警", "判定"):
            check(label in text, f"Chinese label {label!r} missing")
        check(page.html.get("lang") == "zh-CN", f"html lang {page.html.get('lang')}")
    else:
        for label in ("Power usage effectiveness (PUE)", "Green share", "Energy cap burn-down", "Live power", "Meter health"):
            check(label in text, f"English label {label!r} missing")
        check(page.html.get("lang") == "en", f"html lang {page.html.get('lang')}")

if KIND in ("overview", "overview-zh", "operator"):
    check(view == "overview", f"view {view}")
    sites = [x["site"] for x in fetch("sites")[1]["sites"]]
    check(page.rows == sites, f"overview rows {page.rows}, the API's sites {sites}")
    for s in sites:
        for n in ((f"sites/{s}/figures?period=ytd", "figures.pue"), (f"sites/{s}/figures?period=ytd", "figures.green_share"),
                  (f"sites/{s}/figures?period=ytd", "figures.green_threshold"), (f"sites/{s}/figures?period=ytd", "figures.cap.usage"),
                  (f"sites/{s}/verdicts", "verdicts.0.id"), (f"sites/{s}/power", "total_kw")):
            check(has(*n), f"overview: not shown: {n[0]}:{n[1]}")
    if KIND == "operator":
        check(sites == ["yz-alpha"] and not any("yz-beta" in ep for ep in eps), f"the operator sees {sites}, {sorted(eps)}")
        check(not page.zone and 'id="zone"' not in open(sys.argv[1]).read(), "the operator is offered the zone report")
    else:
        check(sites == ["yz-alpha", "yz-beta"], f"the regulator sees {sites}")
        # the zone report of last year and of last month, every XLSX, JSON and CSV file the API lists
        now = datetime.now()
        lm = (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
        check(sorted(page.zone) == sorted([str(now.year - 1), lm]), f"zone periods offered {sorted(page.zone)}")
        for p, urls in page.zone.items():
            status, listing = fetch(f"zone/reports/{p}")
            want = [f["url"] for f in listing.get("files", []) if f["name"].endswith((".xlsx", ".json", ".csv"))] if status == 200 else []
            check(urls == want and (status == 404 or len(want) == 3), f"zone {p}: the page offers {urls}, the API lists {want} ({status})")
    if KIND == "overview-zh":
        for label in ("总览", "绿电占比", "判定", "合规数据中心公示名单"):
            check(label in text, f"Chinese label {label!r} missing")
        check(page.html.get("lang") == "zh-CN", f"html lang {page.html.get('lang')}")

if KIND == "public":
    check(view == "public", f"view {view}")
    check(eps and all(ep.startswith("public/compliant") for ep in eps), f"a public page showing {sorted(eps)}")
    check("public/compliant" in eps, "last year's list not shown")
    for ep in eps:  # every listed site shown (equal figures alone would pass an empty table)
        listed = [f[3] for f in figs if f[0] == ep and re.fullmatch(r"sites\.\d+\.site", f[1])]
        want = [x["site"] for x in fetch(ep)[1]["sites"]]
        check(listed == want, f"{ep}: shown {listed}, the API lists {want}")
    # yz-alpha is reward-eligible this year once the year has a day (not on 1 January)
    if datetime.now(timezone(timedelta(hours=8))).strftime("%m-%d") != "01-01":
        check(any(x["site"] == "yz-alpha" for ep in eps for x in fetch(ep)[1]["sites"]),
              "yz-alpha is not on this year's public list")

print(f"dashboard {KIND}{' (live view)' if LIVE else ''}{' ' + SITE if SITE else ''}: {len(figs)} figures from {len(eps)} endpoints checked "
      f"against the API, {len(bad)} problems")
if bad:
    print("\n".join(bad[:40]))
    sys.exit(1)
