/**
 * Where the frame stream lives on a JetStream cluster: its leader and each replica's state, as
 * the server reports them (for `status`: on a three-node cluster, which node leads and whether
 * the others keep up).
 */
import type { JetStreamManager } from "@nats-io/jetstream";

export interface StreamPlacement {
  /** The JetStream cluster's name; null on a single server. */
  cluster: string | null;
  leader: string | null;
  /** Replicas the stream is configured with. */
  configured: number;
  /** The other replicas (the leader is not listed): whether each is current, and how far behind. */
  replicas: { name: string; current: boolean; offline: boolean; lag: number; activeMs: number }[];
}

export async function readPlacement(jsm: JetStreamManager, stream: string): Promise<StreamPlacement> {
  const info = await jsm.streams.info(stream);
  const c = info.cluster;
  return {
    cluster: c?.name ?? null,
    leader: c?.leader ?? null,
    configured: info.config.num_replicas || 1,
    replicas: (c?.replicas ?? []).map((r) => ({
      name: r.name,
      current: r.current,
      offline: r.offline === true,
      lag: Number(r.lag ?? 0),
      // nanoseconds since the replica was last heard from
      activeMs: Math.round(Number(r.active ?? 0) / 1e6),
    })),
  };
}

/** One line for `status`: "cluster C, leader L, replicas: n2 current, n3 lag 12". */
export function placementLine(p: StreamPlacement): string {
  const where = p.cluster ? `cluster ${p.cluster}, leader ${p.leader ?? "none (electing)"}` : "single server";
  const reps = p.replicas.map((r) => `${r.name} ${r.offline ? "OFFLINE" : r.current ? "current" : `behind by ${r.lag}`}`).join(", ");
  return `${where}; ${p.configured} replica(s)${reps ? `: ${reps}` : ""}`;
}
