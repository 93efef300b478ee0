import type { Entry } from "./store.ts";

/** validUntil (ms, 0: none) and ttlSecondsRecommended (-1: none) of a body, for the served columns. */
export function servedColumns(body: Entry["body"]): [number, number] {
  const b = body as { validUntil?: unknown; ttlSecondsRecommended?: unknown };
  const vu = typeof b.validUntil === "string" ? Date.parse(b.validUntil) : 0;
  return [Number.isNaN(vu) ? 0 : vu, typeof b.ttlSecondsRecommended === "number" ? b.ttlSecondsRecommended : -1];
}
