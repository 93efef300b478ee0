/** The appliance's Prometheus metrics (prom-client), one registry per appliance instance. */
import { Counter, Gauge, Registry } from "prom-client";
import { REJECT_REASONS } from "../bus/envelope/verify.ts";
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
}

export interface Metrics {
  registry: Registry;
  bus: BusMetrics;
  federation: FederationMetrics;
  reloads: Counter<"result">;
}

export function createMetrics(): Metrics {
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
  for (const r of REJECT_REASONS) bus.rejected.inc({ reason: r }, 0);
  new Gauge({ name: "pilox_mesh_build_info", help: "Version, commit and runtime of this build (value 1).", labelNames: ["version", "commit", "node"], registers: [registry] }).set(
    { version: VERSION, commit: COMMIT, node: process.versions.node },
    1,
  );
  const reloads = new Counter({ name: "pilox_mesh_config_reloads_total", help: "Configuration reloads, by result.", labelNames: ["result"], registers: [registry] });
  const federation: FederationMetrics = {
    requests: new Counter({ name: "pilox_mesh_federation_requests_total", help: "Federation relay requests, by direction, outcome and refusal reason.", labelNames: ["direction", "outcome", "reason"], registers: [registry] }),
    messages: new Counter({ name: "pilox_mesh_federation_messages_total", help: "Messages relayed between meshes.", labelNames: ["direction"], registers: [registry] }),
    queueDepth: new Gauge({ name: "pilox_mesh_federation_queue_messages", help: "Messages waiting in the outbound federation queues.", registers: [registry] }),
    manifestSyncs: new Counter({ name: "pilox_mesh_federation_manifest_syncs_total", help: "Signed manifest refreshes, by result (a failed one keeps the last good roster).", labelNames: ["result"], registers: [registry] }),
  };
  return { registry, bus, federation, reloads };
}
