/** A short stable id of a peer's normalised origin: names its queues, consumer groups and WAN subjects. */
import { createHash } from "node:crypto";

/** Ids already computed: the WAN asks for them per frame, and the origins are the configured few. */
const known = new Map<string, string>();

export function peerId(origin: string): string {
  let id = known.get(origin);
  if (id === undefined) {
    id = createHash("sha256").update(origin).digest("hex").slice(0, 16);
    if (known.size >= 4096) known.clear(); // bounded, whatever asks
    known.set(origin, id);
  }
  return id;
}

/** The consumer group a peer's feed reads durable channels with (relay or WAN alike). */
export function forwarderGroup(origin: string): string {
  return `federation-${peerId(origin)}`;
}
