/**
 * The registry as a role of the running appliance, the way federation is one: built from the
 * configuration, its routes mounted on the public listener, its sync started and stopped with
 * the appliance, and reconfigured by a reload. Signs with the instance identity.
 */
import { join } from "node:path";
import type { Hono } from "hono";
import { ConfigError, type Config } from "../config/index.ts";
import type { Ed25519Key } from "../identity/index.ts";
import type { Logger } from "../log/index.ts";
import type { RegistryMetrics } from "../metrics/index.ts";
import { RegistryService } from "./service.ts";
import { StoreFormatError, type RecordStore } from "./store.ts";
import { RegistrySync } from "./sync.ts";

export class RegistryRole {
  readonly service: RegistryService;
  readonly #sync: RegistrySync;
  readonly #store: RecordStore;
  #config: Config;
  /** The store chosen at start (registry.postgres.url needs a restart to change). */
  readonly #kind: "postgres" | "sqlite";
  #purgeTimer: NodeJS.Timeout | undefined;

  /** Builds the role; the PostgreSQL client is loaded only when [registry.postgres] url is set. */
  static async create(config: Config, identity: () => Ed25519Key, secrets: () => { writeToken?: Buffer; pgPassword?: string; pgCa?: Buffer }, metrics: RegistryMetrics, log: Logger): Promise<RegistryRole> {
    const pg = config.registry.postgres;
    // A store written by a newer format stops the start (exit 78), as a newer state directory
    // does; a PostgreSQL that is away at start does not (requests answer 503 until it is back).
    const formatError = (err: unknown) => (err instanceof StoreFormatError ? new ConfigError([{ key: pg.url ? "registry.postgres.url" : "node.state_dir", message: err.message }]) : err);
    let store: RecordStore;
    if (pg.url) {
      const { PgStore } = await import("./pg-store.ts");
      const s = secrets();
      store = new PgStore({ url: pg.url, ...(s.pgPassword ? { password: s.pgPassword } : {}), ...(s.pgCa ? { ca: s.pgCa } : {}) });
      try {
        await store.count();
      } catch (err) {
        if (err instanceof StoreFormatError) {
          await store.close();
          throw formatError(err);
        }
      }
    } else {
      const { SqliteStore } = await import("./sqlite-store.ts");
      try {
        store = new SqliteStore(join(config.node.state_dir, "registry.sqlite"));
      } catch (err) {
        throw formatError(err);
      }
    }
    return new RegistryRole(config, store, identity, () => secrets().writeToken, metrics, log);
  }

  private constructor(config: Config, store: RecordStore, identity: () => Ed25519Key, writeToken: () => Buffer | undefined, metrics: RegistryMetrics, log: Logger) {
    this.#config = config;
    this.#kind = config.registry.postgres.url ? "postgres" : "sqlite";
    const c = () => this.#config.registry;
    this.#store = store;
    this.service = new RegistryService({
      store: this.#store,
      key: identity,
      origin: () => this.#config.instance.origin,
      writeToken,
      requireProof: () => c().require_proof,
      maxFutureSkewMs: () => c().max_future_skew_seconds * 1000,
      tombstoneRetentionMs: () => c().tombstone_retention_seconds * 1000,
      registryKeys: () => c().peers.flatMap((p) => p.catalog_public_keys.map((k) => k.toLowerCase())),
      verifyOrigin: () => ({ enabled: c().verify_origin, allowPrivate: c().origin_allow_private }),
      maxBodyBytes: () => c().max_body_bytes,
      catalogFamily: () => c().catalog_proof,
      quota: () => ({ maxRecords: c().max_records, maxBytes: c().max_bytes, maxRecordsPerKey: c().max_records_per_key, maxBytesPerKey: c().max_bytes_per_key }),
      onQuota: (limit) => metrics.quotaRefused.inc({ limit }),
      log,
    });
    this.#sync = new RegistrySync(
      this.service,
      () => c().peers.map((p) => ({ url: p.url, catalogPublicKeys: p.catalog_public_keys, prefixes: p.prefixes, protocol: p.protocol })),
      () => c().sync_interval_seconds * 1000,
      join(config.node.state_dir, "registry-sync.json"),
      log,
    );
  }

  routes(): Hono {
    return this.service.routes();
  }

  start(): void {
    this.#sync.start();
    this.#purgeTimer = setInterval(() => void this.#store.purge(Date.now()), 3_600_000);
    this.#purgeTimer.unref();
  }

  reconfigure(config: Config): void {
    this.#config = config;
  }

  /** A sync pass now (tests, and `pilox-mesh status` freshness). */
  syncNow(): Promise<void> {
    return this.#sync.runOnce();
  }

  /** The store answers (within 2 s): PostgreSQL restarting makes the appliance unready, with the reason. */
  async ready(): Promise<{ ok: boolean; detail: string }> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const n = await Promise.race([this.#store.count(), new Promise<never>((_, no) => (timer = setTimeout(() => no(new Error("the store did not answer within 2 s")), 2_000)))]);
      return { ok: true, detail: `${this.#kind} store, ${n} records` };
    } catch (err) {
      return { ok: false, detail: `${this.#kind} store unavailable: ${(err as Error).message}` };
    } finally {
      clearTimeout(timer);
    }
  }

  status() {
    return { storage: this.#kind, peers: this.#sync.status() };
  }

  async close(): Promise<void> {
    clearInterval(this.#purgeTimer);
    await this.#sync.stop();
    await this.#store.close();
  }
}
