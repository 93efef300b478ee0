/** Federation in the running appliance: peers, inbound relay, forwarders, audit, status. */
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { join } from "node:path";
import { ReplayCache, ReplayJournal, type MeshBus } from "../bus/index.ts";
import type { Config } from "../config/index.ts";
import type { Ed25519Key } from "../identity/index.ts";
import type { Logger } from "../log/index.ts";
import type { Metrics } from "../metrics/index.ts";
import { AuditLog } from "./audit.ts";
import { handleRelay, RELAY_PATH, relayTooLarge } from "./inbound.ts";
import { Forwarder, queueDirFor } from "./outbound.ts";
import { PeerLinks } from "./peer-links.ts";
import { forwarderGroup } from "./peer-id.ts";
import { peersOf, type Peer } from "./peers.ts";
import { RateLimiter } from "../net/index.ts";
import type { TokenReplayStore } from "./replay-store.ts";
import { Roster } from "./roster.ts";
import { DISCOVERY_PATH, type WanMeshSummary } from "../discovery/index.ts";
import { MAX_MANIFEST_PEERS } from "./manifest.ts";

/** The reference's coarse categories for a failed manifest sync (what may be shown publicly). */
function issueCategory(error: string | null): WanMeshSummary["manifestIssueCategory"] {
  if (!error) return "unknown";
  if (/^(bad_signature|rollback|expired|unversioned)\b/.test(error)) return "verify";
  if (/^malformed\b|not JSON|^manifest:/.test(error)) return "protocol";
  if (/larger than/.test(error)) return "size";
  if (/answered \d+|fetch failed|ENOENT|ECONNREFUSED|timeout|abort/i.test(error)) return "fetch";
  return "unknown";
}

export interface FederationDeps {
  bus: () => MeshBus;
  identity: () => Ed25519Key;
  /** Set only when federation.hs256.enabled. */
  hs256Secret: () => Buffer | undefined;
  replay: TokenReplayStore;
  metrics: Metrics;
  log: Logger;
  /** Called after each manifest sync (the discovery document shows its outcome). */
  onRosterSync?: () => void;
  /** Called after the peer set changed (reload, manifest): other transports follow it. */
  onPeers?: (peers: ReadonlyMap<string, Peer>) => Promise<void> | void;
}

export class Federation {
  #config: Config;
  #peers: Map<string, Peer>;
  readonly #forwarders: PeerLinks<Forwarder>;
  readonly audit: AuditLog;
  readonly #delivered = new ReplayCache(1_000_000);
  readonly #deliveredJournal: ReplayJournal;
  readonly #ipLimit: RateLimiter;
  readonly #peerLimit: RateLimiter;
  readonly #roster: Roster;
  #refreshTimer: NodeJS.Timeout | undefined;
  #orphans: { channel: string; group: string; pending: number; lag: number | null }[] = [];

  constructor(config: Config, private readonly d: FederationDeps) {
    this.#config = config;
    this.#roster = new Roster(config);
    this.#peers = peersOf(config, this.#roster.peers());
    const f = config.federation;
    this.audit = new AuditLog(join(config.node.state_dir, "federation", "audit.jsonl"), { maxBytes: f.audit_max_bytes, keep: f.audit_keep, windowMs: f.audit_window_seconds * 1000 });
    const dir = join(config.node.state_dir, "federation");
    this.#deliveredJournal = new ReplayJournal(join(dir, "inbound-delivered.journal"), this.#delivered, d.log, join(dir, "inbound-delivered.json"));
    this.#ipLimit = new RateLimiter(() => this.#config.federation.per_ip_rate);
    this.#peerLimit = new RateLimiter((origin) => this.#peers.get(origin)?.ratePerSecond ?? 1);
    // A WAN peer's messages leave through the WAN role (src/wan), not the HTTPS relay.
    this.#forwarders = new PeerLinks({ transport: "relay", open: (p) => this.#forwarder(p), bus: d.bus, log: d.log });
  }

  get enabled(): boolean {
    return this.#peers.size > 0 || this.#roster.configured;
  }

