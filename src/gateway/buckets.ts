/**
 * Token buckets per key (client address and route): in memory, or in Redis when the bus uses
 * Redis, so replicas of a gateway share one budget (one round trip: an atomic script that
 * refills by the server's clock and takes a token).
 */
import type { RedisClient } from "../bus/backends/redis.ts";

export interface Buckets {
  /** A boolean when the answer is local, a promise when it needs a round trip. */
  take(key: string): boolean | Promise<boolean>;
}

export class LocalBuckets implements Buckets {
  readonly #m = new Map<string, { tokens: number; at: number }>();
  constructor(
    private readonly rate: () => number,
    private readonly burst: () => number,
    private readonly maxKeys = 100_000,
  ) {}

  take(key: string, now = Date.now()): boolean {
    const rate = this.rate();
    const burst = this.burst();
    let b = this.#m.get(key);
    if (!b) {
      if (this.#m.size >= this.maxKeys) {
        let n = Math.max(1, this.maxKeys >> 2);
        for (const k of this.#m.keys()) {
          if (n-- <= 0) break;
          this.#m.delete(k);
        }
      }
      b = { tokens: burst, at: now };
      this.#m.set(key, b);
    }
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * rate);
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}

/** KEYS[1] bucket; ARGV rate, burst. Refill by TIME, take one; the key expires when idle. */
const SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1])
local at = tonumber(b[2])
if tokens == nil then tokens = burst; at = now end
tokens = math.min(burst, tokens + (now - at) / 1000 * rate)
local ok = 0
if tokens >= 1 then tokens = tokens - 1; ok = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return ok`;

export class RedisBuckets implements Buckets {
  constructor(
    private readonly r: RedisClient,
    private readonly prefix: string,
    private readonly rate: () => number,
    private readonly burst: () => number,
    /** When Redis cannot answer: fall back to a local budget rather than fail open or closed. */
    private readonly fallback: LocalBuckets,
  ) {}

  async take(key: string): Promise<boolean> {
    try {
      const ok = await this.r.eval(SCRIPT, 1, this.prefix + key, String(this.rate()), String(this.burst()));
      return ok === 1;
    } catch {
      return this.fallback.take(key);
    }
  }
}
