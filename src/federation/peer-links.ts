/**
 * One outbound link per trusted peer, for one transport (the HTTPS relay's forwarders, the
 * WAN's senders), kept in step with the peer set by one rule: a peer gone, moved to another
 * transport or with nothing left to forward loses its link (its queue stays on disk, sent if
 * it comes back); a changed peer updates its link in place; a new one gets a link. A peer gone
 * or with nothing to forward also loses its consumer groups, which would otherwise keep a
 * growing lag in Redis for nobody; a peer moved to the other transport keeps them, since the
 * other transport reads the same groups, pending entries included.
 */
import type { MeshBus } from "../bus/index.ts";
import type { Logger } from "../log/index.ts";
import { forwarderGroup } from "./peer-id.ts";
import type { Peer } from "./peers.ts";

/** What carries one peer's outbound messages. */
export interface PeerLink {
  readonly peer: Peer;
  start(): Promise<void>;
  update(peer: Peer): Promise<void>;
  close(): Promise<void>;
}

export interface PeerLinksOptions<L extends PeerLink> {
  transport: Peer["transport"];
  /** The link for a peer of this transport with channels to forward. */
  open: (peer: Peer) => L;
  /** Called for every peer of this transport, with or without a link (e.g. zeroed series). */
  onPeer?: (peer: Peer) => void;
  bus: () => MeshBus;
  log: Logger;
}

export class PeerLinks<L extends PeerLink> {
  readonly #links = new Map<string, L>();

  constructor(private readonly o: PeerLinksOptions<L>) {}

  get(origin: string): L | undefined {
    return this.#links.get(origin);
  }

  values(): IterableIterator<L> {
    return this.#links.values();
  }

  entries(): IterableIterator<[string, L]> {
    return this.#links.entries();
  }

  /** Brings the links in line with `peers` (at start, after a reload or a manifest refresh). */
  async apply(peers: ReadonlyMap<string, Peer>): Promise<void> {
    for (const [origin, link] of this.#links) {
      const p = peers.get(origin);
      if (p && this.#wanted(p)) {
        await link.update(p);
        continue;
      }
      this.#links.delete(origin);
      await link.close();
      if (!p || p.forward.size === 0) await this.#dropGroups(origin, [...link.peer.forward]);
    }
    for (const p of peers.values()) {
      if (p.transport !== this.o.transport) continue;
      this.o.onPeer?.(p);
      if (this.#wanted(p) && !this.#links.has(p.origin)) {
        const link = this.o.open(p);
        this.#links.set(p.origin, link);
        await link.start();
      }
    }
  }

  async closeAll(): Promise<void> {
    const all = [...this.#links.values()];
    this.#links.clear();
    await Promise.all(all.map((l) => l.close()));
  }

  #wanted(p: Peer): boolean {
    return p.transport === this.o.transport && p.forward.size > 0;
  }

  async #dropGroups(origin: string, channels: string[]): Promise<void> {
    const bus = this.o.bus();
    const group = forwarderGroup(origin);
    for (const ch of channels.filter((c) => bus.isDurable(c))) {
      try {
        await bus.backend.dropGroup(ch, group);
        this.o.log.info("removed the consumer group of a removed peer", { peer: origin, channel: ch, group });
      } catch (err) {
        this.o.log.warn("cannot remove a removed peer's consumer group", { peer: origin, channel: ch, group, error: (err as Error).message });
      }
    }
  }
}
