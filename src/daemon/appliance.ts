/**
 * The running appliance: configuration, bus, agent API and public listener, with reload that
 * keeps the old state when the new config is bad, and a stop that drains before it exits.
 */
import { X509Certificate } from "node:crypto";
import { mkdirSync } from "node:fs";
import { REJECT_REASONS, type MeshBus } from "../bus/index.ts";
import { channelsOf, createBus, policyOf, sideRedis } from "./bus-factory.ts";
import { ConfigError, keyWarnings, loadConfig, pinnedForReload, reloadRefusal, resolveSecrets, restartOnlyChanges, type Config, type LoadOptions, type Secrets } from "../config/index.ts";
import { buildDocument, buildJwks, buildPublicStatus, hiveDocument, rendered, type DiscoveryState } from "../discovery/index.ts";
import { agentApi } from "../http/agent-api.ts";
import { resolveClientIp, trustedProxyList } from "../http/client-ip.ts";
import { listenTcp, listenUnix, type Listening } from "../http/listen.ts";
import { publicApi, type Rendered } from "../http/public.ts";
import { createLogger, type Logger } from "../log/index.ts";
import { FEDERATION_REFUSAL_REASONS, type Federation } from "../federation/index.ts";
import { createMetrics, type Metrics } from "../metrics/index.ts";
import { refuseRootInForeignDir } from "./owner.ts";
import { claimStateDir } from "./state-format.ts";
import { VERSION, versionLine } from "../version.ts";
import type { RegistryRole } from "../registry/role.ts";
import type { Role, RoleContext } from "./role.ts";
import { WAN_DUPLICATE_LAYERS, WAN_REFUSAL_REASONS } from "../wan/reasons.ts";
import { deadLettersOf, federationOf, federationStatusOf, peerLinks, registryOf, ROLES, type RoleStatuses } from "./roles.ts";

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
  readonly metrics: Metrics = createMetrics({ busRejected: REJECT_REASONS, federationRefused: FEDERATION_REFUSAL_REASONS, wanRefused: WAN_REFUSAL_REASONS, wanDuplicateLayers: WAN_DUPLICATE_LAYERS });
  #log!: Logger;
  #public: Listening | undefined;
  #trusted = trustedProxyList([]);
  #discovery!: { document: Rendered; hive: Rendered; keys: Rendered; maxAgeSeconds: number };
  #stopping: Promise<void> | undefined;
  /** The enabled roles, in start order (daemon/roles.ts). */
  #roles: Role[] = [];
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
    refuseRootInForeignDir(loaded.config.node.state_dir);
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
    const ctx: RoleContext = {
      bus: () => this.#bus,
      secrets: () => this.#secrets,
      metrics: this.metrics,
      log: (component) => this.#log.child({ component }),
      sideRedis: (name) => sideRedis(this.#config, this.#secrets, this.#log, name),
      documentChanged: () => {
        if (this.#discovery) this.#render();
      },
      role: <R>(name: string) => this.#roles.find((r) => r.name === name) as R | undefined,
    };
    try {
      // Built in list order (a role may use one built before it), started once the listeners are up.
      for (const f of ROLES) if (f.enabled(config)) this.#roles.push(await f.create(config, ctx));
      this.#render();
      await this.#listen();
      for (const r of this.#roles) await r.start();
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
      wanDlq: () => deadLettersOf(this.#roles),
    };
    if (c.api.socket) {
      makeDir(c.node.runtime_dir, 0o755, "node.runtime_dir");
      try {
        this.#listeners.push(await listenUnix(agentApi({ ...common, listener: "agent-socket" }), c.api.socket, parseInt(c.api.socket_mode, 8)));
      } catch (err) {
        // Two instances on one host share the default socket: say which settings separate them.
        if (/in use by another process/.test((err as Error).message)) {
          throw new Error(`${(err as Error).message}. Another instance on this host? Give each instance its own node.runtime_dir (or api.socket) and node.state_dir, and its own http.listen port`);
        }
        throw err;
      }
    }
    if (c.api.listen) {
      this.#listeners.push(await listenTcp(agentApi({ ...common, listener: "agent-tcp", token: () => this.#secrets.apiToken }), c.api.listen));
    }
    const intercepts = this.#roles.filter((r) => r.intercept);
    this.#listeners.push(
      await listenTcp(
        publicApi({
          bus: () => this.#bus,
          metrics: this.metrics,
          log: this.#log.child({ component: "http" }),
          discovery: () => this.#discovery,
          federationStatus: () => buildPublicStatus(this.#fed.enabled, this.#fed.enabled ? this.#fed.wanMesh() : undefined),
          metricsToken: () => this.#secrets.metricsToken,
          trustedProxies: () => this.#trusted,
          onScrape: () => this.metrics.backendUp.set({ backend: this.#bus.backend.kind }, this.#bus.backend.isReady() ? 1 : 0),
          roles: () => this.#roles,
          maxBodyBytes: () => this.#config.http.max_body_bytes,
          statusPage: { enabled: () => this.#config.http.status_page, data: () => this.#statusPageData() },
        }),
        c.http.listen,
        this.#secrets.tls,
        intercepts.length
          ? (req, res) => {
              const xff = req.headers["x-forwarded-for"];
              const client = resolveClientIp(req.socket.remoteAddress ?? "", Array.isArray(xff) ? xff.join(",") : xff, this.#trusted);
              return intercepts.some((r) => r.intercept!(req, res, client));
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
    // The certificate's end of validity, for the "expiring" alert (0 without TLS: no alert).
    this.metrics.tlsCertExpiry.set(s.tls ? Math.floor(Date.parse(new X509Certificate(s.tls.cert).validTo) / 1000) : 0);
    if (!s.identity) throw new Error("no instance identity");
    const state: DiscoveryState = {
      config: this.#config,
      identity: s.identity,
      federationActive: this.#fed.enabled,
      wanMesh: this.#fed.wanMesh(),
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
      warnings: keyWarnings(this.#secrets),
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
      // Every role's status under its name; null for a role that is off.
      ...(Object.fromEntries(ROLES.map((f) => [f.name, this.#roles.find((r) => r.name === f.name)?.status() ?? null])) as unknown as RoleStatuses),
    };
  }

  /** What the status page shows: public-safe (no keys, no error texts). */
  async #statusPageData() {
    return {
      origin: this.#config.instance.origin,
      node: this.#config.node.name,
      version: VERSION,
      roles: this.#roles.map((r) => r.name),
      ready: (await this.#bus.ready()).ok,
      peers: peerLinks(this.#federationStatus()),
    };
  }

  #federationStatus() {
    return federationStatusOf(this.#roles);
  }

  get #fed(): Federation {
    return federationOf(this.#roles);
  }

  get registry(): RegistryRole | undefined {
    return registryOf(this.#roles);
  }

  get federation(): Federation {
    return this.#fed;
  }

  get identity() {
    return this.#secrets.identity!;
  }

  /**
   * Re-reads config and secrets; on any error the running state stays as it was. A new
   * configuration the running appliance cannot take (another backend), or one that removes
   * keys, peers or channels without `allowRemovals`, is refused the same way.
   */
  async reload(opts: { allowRemovals?: boolean } = {}): Promise<{ ok: true; pendingRestart?: string[] } | { ok: false; error: string }> {
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
    // One configuration for every part: the new one with the restart-only keys as they run.
    const config = pinnedForReload(this.#config, next.config);
    this.#bus.reconfigure(next.secrets.ring, policyOf(config), channelsOf(config));
    for (const r of this.#roles) {
      try {
        await r.reconfigure(config);
      } catch (err) {
        // The bus already runs the new keys; the role keeps what it could apply.
        this.#log.error(`${r.name} could not apply the new configuration`, { error: (err as Error).message });
      }
    }
    this.#config = config;
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
    return { ok: true, ...(pending.length ? { pendingRestart: pending } : {}) };
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

  /** Listeners first (no new work), then the roles in reverse start order, then the bus: a log line per step. */
  async #closeAll(graceMs = 5_000): Promise<void> {
    await Promise.all(this.#listeners.map((l) => l.close(graceMs)));
    this.#log.info("listeners closed");
    for (const r of [...this.#roles].reverse()) {
      try {
        await r.close(graceMs);
        this.#log.info(`${r.name} stopped`);
      } catch (err) {
        this.#log.error(`${r.name} did not stop cleanly`, { error: (err as Error).message });
      }
    }
    await this.#bus.close();
    this.#log.info("bus closed");
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
