/**
 * Canonical JSON as wire-v1 §0 defines it: keys sorted by UTF-16 code units, undefined
 * dropped, no whitespace. For values that came out of JSON.parse this equals RFC 8785.
 * On the hot path of every seal and verify, hence the hand-rolled loop (about twice as fast
 * as a JSON.stringify replacer here).
 */
const PLAIN_KEY = /^[A-Za-z0-9_.:\-]*$/;

export function canonicalize(value: unknown): string {
  if (value === null || typeof value !== "object") {
    // JSON.stringify of a top-level undefined/function returns undefined; treat as null.
    return JSON.stringify(value) ?? "null";
  }
  if (typeof (value as { toJSON?: unknown }).toJSON === "function") {
    return canonicalize((value as { toJSON: () => unknown }).toJSON());
  }
  if (Array.isArray(value)) {
    let out = "[";
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ",";
      const v = value[i];
      out += v === undefined || typeof v === "function" ? "null" : canonicalize(v);
    }
    return out + "]";
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj);
  if (keys.length > 1) keys.sort();
  let out = "{";
  let first = true;
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined || typeof v === "function") continue;
    if (!first) out += ",";
    first = false;
    // A key of plain characters needs no escaping: skip JSON.stringify for it.
    out += PLAIN_KEY.test(k) ? `"${k}":` : JSON.stringify(k) + ":";
    out += typeof v === "string" ? JSON.stringify(v) : canonicalize(v);
  }
  return out + "}";
}
