/**
 * The appliance's roles, in start order: the one list the daemon composes (nebula's
 * NewXFromConfig per subsystem). Each entry builds its role from the configuration and the
 * context and fits it to the Role interface; the few views across roles (the WAN's peers
 * inside federation's status, its dead letters on the agent API) are composed here too, so no
 * role name appears in appliance.ts or http/public.ts.
 */
import type { Config } from "../config/index.ts";
import { Federation, MemoryTokenReplayStore, type TokenReplayStore } from "../federation/index.ts";
import type { WanDlq } from "../http/agent-api.ts";
import type { GatewayRole } from "../gateway/role.ts";
import type { RegistryRole } from "../registry/role.ts";
import type { WanRole } from "../wan/role.ts";
import type { Role, RoleContext, RoleFactory } from "./role.ts";

/** jti memory: in Redis (shared by the mesh's appliances) when the bus uses Redis. */
async function tokenReplayStore(c: Config, ctx: RoleContext): Promise<TokenReplayStore> {
  if (c.bus.backend !== "redis") return new MemoryTokenReplayStore();
  const { RedisTokenReplayStore } = await import("../federation/replay-store.ts");
  return new RedisTokenReplayStore(await ctx.sideRedis("jti"));
}

/** Federation, with what the other roles and the daemon read of it. */
export interface FederationRole extends Role {
  readonly federation: Federation;
}

const federation: RoleFactory = {
  name: "federation",
  // Always built: it serves the relay (refusing strangers) and the public federation status.
  enabled: () => true,
  async create(config, ctx): Promise<FederationRole> {
    const f = new Federation(config, {
      bus: ctx.bus,
      identity: () => ctx.secrets().identity!,
      hs256Secret: () => ctx.secrets().hs256Secret,
      replay: await tokenReplayStore(config, ctx),
      metrics: ctx.metrics,
      log: ctx.log("federation"),
      // The document shows the roster's sync outcome (wanMesh): render it again after each sync.
      onRosterSync: ctx.documentChanged,
      // The WAN carries federation's peers too: it follows the same peer set.
      onPeers: (peers) => wanOf(ctx)?.onPeers(peers),
    });
    return {
      name: "federation",
      federation: f,
      start: () => f.start(),
      reconfigure: (c) => f.reconfigure(c),
      close: () => f.close(),
      status: () => withWanPeers(f.status(), wanOf(ctx)),
      onScrape: () => {
        const m = ctx.metrics.federation;
        m.queueDepth.set(f.queueDepth());
        // Per peer, whichever transport carries it: what the alert rules watch.
        m.peerUp.reset();
        m.peerQueueMessages.reset();
        m.peerQueueAge.reset();
        for (const p of peerLinks(withWanPeers(f.status(), wanOf(ctx)))) {
          const l = { peer: p.origin, transport: p.transport };
          m.peerUp.set(l, p.up === false ? 0 : 1);
          m.peerQueueMessages.set(l, p.queue);
          m.peerQueueAge.set(l, p.oldestAgeSeconds ?? 0);
        }
      },
      routes: () => f.routes(),
      selfLimitedPaths: [f.relayPath],
    };
  },
};

export interface PeerLink {
  origin: string;
  transport: string;
  /** The last relay delivery worked, or the WAN link is up without error; null: not tried yet. */
  up: boolean | null;
  queue: number;
  oldestAgeSeconds: number | null;
  lastContact: string | null;
}

/** Each peer's link as the gauges and the status page show it (one rule for both). */
export function peerLinks(st: ReturnType<typeof withWanPeers>): PeerLink[] {
  const wanUp = "wan" in st ? st.wan.connected : false;
  return st.peers.map((p) => {
    const transport = p.transport ?? "relay";
    return {
      origin: p.origin,
      transport,
      up: p.lastError !== null ? false : transport === "wan" ? wanUp : p.lastContact ? true : null,
      queue: p.queue.messages,
      oldestAgeSeconds: p.queue.oldestAgeSeconds ?? null,
      lastContact: p.lastContact,
    };
  });
}

/** The WAN role's own object (its peers' senders), when it runs. */
const wanOf = (ctx: RoleContext): WanRole | undefined => ctx.role<{ wan: WanRole }>("wan")?.wan;

/** Federation's peers, each with the state of the transport that carries it. */
function withWanPeers(st: ReturnType<Federation["status"]>, wan: WanRole | undefined) {
  if (!wan) return st;
  const w = wan.status();
  return {
    ...st,
    wan: { connected: w.connected, server: w.server, error: w.error },
    peers: st.peers.map((p) => {
      const ws = p.transport === "wan" ? wan.peerStatus(p.origin) : null;
      // A WAN peer's queue and contact are the WAN sender's, not the (idle) relay's.
      return ws ? { ...p, queue: { messages: ws.queue.messages, bytes: ws.queue.bytes, oldestAgeSeconds: ws.queue.oldestAgeSeconds }, lastContact: ws.lastContact, lastError: ws.lastError, sent: ws.sent, wan: ws } : p;
    }),
  };
}

