// The dashboard: routes (#site=…&lang=…), calls the collector's API with the
// user's token, and renders the overview, a site's view or, without a
// token, the public list of compliant sites. Sections refresh on their own
// timers (live power every few seconds).
//
// Every figure on the page is an API value, formatted by format.js and
// marked data-figure="<endpoint>:<json path>" with its data-format, where
// <endpoint> is the request exactly as made, after /api/v1/. Nothing here
// derives a figure from others; docs/dashboard.md says where each comes from.

import { at, format, NONE } from "./format.js";
import * as I from "./i18n.js";
import { burnDown, sparkline } from "./chart.js";

const TOKEN_KEY = "dcem.token";
const LANG_KEY = "dcem.lang";
const POWER_MS = 5000;     // live power
const HEALTH_MS = 15000;   // meters, alerts, the overview
const FIGURES_MS = 60000;  // periods, cap, verdicts: stored figures move with intervals and days

const S = {
  token: null,
  lang: "zh",
  site: null,
  gen: 0,            // bumped on every route: late answers of an old view are dropped
  timers: [],
  powerHistory: [],  // total_kw seen since the view opened (the sparkline)
  powerUpdates: 0,
  tokenBad: false,
  year: null,        // a past year to show (#year=YYYY): its figures as of its end; null: now
};

// The `at` of the figures of the year shown (#year=YYYY, a past year): its
// December, its last interval, the 12 months before 1 January of the next;
// nothing for now.
function atYear(period) {
  if (!S.year) return "";
  if (period === "month") return `&at=${S.year}-12`;
  if (period === "interval") return `&at=${encodeURIComponent(`${S.year}-12-31T23:59:59+08:00`)}`;
  return `&at=${S.year + 1}-01-01`;
}
// The year-to-date figures, or the whole of the year shown.
const ytdPeriod = () => (S.year ? `year&at=${S.year}` : "ytd");
const verdictsQuery = () => (S.year ? `?year=${S.year}` : "");

// Labels that say "this year" name the year when a past one is shown.
const YEAR_LABELS = {
  pue_ytd: ["PUE（{y} 年）", "PUE ({y})"],
  pue_ytd_short: ["{y} 年", "{y}"],
  verdicts_year: ["{y} 年判定", "Verdicts of {y}"],
  green_threshold: ["{y} 年门槛", "Threshold of {y}"],
};
const t = (key) => (S.year && YEAR_LABELS[key]
  ? YEAR_LABELS[key][S.lang === "zh" ? 0 : 1].replace("{y}", String(S.year))
  : I.t(key));

/* ---- API ---- */

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(ep, { auth = true } = {}) {
  const headers = { Accept: "application/json" };
  if (auth && S.token) headers.Authorization = "Bearer " + S.token;
  let r;
  try {
    r = await fetch(new URL("api/v1/" + ep, document.baseURI), { headers, cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, { error: String(e) });
  }
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) {
    if (r.status === 401 && auth) S.tokenBad = true;
    throw new ApiError(r.status, body);
  }
  return body;
}

/* ---- DOM helpers ---- */

function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
}

// A figure: the API value at path of data (fetched from ep), formatted.
function fig(ep, data, path, spec, cls = "") {
  return h("span", { class: ("fig " + cls).trim(), "data-figure": `${ep}:${path}`, "data-format": spec },
    format(at(data, path), spec));
}

// An identifier shown translated (verdict, role, status …): data-value keeps it.
function code(ep, data, path, nameFn, tone) {
  const v = at(data, path);
  const raw = v === null || v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v);
  return h("span", { class: `badge tone-${tone ? tone(v) : "info"}`, "data-figure": `${ep}:${path}`,
    "data-format": "code", "data-value": raw }, v === null || v === undefined ? NONE : nameFn(v));
}

function unit(u) { return h("span", { class: "unit" }, u); }

function section(id, titleKey, ...body) {
  return h("section", { id, class: "card" }, h("h2", { "data-i18n": titleKey }, t(titleKey)), ...body);
}

function errorBox(e) {
  const msg = e instanceof ApiError
    ? (e.status === 403 ? t("forbidden") : e.status === 404 ? t("not_found") : e.status === 401 ? t("token_bad")
      : `${t("error")} (${e.status || "network"}): ${(e.body && e.body.error) || e.message}`)
    : `${t("error")}: ${e}`;
  return h("p", { class: "error", "data-error": e instanceof ApiError ? String(e.status) : "js" }, msg);
}

