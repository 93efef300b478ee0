/** The appliance's Prometheus metrics (prom-client), one registry per appliance instance. */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { COMMIT, VERSION } from "../version.ts";

export interface BusMetrics {
  published: Counter<"durable">;
  delivered: Counter<"durable">;
  rejected: Counter<"reason">;
  duplicates: Counter;
  spoolDepth: Gauge;
  spoolBytes: Gauge;
  spoolRefused: Counter;
}

export interface FederationMetrics {
  requests: Counter<"direction" | "outcome" | "reason">;
  messages: Counter<"direction">;
  queueDepth: Gauge;
  manifestSyncs: Counter<"result">;
  /** Per peer (set at scrape): 1 while its last delivery attempt succeeded (relay) or its link is up (WAN). */
  peerUp: Gauge<"peer" | "transport">;
  /** Per peer (set at scrape): messages waiting for it, and how long its queue has not emptied. */
  peerQueueMessages: Gauge<"peer" | "transport">;
  peerQueueAge: Gauge<"peer" | "transport">;
}

export interface HttpMetrics {
  requests: Counter<"listener" | "route" | "method" | "status">;
  duration: Histogram<"listener" | "route" | "method">;
}

export interface GatewayMetrics {
  rateLimited: Counter<"route">;
  upstreamSeconds: Histogram<"upstream">;
  upstreamFailures: Counter<"upstream" | "kind">;
  /** 0 closed, 1 half-open, 2 open. */
  breaker: Gauge<"upstream">;
}

export interface WanMetrics {
  /** Messages sent in frames (PubAck received), by peer. */
  published: Counter<"peer">;
  /** Messages taken into the on-disk WAN queue, by peer. */
  spooled: Counter<"peer">;
  delivered: Counter<"peer">;
  /** Repeats caught, by layer: "jetstream" (PubAck duplicate) or "receiver" (sequence memory). */
  duplicates: Counter<"layer">;
  rejected: Counter<"reason">;
  dlq: Counter<"reason">;
  /** Frames the consumer has not yet taken (set at scrape). */
  consumerPending: Gauge;
  /** Messages waiting in the WAN queues (set at scrape). */
  queueDepth: Gauge;
  /** 1 while connected to a NATS server (set at scrape, by the WAN's stream: no series without [wan]). */
  connected: Gauge<"stream">;
}

export interface RegistryMetrics {
  /** Writes refused by a storage limit, by limit (records, bytes, records_per_key, bytes_per_key). */
  quotaRefused: Counter<"limit">;
  /** 1 while the registry's store answers (set at scrape). */
  storeUp: Gauge<"store">;
}

export interface Metrics {
  registry: Registry;
  registryRole: RegistryMetrics;
  wan: WanMetrics;
  gateway: GatewayMetrics;
  bus: BusMetrics;
  federation: FederationMetrics;
  http: HttpMetrics;
  reloads: Counter<"result">;
  /** 1 while the bus backend is connected (set at scrape). */
  backendUp: Gauge<"backend">;
  /** When the public listener's TLS certificate expires (unix seconds; absent without TLS). */
  tlsCertExpiry: Gauge;
  /** Records a reload's outcome: the success gauge and its time. */
  reloadState(ok: boolean): void;
}

/**
 * The reasons each labelled counter starts at zero with, owned by the domains that refuse (the
 * bus's verifier, federation's token check and relay), handed in by whoever composes them.
 */
export interface MetricReasons {
  busRejected?: readonly string[];
  federationRefused?: readonly string[];
  wanRefused?: readonly string[];
  wanDuplicateLayers?: readonly string[];
}

