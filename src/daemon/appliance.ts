/**
 * The running appliance: configuration, bus, agent API and public listener, with reload that
 * keeps the old state when the new config is bad, and a stop that drains before it exits.
 */
import { mkdirSync } from "node:fs";
import { channelsOf, createBus, policyOf, type MeshBus } from "../bus/index.ts";
import { ConfigError, loadConfig, reloadRefusal, resolveSecrets, type Config, type LoadOptions, type Secrets } from "../config/index.ts";
import { buildDocument, buildJwks, rendered, type DiscoveryState } from "../discovery/index.ts";
import { agentApi } from "../http/agent-api.ts";
import { trustedProxyList } from "../http/client-ip.ts";
import { listenTcp, listenUnix, type Listening } from "../http/listen.ts";
import { publicApi, type Rendered } from "../http/public.ts";
import { createLogger, type Logger } from "../log/index.ts";
import { Federation, MemoryTokenReplayStore, type TokenReplayStore } from "../federation/index.ts";
import { createMetrics, type Metrics } from "../metrics/index.ts";
import { versionLine } from "../version.ts";

export interface ApplianceOptions {
  load: LoadOptions;
  /** serve --listen: overrides http.listen. */
  listen?: string;
  log?: Logger;
}

/** Settings that only a restart can change; a reload that changes them says so. */
function restartOnly(c: Config): string {
  return JSON.stringify([c.http.listen, c.api.socket, c.api.socket_mode, c.api.listen, c.log, c.bus.backend, c.bus.redis, c.node]);
}

export class Appliance {
  #config!: Config;
  #secrets!: Secrets;
  #bus!: MeshBus;
  readonly #listeners: Listening[] = [];
  readonly metrics: Metrics = createMetrics();
  #log!: Logger;
  #public: Listening | undefined;
  #trusted = trustedProxyList([]);
  #discovery!: { document: Rendered; keys: Rendered; maxAgeSeconds: number };
  #stopping: Promise<void> | undefined;
  #federation!: Federation;

  private constructor(private readonly opts: ApplianceOptions) {}

  get config(): Config {
    return this.#config;
  }
  get bus(): MeshBus {
    return this.#bus;
  }
  get listeners(): readonly Listening[] {
    return this.#listeners;
  }
  get log(): Logger {
    return this.#log;
  }

  static async start(opts: ApplianceOptions): Promise<Appliance> {
    const a = new Appliance(opts);
    await a.#start();
    return a;
  }

