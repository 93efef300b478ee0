/**
 * Untrusted JSON, bounded before anything recurses over it. JSON.parse itself copes with deep
 * nesting, but every walker after it (canonical JSON, schema checks, JSON.stringify) recurses:
 * a 24 KB text nested 10,000 deep overflowed the stack in the MAC check. So every inbound path
 * measures nesting on the text first, with one scan that skips over strings.
 */

/** Deepest nesting of objects and arrays accepted in a bus message (the message itself is 1). */
export const MAX_JSON_DEPTH = 64;

export type JsonProblem = "malformed" | "too_deep";
export type JsonParsed = { ok: true; value: unknown } | { ok: false; reason: JsonProblem; detail: string };

/** True when `text` opens more than `max` nested objects/arrays (text inside strings ignored). */
export function jsonDepthExceeds(text: string, max: number): boolean {
  // Nesting deeper than `max` needs more than `max` opening brackets. Counting them with the
  // native indexOf is several times cheaper than the exact walk below, which only a text with
  // that many brackets (inside strings or not) needs. (bus.pubsub: 1.8 → 0.2 µs a message.)
  if (!hasMoreOpeners(text, max)) return false;
  let depth = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // Jump to the closing quote: one native search per string, not a loop over its characters.
      let j = text.indexOf('"', i + 1);
      while (j > 0 && escaped(text, j)) j = text.indexOf('"', j + 1);
      if (j < 0) return false; // unterminated: JSON.parse refuses it
      i = j;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return false;
}

function hasMoreOpeners(text: string, max: number): boolean {
  let n = 0;
  for (let i = text.indexOf("{"); i >= 0; i = text.indexOf("{", i + 1)) if (++n > max) return true;
  for (let i = text.indexOf("["); i >= 0; i = text.indexOf("[", i + 1)) if (++n > max) return true;
  return false;
}

/** Is the quote at `at` escaped (preceded by an odd number of backslashes)? */
function escaped(text: string, at: number): boolean {
  let k = at - 1;
  while (k >= 0 && text.charCodeAt(k) === 0x5c) k--;
  return (at - 1 - k) % 2 === 1;
}

/** JSON.parse with a nesting bound; never throws. */
export function parseJson(text: string, maxDepth: number = MAX_JSON_DEPTH): JsonParsed {
  if (jsonDepthExceeds(text, maxDepth)) return { ok: false, reason: "too_deep", detail: `nested deeper than ${maxDepth} levels` };
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, reason: "malformed", detail: `not JSON: ${(err as Error).message}` };
  }
}

/** Thrown by walkers (canonical JSON) that meet a value nested deeper than they accept. */
export class JsonDepthError extends Error {
  override name = "JsonDepthError";
  constructor(readonly maxDepth: number) {
    super(`nested deeper than ${maxDepth} levels`);
  }
}

/** Depth of a parsed value, stopping as soon as it passes `max` (iterative: no recursion to overflow). */
export function valueDepthExceeds(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== "object") continue;
    if (d > max) return true;
    for (const x of Array.isArray(v) ? v : Object.values(v)) if (x !== null && typeof x === "object") stack.push([x, d + 1]);
  }
  return false;
}

export { isJsonObject } from "./object.ts";
