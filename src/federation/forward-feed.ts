/**
 * What a peer is sent, whatever the transport (relay or WAN): its forward_channels, read in its
 * consumer group, into its on-disk queue. What came from a peer is never forwarded again (no
 * loops between meshes); our seals are left off (the receiver seals again with its own key).
 */
import type { Closer, Delivery, MeshBus } from "../bus/index.ts";
import { SpoolFullError, type Spool } from "../bus/spool.ts";
import { forwarderGroup } from "./peer-id.ts";
import type { Peer } from "./peers.ts";

export interface FeedOptions {
  /** Keep the message's trace context (a transport that carries it). */
  trace: boolean;
  /** The queue is full: the throw that follows leaves a durable entry unacknowledged, retried later. */
  onFull: () => void;
  /** `n` messages entered the queue (on disk). */
  onQueued: (n: number) => void;
  /** Writing best-effort messages to the queue failed (disk): they are lost, as pub/sub may lose them. */
  onWriteFailed: (err: Error, messages: number) => void;
}

export function subscribeForward(bus: MeshBus, peer: Peer, queue: Spool, o: FeedOptions): Promise<Closer[]> {
  const group = forwarderGroup(peer.origin);
  return Promise.all([...peer.forward].map((ch) => feed(bus, ch, group, queue, o)));
}

/** One forwarded channel: its consumer's entries are written to the queue a batch at a time. */
function feed(bus: MeshBus, channel: string, group: string, queue: Spool, o: FeedOptions): Promise<Closer> {
  const batch = queue.batch();
  // Best-effort deliveries of one tick share one write too (they arrive in bursts: a tap hands
  // on what one read brought): written at the end of the tick, as pub/sub promises no more.
  const loose = queue.batch();
  let flushing = false;
  const flushLoose = () => {
    flushing = false;
    const n = loose.lines.length;
    try {
      queue.flush(loose);
    } catch (err) {
      return o.onWriteFailed(err as Error, n);
    }
    if (n > 0) o.onQueued(n);
  };
  const take = (d: Delivery) => {
    if (d.origin) return;
    // The body, not the sealed message: an in-process one is then never signed here.
    const message = d.body;
    const trace = o.trace ? d.trace : undefined;
    // A durable entry (it has a log id) is written with the rest of its batch when the
    // consumer settles, before the batch is acknowledged.
    const durable = d.id !== undefined;
    try {
      queue.append({ channel: d.channel, message, ...(trace ? { trace } : {}) }, durable ? batch : loose);
    } catch (err) {
      if (err instanceof SpoolFullError) o.onFull();
      throw err;
    }
    if (!durable && !flushing) {
      flushing = true;
      queueMicrotask(flushLoose);
    }
  };
  const settle = () => {
    const n = queue.flush(batch);
    if (n > 0) o.onQueued(n);
  };
  return bus.subscribe(channel, take, { group, settle });
}

/** True when a changed peer entry forwards other channels (its subscriptions must follow). */
export function forwardChanged(a: Peer, b: Peer): boolean {
  return [...a.forward].sort().join() !== [...b.forward].sort().join();
}
