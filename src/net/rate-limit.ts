/**
 * Token buckets by key (client address, peer origin, route), bounded in the number of keys
 * kept. The bucket holds `burst(key)` tokens (twice the rate unless given).
 */
export class RateLimiter {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  constructor(
    private readonly ratePerSecond: (key: string) => number,
    private readonly maxKeys = 10_000,
    private readonly burst: (key: string) => number = (key) => ratePerSecond(key) * 2,
  ) {}

  /** Takes one token; false when the key is over its rate. */
  take(key: string, now: number = Date.now()): boolean {
    const rate = this.ratePerSecond(key);
    const burst = this.burst(key);
    let b = this.#buckets.get(key);
    if (!b) {
      if (this.#buckets.size >= this.maxKeys) this.#evictOldest();
      b = { tokens: burst, at: now };
      this.#buckets.set(key, b);
    }
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * rate);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  get size(): number {
    return this.#buckets.size;
  }

  /**
   * Forgets the oldest quarter of the keys at once. One at a time from the Map's front would
   * scan every deleted slot before it each time: O(keys) per new key under a flood of addresses.
   */
  #evictOldest(): void {
    let n = Math.max(1, this.maxKeys >> 2);
    for (const k of this.#buckets.keys()) {
      if (n-- === 0) break;
      this.#buckets.delete(k);
    }
  }
}
