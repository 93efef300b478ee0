/**
 * What a peer is sent, whatever the transport (relay or WAN): its forward_channels, read in its
 * consumer group, into its on-disk queue. What came from a peer is never forwarded again (no
 * loops between meshes); our seals are left off (the receiver seals again with its own key).
 */
import type { Closer, Delivery, JsonObject, MeshBus } from "../bus/index.ts";
import { SpoolFullError, type Spool } from "../bus/spool.ts";
import { forwarderGroup } from "./peer-id.ts";
import type { Peer } from "./peers.ts";

export interface FeedOptions {
  /** Keep the message's trace context (a transport that carries it). */
  trace: boolean;
  /** The queue is full: the throw that follows leaves a durable entry unacknowledged, retried later. */
  onFull: () => void;
  onQueued: () => void;
}

export function subscribeForward(bus: MeshBus, peer: Peer, queue: Spool, o: FeedOptions): Promise<Closer[]> {
  const group = forwarderGroup(peer.origin);
  const take = (d: Delivery) => {
    if (d.ext?.origin) return;
    const { meshSig: _s, meshExt: _e, ...message } = d.message;
    const trace = o.trace && d.ext?.traceparent ? { traceparent: d.ext.traceparent, ...(d.ext.tracestate ? { tracestate: d.ext.tracestate } : {}) } : undefined;
    try {
      queue.append({ channel: d.channel, message: message as JsonObject, ...(trace ? { trace } : {}) });
    } catch (err) {
      if (err instanceof SpoolFullError) o.onFull();
      throw err;
    }
    o.onQueued();
  };
  return Promise.all([...peer.forward].map((ch) => bus.subscribe(ch, take, { group })));
}

/** True when a changed peer entry forwards other channels (its subscriptions must follow). */
export function forwardChanged(a: Peer, b: Peer): boolean {
  return [...a.forward].sort().join() !== [...b.forward].sort().join();
}
