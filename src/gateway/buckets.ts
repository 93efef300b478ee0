/**
 * Token buckets per key (client address and route): in memory, or in Redis when the bus uses
 * Redis, so replicas of a gateway share one budget (one round trip: an atomic script that
 * refills by the server's clock and takes a token).
 */
import type { RedisClient } from "../redis/index.ts";
import { RateLimiter } from "../net/index.ts";

export interface Buckets {
  /** A boolean when the answer is local, a promise when it needs a round trip. */
  take(key: string): boolean | Promise<boolean>;
}

/** In memory: the token buckets federation uses, with the gateway's burst. */
export class LocalBuckets implements Buckets {
  readonly #limiter: RateLimiter;
  constructor(rate: () => number, burst: () => number) {
    this.#limiter = new RateLimiter(rate, 100_000, burst);
  }

  take(key: string): boolean {
    return this.#limiter.take(key);
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