  async start(): Promise<void> {
    if (this.#roster.configured) {
      await this.#syncManifest();
      this.#peers = peersOf(this.#config, this.#roster.peers());
    }
    await this.#forwarders.apply(this.#peers);
    this.#scheduleRefresh();
    await this.#findOrphans();
  }

  #scheduleRefresh(): void {
    clearInterval(this.#refreshTimer);
    if (!this.#roster.configured) return;
    this.#refreshTimer = setInterval(() => {
      void this.#syncManifest().then((changed) => (changed ? this.#applyPeers() : undefined));
    }, this.#config.federation.manifest.refresh_seconds * 1000);
    this.#refreshTimer.unref();
  }

  async #syncManifest(config?: Config): Promise<boolean> {
    const changed = await this.#roster.refresh(config);
    this.d.onRosterSync?.();
    const st = this.#roster.status();
    if (!st) return changed;
    this.d.metrics.federation.manifestSyncs.inc({ result: st?.lastSyncOk ? "ok" : "failed" });
    if (!st.lastSyncOk) this.d.log.warn("manifest refresh failed; keeping the last good roster", { url: st.url, error: st.lastError ?? "" });
    else if (st.unversioned) {
      this.d.log.limited("manifest-unversioned", "warn", "using a stock manifest without manifestExt: no expiry, rollback refused by issuedAt only", { url: st.url, issued_at: st.issuedAt ?? "" }, 3_600_000);
    }
    return changed;
  }

  #forwarder(p: Peer): Forwarder {
    const c = () => this.#config;
    return new Forwarder(p, {
      bus: this.d.bus,
      identity: this.d.identity,
      ourOrigin: () => c().instance.origin,
      tokenTtl: () => c().federation.token_lifetime_seconds,
      batchSize: () => c().federation.batch_size,
      batchMaxBytes: () => c().federation.batch_max_bytes,
      queueDir: queueDirFor(c().node.state_dir, p.origin),
      queueMaxBytes: c().federation.queue_max_bytes,
      audit: this.audit,
      log: this.d.log,
    });
  }

  /** Applies a reloaded configuration (and re-reads the manifest): no restart, no gap. */
  async reconfigure(config: Config): Promise<void> {
    this.#config = config;
    await this.#syncManifest(config);
    this.#scheduleRefresh();
    await this.#applyPeers();
  }

  async #applyPeers(): Promise<void> {
    this.#peers = peersOf(this.#config, this.#roster.peers());
    await this.#forwarders.apply(this.#peers);
    await this.#findOrphans();
    await this.d.onPeers?.(this.#peers);
  }

  /** The trusted peers (static and from the manifest): every transport checks against these. */
  peers(): ReadonlyMap<string, Peer> {
    return this.#peers;
  }

  /**
   * Forwarder groups on our durable channels that belong to no configured peer (a peer whose
   * origin changed while we were stopped, say): reported in status with their lag, and
   * logged, not removed, since another appliance on the same Redis may still use them.
   */
  async #findOrphans(): Promise<void> {
    const bus = this.d.bus();
    const ours = new Set([...this.#peers.values()].map((p) => forwarderGroup(p.origin)));
    const found: { channel: string; group: string; pending: number; lag: number | null }[] = [];
    for (const ch of bus.durableChannels()) {
      try {
        for (const g of await bus.backend.groups(ch)) if (g.name.startsWith("federation-") && !ours.has(g.name)) found.push({ channel: ch, group: g.name, pending: g.pending, lag: g.lag });
      } catch {
        return; // Redis away: keep the last report
      }
    }
    if (found.length) this.d.log.warn("consumer groups of no configured federation peer (remove with XGROUP DESTROY once unused)", { groups: found.map((g) => `${g.channel}/${g.group}`).join(",") });
    this.#orphans = found;
  }

  /** Where the relay is served (its own body bound: 413, counted and audited, before any cryptography). */
  readonly relayPath = RELAY_PATH;

  /** The relay on the public listener (a sub-app the daemon joins with `route()`). */
  routes(): Hono<{ Variables: { clientIp: string } }> {
    const app = new Hono<{ Variables: { clientIp: string } }>();
    app.post(
      RELAY_PATH,
      (c, next) => bodyLimit({ maxSize: this.#config.federation.max_body_bytes, onError: (c) => this.relayTooLarge(c, c.get("clientIp")) })(c, next),
      (c) => this.relay(c, c.get("clientIp")),
    );
    return app;
  }

  relayTooLarge(c: Context, client: string): Response {
    const m = this.d.metrics.federation;
    return relayTooLarge(c, { audit: this.audit, onRefused: (reason) => m.requests.inc({ direction: "inbound", outcome: "refused", reason }) }, client);
  }

  relay(c: Context, client: string): Promise<Response> {
    const m = this.d.metrics.federation;
    return handleRelay(
      c,
      {
        bus: this.d.bus,
        ourOrigin: () => this.#config.instance.origin,
        peers: () => this.#peers,
        policy: () => {
          const hs = this.#config.federation.hs256.enabled ? this.d.hs256Secret() : undefined;
          return { leewaySeconds: this.#config.federation.leeway_seconds, maxLifetimeSeconds: this.#config.federation.max_token_lifetime_seconds, ...(hs ? { hs256Secret: hs } : {}) };
        },
        replay: this.d.replay,
        ipLimit: this.#ipLimit,
        peerLimit: this.#peerLimit,
        delivered: {
          has: (key) => this.#delivered.has(key),
          add: (key) => {
            this.#delivered.claim(key, Number.POSITIVE_INFINITY);
            this.#deliveredJournal.record(key, Number.POSITIVE_INFINITY);
          },
          commit: () => this.#deliveredJournal.flush(),
        },
        audit: this.audit,
        log: this.d.log,
        onRefused: (reason) => m.requests.inc({ direction: "inbound", outcome: "refused", reason }),
        onAccepted: (_peer, n) => {
          m.requests.inc({ direction: "inbound", outcome: "accepted", reason: "" });
          m.messages.inc({ direction: "inbound" }, n);
        },
      },
      client,
    );
  }

  /** The reference's `federation.wanMesh` summary: counts and a coarse sync outcome, no error text. */
  wanMesh(): WanMeshSummary {
    const st = this.#roster.status();
    return {
      publicDescriptorPath: DISCOVERY_PATH,
      maxPeers: MAX_MANIFEST_PEERS,
      signedManifestConfigured: this.#roster.configured,
      staticPeerCount: this.#config.federation.peers.length,
      manifestPeerCount: this.#roster.peers().length,
      manifestLastSyncOk: st?.lastSyncOk ?? null,
      manifestIssueCategory: st && st.lastSyncOk === false ? issueCategory(st.lastError) : null,
    };
  }

  status() {
    return {
      enabled: this.enabled,
      origin: this.#config.instance.origin,
      manifest: this.#roster.status(),
      orphanedGroups: this.#orphans,
      peers: [...this.#peers.values()].map((p) => ({
        origin: p.origin,
        url: p.url,
        keys: p.keys.map((k) => ({ kid: k.kid, publicKeyHex: k.publicKeyHex })),
        acceptChannels: [...p.accept],
        forwardChannels: [...p.forward],
        ratePerSecond: p.ratePerSecond,
        transport: p.transport,
        ...(this.#forwarders.get(p.origin)?.status() ?? { queue: { messages: 0, bytes: 0, oldestAgeSeconds: null }, lastContact: null, lastError: null, sent: 0, deadLettered: 0, batchMaxBytes: 0 }),
      })),
    };
  }

  queueDepth(): number {
    let n = 0;
    for (const f of this.#forwarders.values()) n += f.status().queue.messages;
    return n;
  }

  manifestStatus() {
    return this.#roster.status();
  }

  async close(): Promise<void> {
    clearInterval(this.#refreshTimer);
    await this.#forwarders.closeAll();
    this.#deliveredJournal.close();
    this.audit.close();
    await this.d.replay.close?.();
  }
}
