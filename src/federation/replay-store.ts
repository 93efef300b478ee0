/**
 * Each token id (jti) is accepted once per issuer for as long as the token could be valid.
 * With Redis: SET NX EX, shared by every appliance of the mesh. Without: a bounded map in
 * memory. Either way, when the store cannot answer the verifier fails closed (503).
 */
import type { RedisClient } from "../redis/index.ts";

export class ReplayStoreUnavailableError extends Error {
  override name = "ReplayStoreUnavailableError";
}

export interface TokenReplayStore {
  /** True the first time (iss, jti) is seen; false for a replay. Throws ReplayStoreUnavailableError. */
  claimOnce(iss: string, jti: string, ttlSeconds: number): Promise<boolean>;
  close?(): Promise<void>;
}

export class MemoryTokenReplayStore implements TokenReplayStore {
  readonly #seen = new Map<string, number>();
  constructor(readonly maxEntries = 100_000) {}

  async claimOnce(iss: string, jti: string, ttlSeconds: number): Promise<boolean> {
    const now = Date.now();
    const key = `${iss}\n${jti}`;
    const exp = this.#seen.get(key);
    if (exp !== undefined && exp > now) return false;
    if (this.#seen.size >= this.maxEntries) {
      for (const [k, e] of this.#seen) {
        if (e > now) break;
        this.#seen.delete(k);
      }
      // Still full of live ids: refusing is safer than forgetting one (fail closed).
      if (this.#seen.size >= this.maxEntries) throw new ReplayStoreUnavailableError("token replay memory is full");
    }
    this.#seen.delete(key);
    this.#seen.set(key, now + ttlSeconds * 1000);
    return true;
  }
}

export class RedisTokenReplayStore implements TokenReplayStore {
  constructor(private readonly redis: RedisClient, private readonly prefix = "pilox-mesh:jti:") {}

  async claimOnce(iss: string, jti: string, ttlSeconds: number): Promise<boolean> {
    try {
      const r = await this.redis.set(`${this.prefix}${iss}:${jti}`, "1", "EX", Math.max(1, Math.ceil(ttlSeconds)), "NX");
      return r === "OK";
    } catch (err) {
      throw new ReplayStoreUnavailableError(`redis: ${(err as Error).message}`);
    }
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