const registry: RoleFactory = {
  name: "registry",
  enabled: (c) => c.registry.enabled,
  async create(config, ctx): Promise<Role & { registry: RegistryRole }> {
    // Loaded only when enabled, like ioredis: node:sqlite and the registry stay out otherwise.
    const { RegistryRole } = await import("../registry/role.ts");
    const s = ctx.secrets;
    const r = await RegistryRole.create(config, () => s().identity!, () => ({ writeToken: s().registryWriteToken, pgPassword: s().registryPgPassword, pgCa: s().registryPgCa }), ctx.metrics.registryRole, ctx.log("registry"));
    return {
      name: "registry",
      registry: r,
      start: async () => r.start(),
      reconfigure: (c) => r.reconfigure(c),
      close: () => r.close(),
      status: () => r.status(),
      ready: () => r.ready(),
      readyRequired: true,
      onScrape: async () => {
        const st = r.status();
        ctx.metrics.registryRole.storeUp.set({ store: st.storage }, (await r.ready()).ok ? 1 : 0);
      },
      routes: () => r.routes(),
      selfLimitedPaths: ["/v1/records"],
    };
  },
};

const gateway: RoleFactory = {
  name: "gateway",
  enabled: (c) => c.gateway.enabled,
  async create(config, ctx): Promise<Role> {
    const { GatewayRole } = await import("../gateway/role.ts");
    const g: GatewayRole = await GatewayRole.create(config, ctx.secrets, ctx.metrics, ctx.log("gateway"), () => ctx.sideRedis("gateway"));
    return {
      name: "gateway",
      start: async () => {},
      reconfigure: (c) => g.reconfigure(c),
      close: async () => g.close(),
      status: () => g.status(),
      routes: () => g.routes(),
      // Its proxied POSTs go from Node's request to Node's response, before the framework.
      intercept: (req, res, client) => g.service.intercept(req, res, client),
    };
  },
};

const wan: RoleFactory = {
  name: "wan",
  enabled: (c) => c.wan.nats_urls.length > 0,
  async create(config, ctx): Promise<Role & { wan: WanRole; deadLetters: WanDlq }> {
    // Loaded only when configured: the NATS client stays out otherwise.
    const { WanRole } = await import("../wan/role.ts");
    const fed = ctx.role<FederationRole>("federation")!.federation;
    const w = await WanRole.create(config, {
      bus: ctx.bus,
      identity: () => ctx.secrets().identity!,
      ownKeys: () => [ctx.secrets().identity!, ...(ctx.secrets().nextIdentity ? [ctx.secrets().nextIdentity!] : [])],
      peers: () => fed.peers(),
      secrets: () => ctx.secrets().wan,
      metrics: ctx.metrics.wan,
      log: ctx.log("wan"),
    });
    return {
      name: "wan",
      wan: w,
      start: () => w.start(),
      reconfigure: (c) => w.reconfigure(c),
      close: () => w.close(),
      status: () => w.status(),
      // The WAN away makes the appliance degraded, not unready: local agents are served, and
      // messages for WAN peers wait on disk (the queue's depth and oldest age say how long).
      ready: () => ({ ...w.ready() }),
      readyRequired: false,
      onScrape: () => {
        ctx.metrics.wan.queueDepth.set(w.queueDepth());
        const st = w.status();
        ctx.metrics.wan.connected.set({ stream: st.stream }, st.connected ? 1 : 0);
        w.scrape();
      },
      routes: () => w.routes(),
      // The bridge-compatible publish answers 401 before 413, so it bounds its own body.
      selfLimitedPaths: ["/v1/publish"],
      deadLetters: { list: (after, limit) => w.listDeadLetters(after, limit), replay: (id) => w.replayDeadLetter(id) },
    };
  },
};

/** What `status` shows per role (null for a role that is off). */
export interface RoleStatuses {
  federation: ReturnType<typeof withWanPeers>;
  registry: ReturnType<RegistryRole["status"]> | null;
  gateway: ReturnType<GatewayRole["status"]> | null;
  wan: ReturnType<WanRole["status"]> | null;
}

/** Every role, in start order (federation first: the WAN carries its peers). */
export const ROLES: readonly RoleFactory[] = [federation, registry, gateway, wan];

/** Federation's status as its role shows it (each peer with the transport that carries it). */
export const federationStatusOf = (roles: readonly Role[]): RoleStatuses["federation"] => roles.find((r) => r.name === "federation")!.status() as RoleStatuses["federation"];

/** Federation, which the discovery document and the agent API read. */
export const federationOf = (roles: readonly Role[]): Federation => (roles.find((r) => r.name === "federation") as FederationRole).federation;

/** The WAN's dead letters for the agent API (`pilox-mesh wan dlq`), when the WAN runs. */
export const deadLettersOf = (roles: readonly Role[]): WanDlq | undefined => (roles.find((r) => r.name === "wan") as (Role & { deadLetters?: WanDlq }) | undefined)?.deadLetters;

/** The registry role (tests drive its sync). */
export const registryOf = (roles: readonly Role[]): RegistryRole | undefined => (roles.find((r) => r.name === "registry") as (Role & { registry?: RegistryRole }) | undefined)?.registry;
