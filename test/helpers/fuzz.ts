/**
 * Adversarial JSON for the fuzz suite: a seeded generator (the same inputs every run, so a
 * failure reproduces) of texts that are deep, wide, carry huge or odd numbers, long or
 * malformed strings, duplicate and prototype keys, or are broken copies of valid ones.
 */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

const KEYS = ["__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "meshMeta", "meshSig", "meshExt", "eventId", "v", "a", "a", "timestamp", "channel", "message", "messages"];
const NUMBERS = ["0", "-0", "1e400", "-1e400", "1.5e-400", "123456789012345678901234567890", "9007199254740993", "0.1", "-1", "1E2", "2e308"];
const STRINGS = ['""', '"\\u0000"', '"\\ud800"', '"\\udfff\\ud800"', '"é\\n\\t\\"\\\\"', '"pilox:system:events"', '"jobs"'];

export function adversarialJson(r: () => number, depth = 0): string {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
  const roll = r();
  if (depth > 6 || roll < 0.25) {
    const leaf = r();
    if (leaf < 0.35) return pick(NUMBERS);
    if (leaf < 0.7) return pick(STRINGS);
    if (leaf < 0.8) return JSON.stringify("x".repeat(Math.floor(r() * 60_000)));
    return pick(["true", "false", "null"]);
  }
  if (roll < 0.33) {
    // Nested past any sane bound (the limit is 64).
    const n = 60 + Math.floor(r() * 3_000);
    return r() < 0.5 ? "[".repeat(n) + "1" + "]".repeat(n) : '{"a":'.repeat(n) + "1" + "}".repeat(n);
  }
  if (roll < 0.45) {
    // Wide.
    const n = Math.floor(r() * 2_000);
    return "[" + Array.from({ length: n }, () => pick(NUMBERS)).join(",") + "]";
  }
  if (roll < 0.75) {
    const n = Math.floor(r() * 6);
    const parts: string[] = [];
    for (let i = 0; i < n; i++) parts.push(`${JSON.stringify(pick(KEYS))}:${adversarialJson(r, depth + 1)}`);
    return "{" + parts.join(",") + "}";
  }
  const n = Math.floor(r() * 5);
  return "[" + Array.from({ length: n }, () => adversarialJson(r, depth + 1)).join(",") + "]";
}

/** A broken copy of a valid text: a character changed, cut short, or a key smuggled in. */
export function mutate(r: () => number, valid: string): string {
  const at = Math.floor(r() * valid.length);
  const m = r();
  if (m < 0.3) return valid.slice(0, at) + String.fromCharCode(32 + Math.floor(r() * 90)) + valid.slice(at + 1);
  if (m < 0.5) return valid.slice(0, at);
  if (m < 0.75) return valid.slice(0, -1) + `,"__proto__":{"polluted":true}}`;
  return valid.slice(0, 1) + `"meshMeta":{"v":1,"producer":"x","eventId":"dup"},` + valid.slice(1);
}

/** `n` hostile texts: most generated, some objects at the top, some broken copies of `valid`. */
export function corpus(seed: number, n: number, valid: readonly string[]): string[] {
  const r = rng(seed);
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const k = r();
    if (k < 0.3 && valid.length) out.push(mutate(r, valid[Math.floor(r() * valid.length)]!));
    else if (k < 0.7) out.push(`{${JSON.stringify(KEYS[Math.floor(r() * KEYS.length)])}:${adversarialJson(r)}}`);
    else out.push(adversarialJson(r));
  }
  return out;
}