// Replace the content of element id (if it is still on the page).
function fill(id, ...children) {
  const el = document.getElementById(id);
  if (!el) return;
  el.replaceChildren(...children.flat().filter((c) => c));
}

function verdictBadges(ep, data, listPath, withClause) {
  const list = at(data, listPath) || [];
  return h("div", { class: "badges" }, list.map((_, i) => {
    const p = withClause ? `${listPath}.${i}.id` : `${listPath}.${i}`;
    const b = code(ep, data, p, I.verdictName, I.verdictTone);
    if (!withClause) return b;
    // "-" is the API's clause of a verdict no clause stands behind (provisional)
    const clause = at(data, `${listPath}.${i}.clause`);
    return h("span", { class: "verdict" }, b, clause === "-" ? null :
      h("span", { class: "clause" }, t("clause") + " ", fig(ep, data, `${listPath}.${i}.clause`, "text")));
  }));
}

// A green-share bar: the share against the year's threshold (both API values).
function shareBar(ep, data, sharePath, thresholdPath) {
  const share = at(data, sharePath), thr = at(data, thresholdPath);
  const w = (v) => `${Math.max(0, Math.min(100, (v ?? 0) * 100))}%`;
  return h("div", { class: "share" },
    h("div", { class: "share-track" },
      h("div", { class: "share-fill " + (share !== null && thr !== null && share > thr ? "ok" : "short"), style: `width:${w(share)}` }),
      thr === null || thr === undefined ? null : h("div", { class: "share-mark", style: `left:${w(thr)}` })),
    h("div", { class: "share-text" },
      fig(ep, data, sharePath, "pct:1", "big"), " ",
      h("span", { class: "muted" }, t("green_threshold") + " "), fig(ep, data, thresholdPath, "pct:1")));
}

function usageBar(ep, data, path) {
  const v = at(data, path);
  const w = `${Math.max(0, Math.min(100, (v ?? 0) * 100))}%`;
  return h("div", { class: "usage" },
    h("div", { class: "usage-track" }, h("div", { class: "usage-fill" + (v !== null && v !== undefined && v > 1 ? " over" : ""), style: `width:${w}` })),
    fig(ep, data, path, "pct:1"));
}

/* ---- timers ---- */

function every(ms, fn) {
  const g = S.gen;
  const tick = async () => {
    if (g !== S.gen) return;
    try { await fn(); } catch (e) { /* the section shows its own error */ }
    if (g === S.gen) S.timers.push(setTimeout(tick, ms));
  };
  return tick();
}

function stopTimers() {
  for (const id of S.timers) clearTimeout(id);
  S.timers = [];
}

/* ---- routing ---- */

