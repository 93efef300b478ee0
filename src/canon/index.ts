/**
 * Canonical JSON as wire-v1 §0 defines it: keys sorted by UTF-16 code units, undefined
 * dropped, no whitespace. For values that came out of JSON.parse this equals RFC 8785.
 * On the hot path of every seal and verify, hence the hand-rolled loop (about twice as fast
 * as a JSON.stringify replacer here).
 */
import { JsonDepthError, MAX_JSON_DEPTH } from "../json/index.ts";
import { memoText } from "./memo.ts";

export { memoText, quoted } from "./memo.ts";

const PLAIN_KEY = /^[A-Za-z0-9_.:\-]*$/;

/**
 * Throws JsonDepthError for values nested deeper than MAX_JSON_DEPTH: the walk recurses, and an
 * unbounded one is a crash waiting for hostile input.
 */
export function canonicalize(value: unknown): string {
  return canonValue(value, 0);
}

function canonValue(value: unknown, depth: number): string {
  if (value === null || typeof value !== "object") {
    // JSON.stringify of a top-level undefined/function returns undefined; treat as null.
    return JSON.stringify(value) ?? "null";
  }
  if (typeof (value as { toJSON?: unknown }).toJSON === "function") {
    return canonValue((value as { toJSON: () => unknown }).toJSON(), depth);
  }
  if (++depth > MAX_JSON_DEPTH) throw new JsonDepthError(MAX_JSON_DEPTH);
  if (Array.isArray(value)) {
    let out = "[";
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ",";
      const v = value[i];
      out += v === undefined || typeof v === "function" ? "null" : canonValue(v, depth);
    }
    return out + "]";
  }
  return canonObject(value as Record<string, unknown>, undefined, depth);
}

/**
 * canon of `obj` without the top-level keys in `skip`: the bus's `core` (the message without
 * meshMeta, meshSig and the extension) with no copy of the message made first.
 */
export function canonicalizeWithout(obj: Record<string, unknown>, skip: ReadonlySet<string>): string {
  return canonObject(obj, skip, 1);
}

function canonObject(obj: Record<string, unknown>, skip: ReadonlySet<string> | undefined, depth: number): string {
  const keys = Object.keys(obj);
  sortKeys(keys);
  let out = "{";
  let first = true;
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined || typeof v === "function" || skip?.has(k)) continue;
    if (!first) out += ",";
    first = false;
    out += keyText(k);
    out += typeof v === "string" ? JSON.stringify(v) : canonValue(v, depth);
  }
  return out + "}";
}

/** `"key":` for a key; messages repeat the same few keys, so their texts are kept. */
const keyText = memoText((k) => (PLAIN_KEY.test(k) ? `"${k}":` : JSON.stringify(k) + ":"), 4096, 64);

/**
 * Sorts in place by UTF-16 code units, like the default sort (`<` on strings compares code
 * units). Insertion sort for the few keys of a typical message: Array.prototype.sort allocated
 * more per message than anything else in the bus.pubsub profile.
 */
function sortKeys(keys: string[]): void {
  if (keys.length > 24) {
    keys.sort();
    return;
  }
  for (let i = 1; i < keys.length; i++) {
    const k = keys[i]!;
    let j = i - 1;
    while (j >= 0 && keys[j]! > k) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = k;
  }
}