  #load(): { config: Config; secrets: Secrets } {
    const loaded = loadConfig(this.opts.listen ? { ...this.opts.load, listen: this.opts.listen } : this.opts.load);
    makeDir(loaded.config.node.state_dir, 0o700, "node.state_dir");
    return { config: loaded.config, secrets: resolveSecrets(loaded, true) };
  }

  async #start(): Promise<void> {
    const { config, secrets } = this.#load();
    this.#config = config;
    this.#secrets = secrets;
    this.#log = this.opts.log ?? createLogger({ level: config.log.level, format: config.log.format });
    this.#log.info("starting", { version: versionLine(), state_dir: config.node.state_dir, backend: config.bus.backend });
    this.#bus = await createBus(config, secrets, this.#log.child({ component: "bus" }), this.metrics.bus);
    await this.#bus.start();
    this.#federation = new Federation(config, {
      bus: () => this.#bus,
      identity: () => this.#secrets.identity!,
      hs256Secret: () => this.#secrets.hs256Secret,
      replay: await tokenReplayStore(config, secrets, this.#log),
      metrics: this.metrics,
      log: this.#log.child({ component: "federation" }),
      // The document shows the roster's sync outcome (wanMesh): render it again after each sync.
      onRosterSync: () => {
        if (this.#discovery) this.#render();
      },
    });
    this.#render();
    try {
      await this.#federation.start();
      await this.#listen();
    } catch (err) {
      await this.#closeAll();
      throw err;
    }
    const r = await this.#bus.ready();
    for (const w of r.warnings) this.#log.warn(w);
    this.#log.info("ready", { listeners: this.#listeners.map((l) => l.address).join(",") });
  }

  async #listen(): Promise<void> {
    const c = this.#config;
    const common = {
      bus: () => this.#bus,
      federationStatus: () => this.#federation.status(),
      reload: (o: { allowRemovals?: boolean }) => this.reload(o),
      maxBodyBytes: () => this.#config.api.max_body_bytes,
      maxSubscribers: () => this.#config.api.max_subscribers,
      sse: () => ({
        maxQueuedBytes: this.#config.api.sse_max_queued_bytes,
        maxTotalQueuedBytes: this.#config.api.sse_max_total_queued_bytes,
        writeTimeoutMs: this.#config.api.sse_write_timeout_seconds * 1000,
      }),
      log: this.#log.child({ component: "agent-api" }),
    };
    if (c.api.socket) {
      makeDir(c.node.runtime_dir, 0o755, "node.runtime_dir");
      this.#listeners.push(await listenUnix(agentApi(common), c.api.socket, parseInt(c.api.socket_mode, 8)));
    }
    if (c.api.listen) {
      this.#listeners.push(await listenTcp(agentApi({ ...common, token: () => this.#secrets.apiToken }), c.api.listen));
    }
    this.#listeners.push(
      await listenTcp(
        publicApi({
          bus: () => this.#bus,
          metrics: this.metrics,
          log: this.#log.child({ component: "http" }),
          discovery: () => this.#discovery,
          federationStatus: () => this.#publicStatus(),
          metricsToken: () => this.#secrets.metricsToken,
          trustedProxies: () => this.#trusted,
          relay: (c, client) => this.#federation.relay(c, client),
          relayTooLarge: (c, client) => this.#federation.relayTooLarge(c, client),
          relayMaxBytes: () => this.#config.federation.max_body_bytes,
          onScrape: () => this.metrics.federation.queueDepth.set(this.#federation.queueDepth()),
          maxBodyBytes: () => this.#config.http.max_body_bytes,
        }),
        c.http.listen,
        this.#secrets.tls,
      ),
    );
    this.#public = this.#listeners[this.#listeners.length - 1];
  }

  /** Renders the discovery document and JWKS once per configuration (not per request). */
  #render(): void {
    this.#trusted = trustedProxyList(this.#config.http.trusted_proxies);
    const s = this.#secrets;
    if (!s.identity) throw new Error("no instance identity");
    const state: DiscoveryState = {
      config: this.#config,
      identity: s.identity,
      federationActive: this.#federation.enabled,
      wanMesh: this.#federation.wanMesh(),
      ...(s.nextIdentity ? { nextIdentity: s.nextIdentity } : {}),
    };
    this.#discovery = { document: rendered(buildDocument(state)), keys: rendered(buildJwks(state)), maxAgeSeconds: this.#config.discovery.max_age_seconds };
  }

  /** What anyone may know of our federation: phase and roster counts, no peers or errors. */
  #publicStatus() {
    const on = this.#federation.enabled;
    return { meshV2: "2.10.0", enabled: on, phase: on ? "2.1-transport" : "2.0-config", transportActive: on, wanMesh: on ? this.#federation.wanMesh() : null };
  }

  get federation(): Federation {
    return this.#federation;
  }

  get identity() {
    return this.#secrets.identity!;
  }

  /**
   * Re-reads config and secrets; on any error the running state stays as it was. A new
   * configuration the running appliance cannot take (another backend), or one that removes
   * keys, peers or channels without `allowRemovals`, is refused the same way.
   */
  async reload(opts: { allowRemovals?: boolean } = {}): Promise<{ ok: true } | { ok: false; error: string }> {
    let next: { config: Config; secrets: Secrets };
    try {
      next = this.#load();
      const refusal = reloadRefusal(this.#config, next.config, opts.allowRemovals === true);
      if (refusal) throw new Error(refusal);
    } catch (err) {
      this.metrics.reloads.inc({ result: "rejected" });
      const error = (err as Error).message;
      this.#log.error("reload rejected; keeping the running configuration", { error });
      return { ok: false, error };
    }
    if (restartOnly(next.config) !== restartOnly(this.#config)) {
      this.#log.warn("listener, log, node or redis settings changed: they take effect at the next restart");
    }
    this.#bus.reconfigure(next.secrets.ring, policyOf(next.config), channelsOf(next.config));
    try {
      await this.#federation.reconfigure(next.config);
    } catch (err) {
      // The bus already runs the new keys; federation keeps what it could apply.
      this.#log.error("federation could not apply the new configuration", { error: (err as Error).message });
    }
    this.#config = { ...next.config, http: this.#config.http, api: { ...next.config.api, socket: this.#config.api.socket } };
    if (next.secrets.tls && this.#public?.setTls) this.#public.setTls(next.secrets.tls);
    else if (Boolean(next.secrets.tls) !== Boolean(this.#secrets.tls)) this.#log.warn("turning TLS on or off takes effect at the next restart");
    this.#secrets = next.secrets;
    this.#render();
    this.metrics.reloads.inc({ result: "ok" });
    this.#log.info("configuration reloaded", { primary_key: next.secrets.ring.primary.id, keys: next.secrets.ring.ids().join(",") });
    return { ok: true };
  }

  /** Stops accepting, drains requests and subscriptions, flushes the spool, closes the bus. */
  stop(graceMs = 5_000): Promise<void> {
    this.#stopping ??= (async () => {
      this.#log.info("stopping");
      await this.#closeAll(graceMs);
      this.#log.info("stopped");
    })();
    return this.#stopping;
  }

  async #closeAll(graceMs = 5_000): Promise<void> {
    await Promise.all(this.#listeners.map((l) => l.close(graceMs)));
    await this.#federation?.close();
    await this.#bus.close();
  }
}

/** Creates a directory the configuration names; failing that is a configuration error naming the key. */
function makeDir(path: string, mode: number, key: string): void {
  try {
    mkdirSync(path, { recursive: true, mode });
  } catch (err) {
    throw new ConfigError([{ key, message: `cannot create ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` }]);
  }
}

/** jti memory: in Redis (shared by the mesh's appliances) when the bus uses Redis. */
async function tokenReplayStore(c: Config, s: Secrets, log: Logger): Promise<TokenReplayStore> {
  if (c.bus.backend !== "redis") return new MemoryTokenReplayStore();
  const [{ redisClient }, { RedisTokenReplayStore }, { redisTargetOf }] = await Promise.all([
    import("../bus/backends/redis.ts"),
    import("../federation/replay-store.ts"),
    import("../bus/factory.ts"),
  ]);
  const r = redisClient(redisTargetOf(c, s), { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
  r.on("error", (err: Error) => log.limited("redis-jti", "warn", "redis connection error", { role: "jti", error: err.message }));
  r.connect().catch(() => {});
  return new RedisTokenReplayStore(r);
}