function hashParams() {
  const p = new URLSearchParams(location.hash.replace(/^#/, ""));
  return p;
}

// Go to a view: the fragment is rewritten (history entry) and the page routed.
function navigate(site) {
  const p = new URLSearchParams();
  if (site) p.set("site", site);
  if (S.year) p.set("year", String(S.year));
  p.set("lang", S.lang);
  history.pushState(null, "", "#" + p.toString());
  route();
}

function route() {
  const p = hashParams();
  let rewrite = false;
  if (p.has("token")) {
    // a token handed over in the fragment: keep it in localStorage, not in the address bar
    const tok = p.get("token").trim();
    if (tok) localStorage.setItem(TOKEN_KEY, tok); else localStorage.removeItem(TOKEN_KEY);
    p.delete("token");
    rewrite = true;
  }
  if (p.has("lang")) {
    S.lang = p.get("lang") === "en" ? "en" : "zh";
    localStorage.setItem(LANG_KEY, S.lang);
  }
  if (rewrite) history.replaceState(null, "", location.pathname + location.search + (p.toString() ? "#" + p : ""));
  S.token = localStorage.getItem(TOKEN_KEY);
  S.site = p.get("site") || null;
  S.year = /^\d{4}$/.test(p.get("year") || "") ? Number(p.get("year")) : null;
  S.gen++;
  S.tokenBad = false;
  S.powerHistory = [];
  stopTimers();
  I.setLang(S.lang);
  chrome();
  document.body.dataset.state = "loading";
  delete document.body.dataset.error;
  let view;
  if (!S.token) view = showPublic();
  else if (S.site) view = showSite(S.site);
  else view = showOverview();
  const g = S.gen;
  view.then(() => {
    if (g !== S.gen) return;
    chrome();
    document.body.dataset.state = "ready";
  }, (e) => {
    if (g !== S.gen) return;
    chrome();
    document.body.dataset.state = "error";
    document.body.dataset.error = e instanceof ApiError ? String(e.status) : "js";
  });
}

// The header, footer and banner in the current language and sign-in state.
function chrome() {
  document.documentElement.lang = S.lang === "zh" ? "zh-CN" : "en";
  document.body.dataset.lang = S.lang;
  document.getElementById("title").textContent = t("title");
  document.getElementById("subtitle").textContent = t("subtitle");
  document.getElementById("home").textContent = t("overview");
  document.getElementById("home").setAttribute("href", "#lang=" + S.lang + (S.year ? "&year=" + S.year : ""));
  document.getElementById("token-label").textContent = t("token");
  document.getElementById("token-input").placeholder = S.token ? "••••••••" : t("token_placeholder");
  document.getElementById("token-save").textContent = t("token_save");
  document.getElementById("token-clear").textContent = t("token_clear");
  document.getElementById("token-clear").hidden = !S.token;
  document.getElementById("lang").textContent = I.t("lang_switch");
  document.getElementById("footer-note").textContent = S.lang === "zh"
    ? "数据均来自采集器 HTTP API（/api/v1/），页面只做格式化，不做计算"
    : "Every figure comes from the collector's HTTP API (/api/v1/); the page formats, it does not compute";
  const banner = document.getElementById("banner");
  const msg = !S.token ? t("token_none") : S.tokenBad ? t("token_bad") : null;
  banner.hidden = !msg;
  banner.className = "banner" + (S.tokenBad ? " bad" : "");
  banner.textContent = msg || "";
}

/* ---- the public list (no token) ---- */

async function publicList(container) {
  const last = await api("public/compliant", { auth: false });
  const ep2 = `public/compliant?year=${last.year + 1}`;
  const cur = await api(ep2, { auth: false });
  const table = (ep, d) => h("div", { class: "public-year" },
    h("h3", {}, t("public_year") + " ", fig(ep, d, "year", "text")),
    d.sites.length === 0 ? h("p", { class: "muted" }, t("public_none")) :
      h("table", {}, h("thead", {}, h("tr", {}, ["site", "name", "pue_short", "green_share", "green_threshold", "as_of", ""]
        .map((k) => h("th", {}, k ? I.t(k) : "")))), // each list is its own year
      h("tbody", {}, d.sites.map((_, i) => h("tr", {},
        h("td", {}, fig(ep, d, `sites.${i}.site`, "text")),
        h("td", {}, fig(ep, d, `sites.${i}.name`, "text")),
        h("td", { class: "num" }, fig(ep, d, `sites.${i}.pue`, "fixed:3")),
        h("td", { class: "num" }, fig(ep, d, `sites.${i}.green_share`, "pct:1")),
        h("td", { class: "num" }, fig(ep, d, `sites.${i}.green_threshold`, "pct:1")),
        h("td", {}, fig(ep, d, `sites.${i}.as_of`, "time")),
        h("td", {}, code(ep, d, `sites.${i}.provisional`, (v) => t(v ? "provisional_yes" : "provisional_no"))))))),
    h("p", { class: "muted small" }, t("public_definition") + ": ", fig(ep, d, "definition", "text"), " — ",
      fig(ep, d, "document", "text")));
  container.replaceChildren(table("public/compliant", last), table(ep2, cur));
}

async function showPublic() {
  const app = document.getElementById("app");
  const box = h("div", { id: "public-body" }, h("p", { class: "muted" }, t("loading")));
  app.replaceChildren(section("public", "public_title", box));
  document.body.dataset.view = "public";
  await every(FIGURES_MS, () => publicList(box).catch((e) => { box.replaceChildren(errorBox(e)); throw e; }));
}

/* ---- the overview (every site the token may read) ---- */

async function overviewRow(s, i, sitesEp, sites) {
  const id = s.site;
  const ytdEp = `sites/${id}/figures?period=${ytdPeriod()}`, vEp = `sites/${id}/verdicts${verdictsQuery()}`,
    pEp = `sites/${id}/power`;
  const row = (cells) => h("tr", { "data-site": id }, cells);
  const name = h("td", {}, h("a", { href: `#site=${encodeURIComponent(id)}&lang=${S.lang}`, class: "site-link" },
    fig(sitesEp, sites, `sites.${i}.site`, "text")), h("div", { class: "muted small" }, fig(sitesEp, sites, `sites.${i}.name`, "text")));
  try {
    const [ytd, ver, pw] = await Promise.all([api(ytdEp), api(vEp), api(pEp)]);
    return row([name,
      h("td", { class: "num" }, fig(pEp, pw, "total_kw", "fixed:1", "big"), unit(" kW")),
      h("td", { class: "num" }, fig(ytdEp, ytd, "figures.pue", "fixed:3", "big")),
      h("td", {}, shareBar(ytdEp, ytd, "figures.green_share", "figures.green_threshold")),
      h("td", {}, ytd.figures.cap ? usageBar(ytdEp, ytd, "figures.cap.usage") : h("span", { class: "muted" }, t("cap_none"))),
      h("td", { class: "num" }, fig(ytdEp, ytd, "figures.completeness", "pct:1")),
      h("td", {}, verdictBadges(vEp, ver, "verdicts", true),
        h("div", { class: "muted small" }, t("as_of") + " ", fig(vEp, ver, "as_of", "time")))]);
  } catch (e) {
    return row([name, h("td", { colspan: 6 }, errorBox(e))]);
  }
}

async function loadOverview() {
  const sitesEp = "sites";
  let sites;
  try { sites = await api(sitesEp); } catch (e) { fill("overview-body", errorBox(e)); chrome(); throw e; }
  if (sites.sites.length === 0) {
    fill("overview-body", h("p", { class: "muted" }, t("no_sites")));
    return;
  }
  const rows = await Promise.all(sites.sites.map((s, i) => overviewRow(s, i, sitesEp, sites)));
  fill("overview-body", h("table", { class: "overview" },
    h("thead", {}, h("tr", {}, ["site", "total_power", "pue_ytd", "green_share", "cap_used", "completeness", "verdicts_year"]
      .map((k) => h("th", {}, t(k))))),
    h("tbody", {}, rows)));
}

/* ---- the zone report (regulators): every site in one table ---- */

// A file of the API (an absolute /api/v1/… path) fetched with the token and
// handed to the browser as a download.
async function download(path, name) {
  const r = await fetch(new URL(path.replace(/^\//, ""), document.baseURI),
    { headers: { Authorization: "Bearer " + S.token }, cache: "no-store" });
  if (!r.ok) throw new ApiError(r.status, null);
  const a = h("a", { href: URL.createObjectURL(await r.blob()), download: name });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
}

// Last year (or the year shown) and last month: the periods a regulator
// files, each with its files (XLSX, JSON, CSV) as download links. Written by
// the collector when first asked for, so fetched once per view, not polled.
async function loadZone() {
  const now = new Date();
  const last = new Date(now.getFullYear(), now.getMonth() - 1, 1);
  const periods = [String(S.year || now.getFullYear() - 1),
    `${last.getFullYear()}-${String(last.getMonth() + 1).padStart(2, "0")}`];
  const rows = [];
  for (const p of periods) {
    let rep;
    try { rep = await api(`zone/reports/${p}`); } catch (e) {
      if (e.status === 403) { document.getElementById("zone")?.remove(); return; } // not a regulator
      rows.push(h("li", { "data-zone": p }, h("strong", {}, p), " ", e.status === 404
        ? h("span", { class: "muted" }, t("zone_none")) : errorBox(e)));
      continue;
    }
    const files = rep.files.filter((f) => /\.(xlsx|json|csv)$/.test(f.name));
    rows.push(h("li", { "data-zone": p }, h("strong", {}, p), " ",
      files.map((f) => h("a", { href: "#", class: "zone-file", "data-zone-file": f.url, title: f.sha256,
        onclick: (ev) => { ev.preventDefault(); download(f.url, f.name).catch((e) => alert(e.message)); } },
      f.name.split(".").pop().toUpperCase()))));
  }
  fill("zone-body", h("ul", { class: "zone-list" }, rows));
}

async function showOverview() {
  const app = document.getElementById("app");
  document.body.dataset.view = "overview";
  app.replaceChildren(
    section("overview", "overview", h("p", { class: "muted" }, t("overview_hint")),
      h("div", { id: "overview-body" }, h("p", { class: "muted" }, t("loading")))),
    section("zone", "zone_title", h("p", { class: "muted" }, t("zone_hint")),
      h("div", { id: "zone-body" }, h("p", { class: "muted" }, t("loading")))),
    section("public", "public_title", h("div", { id: "public-body" })));
  loadZone().catch((e) => fill("zone-body", errorBox(e)));
  await every(HEALTH_MS, loadOverview);
  await publicList(document.getElementById("public-body")).catch((e) => fill("public-body", errorBox(e)));
}

/* ---- a site ---- */

function ledgerBlock(ep, d) {
  const row = (k, ...v) => h("div", { class: "kv" }, h("span", { class: "k" }, t(k)), h("span", { class: "v" }, ...v));
  return h("div", { class: "ledger" },
    row("site", fig(ep, d, "site", "text")),
    row("timezone", fig(ep, d, "timezone", "text")),
    row("racks", fig(ep, d, "racks", "fixed:0")),
    row("rack_power", fig(ep, d, "rack_power_kw", "fixed:0"), unit(" kW")),
    row("cap_approved", fig(ep, d, "approved_annual_kwh", "fixed:0"), unit(" kWh")),
    row("in_scope", code(ep, d, "in_scope", (v) => t(v ? "yes" : "no"), (v) => (v ? "info" : "warn"))),
    row("pue_short", h("span", {}, "< ", fig(ep, d, "policy.pue_limit", "fixed:2")), " · ",
      fig(ep, d, "policy.document", "text")));
}

async function loadPower(id) {
  const ep = `sites/${id}/power`;
  let d;
  try { d = await api(ep); } catch (e) { fill("power-body", errorBox(e)); throw e; }
  S.powerUpdates++;
  document.body.dataset.powerUpdates = String(S.powerUpdates);
  S.powerHistory.push(d.total_kw);
  if (S.powerHistory.length > 120) S.powerHistory.shift();
  const roles = I.ROLES.filter((r) => r in d.roles);
  const max = Math.max(1, ...roles.map((r) => d.roles[r] ?? 0));
  fill("power-body",
    h("div", { class: "power-total" },
      h("div", {}, h("div", { class: "muted" }, t("total_power")), fig(ep, d, "total_kw", "fixed:1", "huge"), unit(" kW")),
      sparkline(S.powerHistory),
      h("div", { class: "muted small" }, t("updated") + " ", h("span", { class: "live-at" }, format(d.at, "time")))),
    h("div", { class: "roles" }, roles.map((r) => h("div", { class: `role role-${r}` },
      h("div", { class: "role-name" }, I.roleName(r)),
      h("div", {}, fig(ep, d, `roles.${r}`, "fixed:1", "big"), unit(" kW")),
      h("div", { class: "role-bar" }, h("div", { style: `width:${((d.roles[r] ?? 0) / max) * 100}%` }))))),
    h("details", { class: "per-meter" }, h("summary", {}, t("meters")),
      h("table", {}, h("thead", {}, h("tr", {}, ["meter", "role", "kw", "time", "source"].map((k) => h("th", {}, t(k))))),
        h("tbody", {}, d.meters.map((m, i) => h("tr", {},
          h("td", {}, fig(ep, d, `meters.${i}.id`, "text")),
          h("td", {}, code(ep, d, `meters.${i}.role`, I.roleName)),
          h("td", { class: "num" }, fig(ep, d, `meters.${i}.kw`, "fixed:1")),
          h("td", {}, fig(ep, d, `meters.${i}.t`, "time")),
          h("td", {}, code(ep, d, `meters.${i}.source`, I.sourceName))))))));
}

function pueCard(ep, d, labelKey) {
  return h("div", { class: "pue-card" },
    h("div", { class: "muted" }, t(labelKey)),
    fig(ep, d, "figures.pue", "fixed:3", "huge"),
    h("div", { class: "small" }, fig(ep, d, "figures.period", d.figures.kind === "interval" ? "time" : "text")),
    h("div", { class: "small muted" }, t("total_kwh") + " ", fig(ep, d, "figures.total_kwh", "fixed:0"), unit(" kWh"),
      " · ", t("it_kwh") + " ", fig(ep, d, "figures.it_kwh", "fixed:0"), unit(" kWh")),
    h("div", { class: "small muted" }, t("completeness") + " ", fig(ep, d, "figures.completeness", "pct:1")));
}

function monthLabel(m) {
  const en = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  return S.lang === "zh" ? `${m}月` : en[m - 1];
}

// The latest interval with data. The API's default interval is the last one
// that has ended, but an interval is stored only when a reading after its end
// arrives (docs/api.md), so for a minute or an interval it is empty; then
// the one before is asked for (by time, one second before its start), at
// most twice. Which interval is shown is chosen here; its figures are the API's.
async function lastInterval(base) {
  let ep = base + "interval" + atYear("interval");
  let d = await api(ep);
  for (let i = 0; i < 2 && d.figures.completeness === 0; i++) {
    const before = new Date(Date.parse(d.figures.start) - 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
    const ep2 = `${base}interval&at=${encodeURIComponent(before)}`;
    const d2 = await api(ep2);
    ep = ep2;
    d = d2;
  }
  return [ep, d];
}

async function loadFigures(id) {
  const base = `sites/${id}/figures?period=`;
  const eps = { month: base + "month" + atYear("month"), ytd: base + ytdPeriod(),
    rolling12: base + "rolling12" + atYear("rolling12") };
  let f;
  try {
    const [iv, ...got] = await Promise.all([lastInterval(base), ...Object.values(eps).map((ep) => api(ep))]);
    f = Object.fromEntries(Object.keys(eps).map((k, i) => [k, got[i]]));
    eps.interval = iv[0];
    f.interval = iv[1];
  } catch (e) {
    fill("pue-body", errorBox(e));
    throw e;
  }
  fill("pue-body",
    h("div", { class: "pue-cards" },
      pueCard(eps.interval, f.interval, "pue_interval"), pueCard(eps.month, f.month, "pue_month"),
      pueCard(eps.ytd, f.ytd, "pue_ytd_short"), pueCard(eps.rolling12, f.rolling12, "pue_rolling12")),
    h("p", { class: "muted small" }, t("pue_note")));

  const green = (ep, d, labelKey) => h("div", { class: "green-block" },
    h("h3", {}, t(labelKey), " ", h("span", { class: "muted small" }, fig(ep, d, "figures.period", "text"))),
    shareBar(ep, d, "figures.green_share", "figures.green_threshold"),
    h("div", { class: "small" }, t("green_kwh") + " ", fig(ep, d, "figures.green_kwh", "fixed:0"), unit(" kWh"),
      " = ", t("green_onsite") + " ", fig(ep, d, "figures.green_onsite_kwh", "fixed:0"), unit(" kWh"),
      " + ", t("green_ledger") + " ", fig(ep, d, "figures.green_ledger_kwh", "fixed:0"), unit(" kWh")));
  fill("green-body", green(eps.ytd, f.ytd, "pue_ytd_short"), green(eps.month, f.month, "pue_month"),
    green(eps.rolling12, f.rolling12, "pue_rolling12"));

  // the cap burn-down: the year to date, and each month's figures, whose cap
  // block is the year to date at that month's end
  const ytd = f.ytd.figures;
  const year = ytd.period;
  // months so far; a past year (read as of 1 January of the next) has all twelve
  const lastMonth = Number(ytd.as_of.slice(0, 4)) > Number(year) ? 12 : Number(ytd.as_of.slice(5, 7));
  const months = [];
  for (let m = 1; m <= lastMonth; m++) months.push(`${year}-${String(m).padStart(2, "0")}`);
  const mEps = months.map((m) => `${base}month&at=${m}`);
  let mf;
  try { mf = await Promise.all(mEps.map((ep) => api(ep))); } catch (e) { fill("cap-body", errorBox(e)); throw e; }
  const ytdEp = eps.ytd, cap = ytd.cap;
  const off = ytd.start.slice(19);
  const starts = [];
  for (let m = 1; m <= 12; m++) starts.push(`${year}-${String(m).padStart(2, "0")}-01T00:00:00${off}`);
  const chart = burnDown({
    start: ytd.start, end: ytd.end, monthStarts: starts,
    monthLabels: starts.map((_, i) => monthLabel(i + 1)),
    bars: mf.map((d, i) => ({ start: d.figures.start, end: d.figures.end, kwh: d.figures.total_kwh,
      title: format(d.figures.total_kwh, "fixed:0"), fig: `${mEps[i]}:figures.total_kwh` })),
    points: cap ? mf.map((d, i) => ({ t: d.figures.as_of, kwh: d.figures.cap ? d.figures.cap.ytd_kwh : null,
      title: format(d.figures.cap ? d.figures.cap.ytd_kwh : null, "fixed:0"), fig: `${mEps[i]}:figures.cap.ytd_kwh` })) : [],
    now: cap ? { t: ytd.as_of, kwh: cap.ytd_kwh, title: format(cap.ytd_kwh, "fixed:0"), fig: `${ytdEp}:figures.cap.ytd_kwh` } : null,
    projected: cap ? { kwh: cap.projected_kwh, title: format(cap.projected_kwh, "fixed:0"), fig: `${ytdEp}:figures.cap.projected_kwh` } : null,
    cap: cap ? { kwh: cap.approved_kwh, title: format(cap.approved_kwh, "fixed:0"), fig: `${ytdEp}:figures.cap.approved_kwh` } : null,
    labels: { cumulative: t("cumulative"), projection: t("projection"), cap: t("cap"), monthly: t("monthly") },
  });
  const kv = (k, ...v) => h("div", { class: "kv" }, h("span", { class: "k" }, t(k)), h("span", { class: "v" }, ...v));
  fill("cap-body",
    cap ? h("div", { class: "cap-figures" },
      kv("cap_approved", fig(ytdEp, f.ytd, "figures.cap.approved_kwh", "fixed:0", "big"), unit(" kWh")),
      kv("cap_ytd", fig(ytdEp, f.ytd, "figures.cap.ytd_kwh", "fixed:0", "big"), unit(" kWh")),
      kv("cap_used", usageBar(ytdEp, f.ytd, "figures.cap.usage")),
      kv("cap_projected", fig(ytdEp, f.ytd, "figures.cap.projected_kwh", "fixed:0", "big"), unit(" kWh")),
      kv("cap_warning_level", cap.warning_percent ? [fig(ytdEp, f.ytd, "figures.cap.warning_percent", "fixed:0"), unit("%")] : NONE),
      kv("as_of", fig(ytdEp, f.ytd, "figures.as_of", "time")))
      : h("p", { class: "muted" }, t("cap_none")),
    chart);

  fill("indicative-body", h("h3", {}, t("verdicts_indicative")), verdictBadges(ytdEp, f.ytd, "figures.verdicts", false));
}

async function loadVerdicts(id) {
  const ep = `sites/${id}/verdicts${verdictsQuery()}`;
  let d;
  try { d = await api(ep); } catch (e) { fill("verdicts-body", errorBox(e)); throw e; }
  const lastM = d.months.length - 1;
  fill("verdicts-body",
    h("h3", {}, t("verdicts_year"), " ", fig(ep, d, "year", "text")),
    verdictBadges(ep, d, "verdicts", true),
    h("p", { class: "muted small" }, t("as_of") + " ", fig(ep, d, "as_of", "time"), " · ",
      t("computed_at") + " ", fig(ep, d, "computed_at", "time")),
    lastM >= 0 ? [h("h3", {}, t("verdicts_month"), " ", fig(ep, d, `months.${lastM}.period`, "text")),
      verdictBadges(ep, d, `months.${lastM}.verdicts`, true)] : null);
}

async function loadAlerts(id) {
  const ep = `sites/${id}/alerts?limit=20`;
  let d;
  try { d = await api(ep); } catch (e) { fill("alerts-body", errorBox(e)); throw e; }
  fill("alerts-body", d.alerts.length === 0 ? h("p", { class: "muted" }, t("alerts_none")) :
    h("table", {}, h("thead", {}, h("tr", {}, ["time", "kind", "state", "message"].map((k) => h("th", {}, t(k))))),
      h("tbody", {}, d.alerts.map((a, i) => h("tr", { class: a.state === "raised" ? "raised" : "" },
        h("td", {}, fig(ep, d, `alerts.${i}.t`, "time")),
        h("td", {}, code(ep, d, `alerts.${i}.kind`, I.alertKindName, I.verdictTone)),
        h("td", {}, code(ep, d, `alerts.${i}.state`, I.alertStateName, (v) => (v === "raised" ? "warn" : "good"))),
        h("td", {}, fig(ep, d, `alerts.${i}.message`, "text")))))));
}

async function loadMeters(id) {
  const ep = `sites/${id}/meters`;
  let d;
  try { d = await api(ep); } catch (e) { fill("meters-body", errorBox(e)); throw e; }
  const cols = ["meter", "role", "model", "status", "last_reading", "kwh_counter", "kw", "quality",
    "month_kwh", "intervals", "estimated", "integrated", "discarded", "rollovers", "resets"];
  fill("meters-body",
    h("p", { class: "muted small" }, t("silent_after") + " ", fig(ep, d, "silent_after_s", "fixed:0"), unit(" s")),
    h("div", { class: "scroll" }, h("table", { class: "meters" },
      h("thead", {},
        h("tr", {}, h("th", { colspan: 8 }), h("th", { colspan: 7, class: "group" }, t("counter_events"))),
        h("tr", {}, cols.map((k) => h("th", {}, t(k))))),
      h("tbody", {}, d.meters.map((m, i) => {
        const p = `meters.${i}`;
        return h("tr", { class: `status-${m.status}`, "data-meter": m.id },
          h("td", {}, fig(ep, d, `${p}.id`, "text")),
          h("td", {}, code(ep, d, `${p}.role`, I.roleName)),
          h("td", {}, fig(ep, d, `${p}.model`, "text")),
          h("td", {}, code(ep, d, `${p}.status`, I.statusName, I.statusTone)),
          h("td", {}, fig(ep, d, `${p}.last_reading.t`, "time")),
          h("td", { class: "num" }, fig(ep, d, `${p}.last_reading.kwh`, "fixed:1")),
          h("td", { class: "num" }, fig(ep, d, `${p}.last_reading.kw`, "fixed:1")),
          h("td", {}, fig(ep, d, `${p}.last_reading.quality`, "text")),
          h("td", { class: "num" }, fig(ep, d, `${p}.month.kwh`, "fixed:0")),
          ...["intervals", "estimated_intervals", "integrated_intervals", "discarded_readings", "rollovers", "resets"]
            .map((k) => h("td", { class: "num" + (k !== "intervals" && m.month && m.month[k] ? " event" : "") },
              fig(ep, d, `${p}.month.${k}`, "fixed:0"))));
      })))));
}

async function showSite(id) {
  const app = document.getElementById("app");
  document.body.dataset.view = "site";
  const ledgerEp = `sites/${encodeURIComponent(id)}`;
  const ledger = await api(ledgerEp).catch((e) => {
    app.replaceChildren(h("section", { class: "card" }, h("a", { href: `#lang=${S.lang}` }, t("back")), errorBox(e)));
    throw e;
  });
  const sid = encodeURIComponent(ledger.site);
  const loading = () => h("p", { class: "muted" }, t("loading"));
  app.replaceChildren(
    h("div", { class: "site-head" },
      h("a", { href: `#lang=${S.lang}`, class: "back" }, t("back")),
      h("h2", { class: "site-name" }, fig(ledgerEp, ledger, "name", "text")),
      ledgerBlock(ledgerEp, ledger)),
    h("div", { class: "grid" },
      section("power", "live_power", h("div", { id: "power-body" }, loading())),
      section("verdicts", "verdicts", h("div", { id: "verdicts-body" }, loading()), h("div", { id: "indicative-body" }))),
    section("pue", "pue", h("div", { id: "pue-body" }, loading())),
    h("div", { class: "grid" },
      section("green", "green_share", h("div", { id: "green-body" }, loading())),
      section("cap", "cap_title", h("div", { id: "cap-body" }, loading()))),
    section("alerts", "alerts", h("div", { id: "alerts-body" }, loading())),
    section("meters", "meters", h("div", { id: "meters-body" }, loading())));
  await Promise.all([
    every(POWER_MS, () => loadPower(sid)),
    every(FIGURES_MS, () => loadFigures(sid)),
    every(FIGURES_MS, () => loadVerdicts(sid)),
    every(HEALTH_MS, () => loadAlerts(sid)),
    every(HEALTH_MS, () => loadMeters(sid)),
  ]);
}

/* ---- start ---- */

function init() {
  S.lang = localStorage.getItem(LANG_KEY) || ((navigator.language || "").toLowerCase().startsWith("zh") ? "zh" : "en");
  document.getElementById("lang").addEventListener("click", () => {
    S.lang = S.lang === "zh" ? "en" : "zh";
    localStorage.setItem(LANG_KEY, S.lang);
    navigate(S.site);
  });
  document.getElementById("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = document.getElementById("token-input").value.trim();
    document.getElementById("token-input").value = "";
    if (v) localStorage.setItem(TOKEN_KEY, v);
    route();
  });
  document.getElementById("token-clear").addEventListener("click", () => {
    localStorage.removeItem(TOKEN_KEY);
    navigate(null);
  });
  window.addEventListener("hashchange", route);
  route();
}

init();
