/**
 * The running appliance: configuration, bus, agent API and public listener, with reload that
 * keeps the old state when the new config is bad, and a stop that drains before it exits.
 */
import { mkdirSync } from "node:fs";
import { channelsOf, createBus, policyOf, sideRedis, type MeshBus } from "../bus/index.ts";
import { ConfigError, loadConfig, reloadRefusal, resolveSecrets, restartOnlyChanges, type Config, type LoadOptions, type Secrets } from "../config/index.ts";
import { buildDocument, buildJwks, buildPublicStatus, hiveDocument, rendered, type DiscoveryState } from "../discovery/index.ts";
import { agentApi } from "../http/agent-api.ts";
import { resolveClientIp, trustedProxyList } from "../http/client-ip.ts";
import { listenTcp, listenUnix, type Listening } from "../http/listen.ts";
import { publicApi, type Rendered } from "../http/public.ts";
import { createLogger, type Logger } from "../log/index.ts";
import { Federation, MemoryTokenReplayStore, type TokenReplayStore } from "../federation/index.ts";
import { createMetrics, type Metrics } from "../metrics/index.ts";
import { claimStateDir } from "./state-format.ts";
import { versionLine } from "../version.ts";
import type { RegistryRole } from "../registry/role.ts";
import type { GatewayRole } from "../gateway/role.ts";
import type { WanRole } from "../wan/role.ts";

export interface ApplianceOptions {
  load: LoadOptions;
  /** serve --listen: overrides http.listen. */
  listen?: string;
  log?: Logger;
}

export interface ReloadState {
  ok: boolean;
  at: string;
  error?: string;
  /** Settings changed by the last accepted reload that wait for a restart. */
  pendingRestart?: string[];
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
  #discovery!: { document: Rendered; hive: Rendered; keys: Rendered; maxAgeSeconds: number };
  #stopping: Promise<void> | undefined;
  #federation!: Federation;
  #registry: RegistryRole | undefined;
  #gateway: GatewayRole | undefined;
  #wan: WanRole | undefined;
  #lastReload: ReloadState | undefined;
  #files: string[] = [];
  readonly #startedAt = Date.now();

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

