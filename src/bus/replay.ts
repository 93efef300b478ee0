import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import type { Logger } from "../log/index.ts";

/**
 * Remembers delivered event ids for as long as a replay could still pass the freshness check.
 * Bounded: past `maxEntries` the oldest id is forgotten (unextended v1 messages have no send
 * time, so for them the bound is the only horizon; size it to the traffic of one window).
 */
const PRUNE_EVERY = 64;

export class ReplayCache {
  readonly #seen = new Map<string, number>();
  #sincePrune = 0;
  constructor(readonly maxEntries: number) {}

  /** Records the id; false when it was already there and not expired (a replay). */
  claim(id: string, expiresAtMs: number, nowMs: number = Date.now()): boolean {
    const prev = this.#seen.get(id);
    if (prev !== undefined && prev > nowMs) return false;
    if (prev !== undefined) this.#seen.delete(id);
    this.#seen.set(id, expiresAtMs);
    // Expired ids are dropped in small batches, not on every claim (it is on the hot path).
    if (this.#seen.size > this.maxEntries || ++this.#sincePrune >= PRUNE_EVERY) this.#prune(nowMs);
    return true;
  }

  /** Forgets an id, so a redelivery after a failed handler is not taken for a replay. */
  release(id: string): void {
    this.#seen.delete(id);
  }

  has(id: string, nowMs: number = Date.now()): boolean {
    const exp = this.#seen.get(id);
    return exp !== undefined && exp > nowMs;
  }

  get size(): number {
    return this.#seen.size;
  }

  #prune(nowMs: number): void {
    this.#sincePrune = 0;
    while (this.#seen.size > this.maxEntries) {
      const oldest = this.#seen.keys().next().value as string;
      this.#seen.delete(oldest);
    }
    // Expiries are close to insertion order; drop expired ones from the front, at most twice
    // as many as were claimed since the last prune, so the work per claim stays bounded.
    let budget = 2 * PRUNE_EVERY;
    for (const [id, exp] of this.#seen) {
      if (exp > nowMs || budget-- === 0) break;
      this.#seen.delete(id);
    }
  }

  /** The unexpired ids, oldest first, for saving across a restart (Infinity is written as 0). */
  snapshot(nowMs: number = Date.now()): [string, number][] {
    const out: [string, number][] = [];
    for (const [id, exp] of this.#seen) if (exp > nowMs) out.push([id, Number.isFinite(exp) ? exp : 0]);
    return out;
  }

  restore(entries: readonly [string, number][], nowMs: number = Date.now()): void {
    for (const [id, exp] of entries) {
      const e = exp === 0 ? Number.POSITIVE_INFINITY : exp;
      if (typeof id === "string" && e > nowMs) this.#seen.set(id, e);
    }
    this.#prune(nowMs);
  }
}

/** Reads a saved replay memory (a missing or unreadable file just starts empty). */
export function loadReplayFile(file: string, cache: ReplayCache, log: Logger): void {
  if (!existsSync(file)) return;
  try {
    cache.restore(JSON.parse(readFileSync(file, "utf8")) as [string, number][]);
  } catch (err) {
    log.warn("ignoring an unreadable replay memory file", { file, error: (err as Error).message });
  }
}

export function saveReplayFile(file: string, cache: ReplayCache, log: Logger): void {
  try {
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, JSON.stringify(cache.snapshot()), { mode: 0o600 });
    renameSync(tmp, file);
  } catch (err) {
    log.warn("cannot save the replay memory", { file, error: (err as Error).message });
  }
}
