/**
 * The gateway as a role of the running appliance: built from the configuration, its routes on
 * the public listener, its rate limit in Redis when the bus uses Redis (replicas share one
 * budget), reconfigured by a reload.
 */
import type { Hono } from "hono";
import type { RedisClient } from "../redis/index.ts";
import type { Config, Secrets } from "../config/index.ts";
import type { Logger } from "../log/index.ts";
import type { Metrics } from "../metrics/index.ts";
import { ResolveCache } from "../resolve/index.ts";
import { LocalBuckets, RedisBuckets, type Buckets } from "./buckets.ts";
import { GatewayService } from "./service.ts";

export class GatewayRole {
  readonly service: GatewayService;
  #config: Config;
  readonly #redis: RedisClient | undefined;

  /** With the Redis bus, the rate limit lives in Redis: replicas share one budget. */
  static async create(config: Config, secrets: () => Secrets, metrics: Metrics, log: Logger, redisClient: () => Promise<RedisClient>): Promise<GatewayRole> {
    if (config.bus.backend !== "redis") return new GatewayRole(config, secrets, metrics, log);
    const redis = await redisClient();
    return new GatewayRole(config, secrets, metrics, log, redis);
  }

  private constructor(config: Config, secrets: () => Secrets, metrics: Metrics, log: Logger, redis?: RedisClient) {
    this.#config = config;
    this.#redis = redis;
    const g = () => this.#config.gateway;
    const local = new LocalBuckets(() => g().rate_per_second, () => g().burst);
    const buckets: Buckets = redis ? new RedisBuckets(redis, "pilox-mesh:gateway:bucket:", () => g().rate_per_second, () => g().burst, local) : local;
    this.service = new GatewayService({
      upstreamUrl: () => g().upstream_url,
      upstreamPath: () => g().upstream_path,
      secret: () => secrets().gatewaySecret,
      tls: () => secrets().gatewayTls ?? {},
      buckets,
      maxConcurrent: () => g().max_concurrent,
      maxBodyBytes: () => g().max_body_bytes,
      timeoutMs: () => g().upstream_timeout_seconds * 1000,
      breakerFailures: () => g().breaker_failures,
      breakerCooldownMs: () => g().breaker_cooldown_seconds * 1000,
      resolver: new ResolveCache(),
      registries: () => g().registries,
      resolveAllowPrivate: () => g().resolve_allow_private,
      acceptProofV1From: () => g().accept_proof_v1_from,
      metrics: metrics.gateway,
      http: metrics.http,
      log,
    });
  }

  routes(): Hono<{ Variables: { clientIp: string } }> {
    return this.service.routes();
  }

  reconfigure(config: Config): void {
    this.#config = config;
  }

  status() {
    return { upstream: this.#config.gateway.upstream_url || null, breakers: this.service.breakers() };
  }

  close(): void {
    this.service.close();
    this.#redis?.disconnect();
  }
}
