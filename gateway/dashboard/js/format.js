// How the dashboard writes the API's numbers and times. Formatting only:
// every figure is the API's value; this module rounds it for display and
// never derives one figure from another. tests/integration/dashboard.sh
// applies the same rules (in Python) to the API's JSON and compares the
// text; docs/dashboard.md lists them. Change both together.
//
//   fixed:N  N decimals, half away from zero (Number.prototype.toFixed),
//            thousands grouped with ","          1329280.83 -> "1,329,281" (N=0)
//   pct:N    a ratio as percent: value * 100, then as fixed:N, then "%"
//                                                0.477709 -> "47.8%" (N=1)
//   time     an RFC 3339 time as the API wrote it (the site's local time),
//            "YYYY-MM-DD HH:MM"; the browser's own zone is never applied
//   text     the value as a string
//   code     an identifier (verdict, role, status): shown translated; the
//            element's data-value holds the identifier itself
// null (undefined or absent) is "—" whatever the format.

export const NONE = "—";

function group(intPart) {
  return intPart.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

export function fixed(v, n) {
  if (v === null || v === undefined) return NONE;
  const s = Number(v).toFixed(n);
  const neg = s.startsWith("-");
  const body = neg ? s.slice(1) : s;
  const dot = body.indexOf(".");
  const ip = dot < 0 ? body : body.slice(0, dot);
  const fp = dot < 0 ? "" : body.slice(dot);
  return (neg ? "-" : "") + group(ip) + fp;
}

export function pct(v, n) {
  if (v === null || v === undefined) return NONE;
  return fixed(v * 100, n) + "%";
}

export function time(v) {
  if (v === null || v === undefined) return NONE;
  return String(v).slice(0, 16).replace("T", " ");
}

// format(value, "fixed:3") etc. ("code" is left to the caller: it needs a
// translation).
export function format(v, spec) {
  const [kind, arg] = spec.split(":");
  const n = arg === undefined ? 0 : Number(arg);
  switch (kind) {
    case "fixed": return fixed(v, n);
    case "pct": return pct(v, n);
    case "time": return time(v);
    default: return v === null || v === undefined ? NONE : String(v);
  }
}

// The value at a dotted path ("figures.cap.usage", "meters.3.status") of a
// JSON object; undefined when a step is missing.
export function at(obj, path) {
  let o = obj;
  for (const k of path.split(".")) {
    if (o === null || o === undefined) return undefined;
    o = o[k];
  }
  return o;
}