export function createMetrics(reasons: MetricReasons = {}): Metrics {
  const registry = new Registry();
  const bus: BusMetrics = {
    published: new Counter({ name: "pilox_mesh_bus_published_total", help: "Messages sealed and published (or spooled) by this appliance.", labelNames: ["durable"], registers: [registry] }),
    delivered: new Counter({ name: "pilox_mesh_bus_delivered_total", help: "Verified messages delivered to local subscribers.", labelNames: ["durable"], registers: [registry] }),
    rejected: new Counter({ name: "pilox_mesh_bus_rejected_total", help: "Received messages refused, by reason.", labelNames: ["reason"], registers: [registry] }),
    duplicates: new Counter({ name: "pilox_mesh_bus_durable_duplicates_total", help: "Durable redeliveries of an already handled event id, acknowledged and dropped.", registers: [registry] }),
    spoolDepth: new Gauge({ name: "pilox_mesh_bus_spool_messages", help: "Durable publishes waiting in the on-disk spool.", registers: [registry] }),
    spoolBytes: new Gauge({ name: "pilox_mesh_bus_spool_bytes", help: "Size of the on-disk spool.", registers: [registry] }),
    spoolRefused: new Counter({ name: "pilox_mesh_bus_spool_refused_total", help: "Durable publishes refused because the spool was full.", registers: [registry] }),
  };
  for (const r of reasons.busRejected ?? []) bus.rejected.inc({ reason: r }, 0);
  new Gauge({ name: "pilox_mesh_build_info", help: "Version, commit and runtime of this build (value 1).", labelNames: ["version", "commit", "node"], registers: [registry] }).set(
    { version: VERSION, commit: COMMIT, node: process.versions.node },
    1,
  );
  const reloads = new Counter({ name: "pilox_mesh_config_reloads_total", help: "Configuration reloads, by result.", labelNames: ["result"], registers: [registry] });
  const federation: FederationMetrics = {
    requests: new Counter({ name: "pilox_mesh_federation_requests_total", help: "Federation relay requests, by direction, outcome and refusal reason.", labelNames: ["direction", "outcome", "reason"], registers: [registry] }),
    messages: new Counter({ name: "pilox_mesh_federation_messages_total", help: "Messages relayed between meshes.", labelNames: ["direction"], registers: [registry] }),
    queueDepth: new Gauge({ name: "pilox_mesh_federation_queue_messages", help: "Messages waiting in the outbound federation queues.", registers: [registry] }),
    peerUp: new Gauge({ name: "pilox_mesh_federation_peer_up", help: "1 while the peer's link works: its last relay delivery succeeded, or its WAN link is up with no error.", labelNames: ["peer", "transport"], registers: [registry] }),
    peerQueueMessages: new Gauge({ name: "pilox_mesh_federation_peer_queue_messages", help: "Messages waiting for the peer (relay queue or WAN queue and frames in flight).", labelNames: ["peer", "transport"], registers: [registry] }),
    peerQueueAge: new Gauge({ name: "pilox_mesh_federation_peer_queue_oldest_age_seconds", help: "How long the peer's queue has held messages without emptying (0 when empty).", labelNames: ["peer", "transport"], registers: [registry] }),
    manifestSyncs: new Counter({ name: "pilox_mesh_federation_manifest_syncs_total", help: "Signed manifest refreshes, by result (a failed one keeps the last good roster).", labelNames: ["result"], registers: [registry] }),
  };
  // Labelled counters start at zero for every known label, so rate() and alerts see them.
  for (const d of ["true", "false"]) {
    bus.published.inc({ durable: d }, 0);
    bus.delivered.inc({ durable: d }, 0);
  }
  for (const r of ["ok", "rejected"]) reloads.inc({ result: r }, 0);
  for (const r of ["ok", "failed"]) federation.manifestSyncs.inc({ result: r }, 0);
  for (const d of ["inbound", "outbound"]) federation.messages.inc({ direction: d }, 0);
  federation.requests.inc({ direction: "inbound", outcome: "accepted", reason: "" }, 0);
  for (const r of reasons.federationRefused ?? []) federation.requests.inc({ direction: "inbound", outcome: "refused", reason: r }, 0);

  // Process and runtime: CPU, memory, heap, event-loop lag, GC, open files.
  collectDefaultMetrics({ register: registry, prefix: "pilox_mesh_" });
  const http: HttpMetrics = {
    requests: new Counter({ name: "pilox_mesh_http_requests_total", help: "HTTP requests, by listener, route, method and status.", labelNames: ["listener", "route", "method", "status"], registers: [registry] }),
    duration: new Histogram({
      name: "pilox_mesh_http_request_duration_seconds",
      help: "HTTP request latency (to the response headers; SSE streams count until they open), by listener, route and method.",
      labelNames: ["listener", "route", "method"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
  };
  const backendUp = new Gauge({ name: "pilox_mesh_bus_backend_up", help: "1 while the bus backend (Redis) is connected, else 0.", labelNames: ["backend"], registers: [registry] });
  const tlsCertExpiry = new Gauge({ name: "pilox_mesh_tls_cert_expiry_timestamp_seconds", help: "When the public listener's TLS certificate expires (unix seconds); absent without TLS.", registers: [registry] });
  const lastOk = new Gauge({ name: "pilox_mesh_config_last_reload_success", help: "1 if the last configuration reload was applied, 0 if it was refused.", registers: [registry] });
  const lastAt = new Gauge({ name: "pilox_mesh_config_last_reload_timestamp_seconds", help: "Time of the last configuration reload attempt (unix seconds).", registers: [registry] });
  lastOk.set(1);
  const reloadState = (ok: boolean) => {
    lastOk.set(ok ? 1 : 0);
    lastAt.set(Date.now() / 1000);
  };
  const gateway: GatewayMetrics = {
    rateLimited: new Counter({ name: "pilox_mesh_gateway_rate_limited_total", help: "Gateway requests refused by the rate limit, by route.", labelNames: ["route"], registers: [registry] }),
    upstreamSeconds: new Histogram({ name: "pilox_mesh_gateway_upstream_seconds", help: "Time to the upstream's response head, by upstream origin.", labelNames: ["upstream"], buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], registers: [registry] }),
    upstreamFailures: new Counter({ name: "pilox_mesh_gateway_upstream_failures_total", help: "Upstream failures (timeout, unreachable, 5xx), by upstream origin and kind.", labelNames: ["upstream", "kind"], registers: [registry] }),
    breaker: new Gauge({ name: "pilox_mesh_gateway_breaker_state", help: "Circuit breaker per upstream: 0 closed, 1 half-open, 2 open.", labelNames: ["upstream"], registers: [registry] }),
  };
  const wan: WanMetrics = {
    published: new Counter({ name: "pilox_mesh_wan_published_total", help: "Messages sent to a WAN peer in acknowledged frames, by peer.", labelNames: ["peer"], registers: [registry] }),
    spooled: new Counter({ name: "pilox_mesh_wan_spooled_total", help: "Messages written to the on-disk WAN queue, by peer.", labelNames: ["peer"], registers: [registry] }),
    delivered: new Counter({ name: "pilox_mesh_wan_delivered_total", help: "Messages from WAN peers delivered to the local bus, by peer.", labelNames: ["peer"], registers: [registry] }),
    duplicates: new Counter({ name: "pilox_mesh_wan_duplicates_total", help: "Repeated frames caught, by layer (jetstream: the stream's dedupe window; receiver: the per-sender sequence memory).", labelNames: ["layer"], registers: [registry] }),
    rejected: new Counter({ name: "pilox_mesh_wan_rejected_total", help: "Frames or entries refused by the receiver, by reason.", labelNames: ["reason"], registers: [registry] }),
    dlq: new Counter({ name: "pilox_mesh_wan_dlq_total", help: "Frames or entries moved to the WAN dead-letter stream, by reason.", labelNames: ["reason"], registers: [registry] }),
    consumerPending: new Gauge({ name: "pilox_mesh_wan_consumer_pending", help: "Frames addressed to this site that its consumer has not yet taken.", registers: [registry] }),
    queueDepth: new Gauge({ name: "pilox_mesh_wan_queue_messages", help: "Messages waiting in the on-disk WAN queues.", registers: [registry] }),
    connected: new Gauge({ name: "pilox_mesh_wan_connected", help: "1 while connected to a NATS server (a series only where [wan] runs).", labelNames: ["stream"], registers: [registry] }),
  };
  for (const r of reasons.wanRefused ?? []) {
    wan.rejected.inc({ reason: r }, 0);
    wan.dlq.inc({ reason: r }, 0);
  }
  for (const l of reasons.wanDuplicateLayers ?? []) wan.duplicates.inc({ layer: l }, 0);
  const registryRole: RegistryMetrics = {
    quotaRefused: new Counter({ name: "pilox_mesh_registry_quota_refused_total", help: "Registry writes (POST, delete or sync merge) refused by a storage limit, by limit.", labelNames: ["limit"], registers: [registry] }),
    storeUp: new Gauge({ name: "pilox_mesh_registry_store_up", help: "1 while the registry's store (SQLite or PostgreSQL) answers.", labelNames: ["store"], registers: [registry] }),
  };
  for (const l of ["records", "bytes", "records_per_key", "bytes_per_key"]) registryRole.quotaRefused.inc({ limit: l }, 0);
  return { registry, registryRole, bus, federation, http, gateway, wan, reloads, backendUp, tlsCertExpiry, reloadState };
}