  #load(): { config: Config; secrets: Secrets; files: string[] } {
    const loaded = loadConfig(this.opts.listen ? { ...this.opts.load, listen: this.opts.listen } : this.opts.load);
    makeDir(loaded.config.node.state_dir, 0o700, "node.state_dir");
    claimStateDir(loaded.config.node.state_dir);
    const secrets = resolveSecrets(loaded, true);
    return { config: loaded.config, secrets, files: loaded.files };
  }

  async #start(): Promise<void> {
    const { config, secrets, files } = this.#load();
    this.#files = files;
    this.#config = config;
    this.#secrets = secrets;
    this.#log = this.opts.log ?? createLogger({ level: config.log.level, format: config.log.format });
    this.#log.info("starting", { version: versionLine(), state_dir: config.node.state_dir, backend: config.bus.backend });
    this.#log.debug("configuration loaded", { files: files.join(",") || "(defaults)", channels: config.bus.channels.map((c) => c.name).join(","), peers: config.federation.peers.length });
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
      // The WAN carries federation's peers too: it follows the same peer set.
      onPeers: (peers) => this.#wan?.onPeers(peers),
    });
    this.#render();
    try {
      if (config.registry.enabled) {
        // Loaded only when enabled, like ioredis: node:sqlite and the registry stay out otherwise.
        const { RegistryRole } = await import("../registry/role.ts");
        this.#registry = await RegistryRole.create(
          config,
          () => this.#secrets.identity!,
          () => ({ writeToken: this.#secrets.registryWriteToken, pgPassword: this.#secrets.registryPgPassword, pgCa: this.#secrets.registryPgCa }),
          this.metrics.registryRole,
          this.#log.child({ component: "registry" }),
        );
      }
      if (config.gateway.enabled) {
        const { GatewayRole } = await import("../gateway/role.ts");
        this.#gateway = await GatewayRole.create(config, () => this.#secrets, this.metrics, this.#log.child({ component: "gateway" }));
      }
      await this.#federation.start();
      if (config.wan.nats_urls.length > 0) {
        // Loaded only when configured: the NATS client stays out otherwise.
        const { WanRole } = await import("../wan/role.ts");
        this.#wan = await WanRole.create(config, {
          bus: () => this.#bus,
          identity: () => this.#secrets.identity!,
          ownKeys: () => [this.#secrets.identity!, ...(this.#secrets.nextIdentity ? [this.#secrets.nextIdentity] : [])],
          peers: () => this.#federation.peers(),
          secrets: () => this.#secrets.wan,
          metrics: this.metrics.wan,
          log: this.#log.child({ component: "wan" }),
        });
        await this.#wan.start();
      }
      await this.#listen();
      this.#registry?.start();
    } catch (err) {
      await this.#closeAll();
      throw err;
    }
    const r = await this.#bus.ready();
    for (const w of r.warnings) this.#log.warn(w);
    const listeners = this.#listeners.map((l) => l.address).join(",");
    if (r.ok) this.#log.info("ready", { listeners });
    else {
      // "ready" means what /readyz means: said once the backend is there.
      this.#log.warn("started, not ready yet: waiting for the bus backend", { listeners, detail: r.detail });
      let said = false;
      this.#bus.backend.onReady(() => {
        if (said) return;
        said = true;
        this.#log.info("ready", { listeners });
      });
    }
  }

  async #listen(): Promise<void> {
    const c = this.#config;
    const common = {
      bus: () => this.#bus,
      federationStatus: () => this.#federationStatus(),
      reload: (o: { allowRemovals?: boolean }) => this.reload(o),
      maxBodyBytes: () => this.#config.api.max_body_bytes,
      maxSubscribers: () => this.#config.api.max_subscribers,
      sse: () => ({
        maxQueuedBytes: this.#config.api.sse_max_queued_bytes,
        maxTotalQueuedBytes: this.#config.api.sse_max_total_queued_bytes,
        writeTimeoutMs: this.#config.api.sse_write_timeout_seconds * 1000,
      }),
      log: this.#log.child({ component: "agent-api" }),
      metrics: this.metrics.http,
      status: () => this.status(),
      wanDlq: () => {
        const w = this.#wan;
        return w ? { list: (after: number, limit: number) => w.listDeadLetters(after, limit), replay: (id: number) => w.replayDeadLetter(id) } : undefined;
      },
    };
    if (c.api.socket) {
      makeDir(c.node.runtime_dir, 0o755, "node.runtime_dir");
      this.#listeners.push(await listenUnix(agentApi({ ...common, listener: "agent-socket" }), c.api.socket, parseInt(c.api.socket_mode, 8)));
    }
    if (c.api.listen) {
      this.#listeners.push(await listenTcp(agentApi({ ...common, listener: "agent-tcp", token: () => this.#secrets.apiToken }), c.api.listen));
    }
    this.#listeners.push(
      await listenTcp(
        publicApi({
          bus: () => this.#bus,
          metrics: this.metrics,
          log: this.#log.child({ component: "http" }),
          discovery: () => this.#discovery,
          federationStatus: () => buildPublicStatus(this.#federation.enabled, this.#federation.enabled ? this.#federation.wanMesh() : undefined),
          metricsToken: () => this.#secrets.metricsToken,
          trustedProxies: () => this.#trusted,
          relay: (c, client) => this.#federation.relay(c, client),
          relayTooLarge: (c, client) => this.#federation.relayTooLarge(c, client),
          relayMaxBytes: () => this.#config.federation.max_body_bytes,
          wanReady: () => this.#wan?.ready() ?? null,
          readyChecks: () => (this.#registry ? [{ name: "registry", check: () => this.#registry!.ready() }] : []),
          onScrape: () => {
            this.metrics.federation.queueDepth.set(this.#federation.queueDepth());
            if (this.#wan) {
              this.metrics.wan.queueDepth.set(this.#wan.queueDepth());
              this.#wan.status();
            }
            this.metrics.backendUp.set({ backend: this.#bus.backend.kind }, this.#bus.backend.isReady() ? 1 : 0);
          },
          maxBodyBytes: () => this.#config.http.max_body_bytes,
          mount: [...(this.#registry ? [this.#registry.routes()] : []), ...(this.#gateway ? [this.#gateway.routes()] : []), ...(this.#wan ? [this.#wan.routes()] : [])],
          // The bridge-compatible publish answers 401 before 413, and the registry has its own
          // bound (registry.max_body_bytes): they bound their own bodies.
          selfLimitedPaths: [...(this.#wan ? ["/v1/publish"] : []), ...(this.#registry ? ["/v1/records"] : [])],
        }),
        c.http.listen,
        this.#secrets.tls,
        this.#gateway
          ? (req, res) => {
              const gw = this.#gateway!;
              const xff = req.headers["x-forwarded-for"];
              return gw.service.intercept(req, res, resolveClientIp(req.socket.remoteAddress ?? "", Array.isArray(xff) ? xff.join(",") : xff, this.#trusted));
            }
          : undefined,
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
    const document = buildDocument(state);
    this.#discovery = { document: rendered(document), hive: rendered(hiveDocument(document)), keys: rendered(buildJwks(state)), maxAgeSeconds: this.#config.discovery.max_age_seconds };
  }

  /** `pilox-mesh status`: what an operator asks first. */
  async status() {
    const bus = this.#bus;
    const r = await bus.ready();
    const c = this.#config;
    return {
      version: versionLine(),
      node: c.node.name,
      uptimeSeconds: Math.round((Date.now() - this.#startedAt) / 1000),
      origin: c.instance.origin,
      configFiles: this.#files,
      listeners: this.#listeners.map((l) => l.address),
      lastReload: this.#lastReload ?? null,
      bus: {
        backend: bus.backend.kind,
        ready: r.ok,
        detail: r.detail,
        warnings: r.warnings,
        primaryKey: bus.keyRing.primary.id,
        keys: bus.keyRing.ids(),
        channels: c.bus.channels.map((ch) => ({ name: ch.name, durable: ch.durable, maxAgeSeconds: ch.max_age_seconds ?? c.bus.max_age_seconds })),
        spool: bus.spoolStats(),
      },
      federation: this.#federationStatus(),
      wan: this.#wan ? this.#wan.status() : null,
      registry: this.#registry ? this.#registry.status() : null,
      gateway: this.#gateway ? this.#gateway.status() : null,
    };
  }

  /** Federation's peers, each with the state of the transport that carries it. */
  #federationStatus() {
    const st = this.#federation.status();
    if (!this.#wan) return st;
    const w = this.#wan.status();
    return {
      ...st,
      wan: { connected: w.connected, server: w.server, error: w.error },
      peers: st.peers.map((p) => {
        const ws = p.transport === "wan" ? this.#wan!.peerStatus(p.origin) : null;
        // A WAN peer's queue and contact are the WAN sender's, not the (idle) relay's.
        return ws ? { ...p, queue: { messages: ws.queue.messages, bytes: ws.queue.bytes }, lastContact: ws.lastContact, lastError: ws.lastError, sent: ws.sent, wan: ws } : p;
      }),
    };
  }

  get registry(): RegistryRole | undefined {
    return this.#registry;
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
    let next: { config: Config; secrets: Secrets; files: string[] };
    try {
      next = this.#load();
      const refusal = reloadRefusal(this.#config, next.config, opts.allowRemovals === true);
      if (refusal) throw new Error(refusal);
    } catch (err) {
      this.metrics.reloads.inc({ result: "rejected" });
      const error = (err as Error).message;
      this.#log.error("reload rejected; keeping the running configuration", { error });
      this.#lastReload = { ok: false, at: new Date().toISOString(), error };
      this.metrics.reloadState(false);
      return { ok: false, error };
    }
    const pending = restartOnlyChanges(this.#config, next.config);
    if (pending.length) this.#log.warn("some changed settings take effect at the next restart", { settings: pending.join(",") });
    this.#bus.reconfigure(next.secrets.ring, policyOf(next.config), channelsOf(next.config));
    try {
      await this.#federation.reconfigure(next.config);
    } catch (err) {
      // The bus already runs the new keys; federation keeps what it could apply.
      this.#log.error("federation could not apply the new configuration", { error: (err as Error).message });
    }
    this.#registry?.reconfigure(next.config);
    this.#gateway?.reconfigure(next.config);
    this.#wan?.reconfigure(next.config);
    this.#config = { ...next.config, http: this.#config.http, api: { ...next.config.api, socket: this.#config.api.socket } };
    if (next.secrets.tls && this.#public?.setTls) this.#public.setTls(next.secrets.tls);
    else if (Boolean(next.secrets.tls) !== Boolean(this.#secrets.tls)) this.#log.warn("turning TLS on or off takes effect at the next restart");
    this.#secrets = next.secrets;
    this.#files = next.files;
    this.#render();
    this.metrics.reloads.inc({ result: "ok" });
    this.#lastReload = { ok: true, at: new Date().toISOString(), ...(pending.length ? { pendingRestart: pending } : {}) };
    this.metrics.reloadState(true);
    this.#log.debug("reloaded from", { files: next.files.join(",") || "(defaults)" });
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
    await this.#wan?.close();
    await this.#federation?.close();
    await this.#registry?.close();
    this.#gateway?.close();
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
  const { RedisTokenReplayStore } = await import("../federation/replay-store.ts");
  return new RedisTokenReplayStore(await sideRedis(c, s, log, "jti"));
}
