/** A short stable id of a peer's normalised origin: names its queues, consumer groups and WAN subjects. */
import { createHash } from "node:crypto";

export function peerId(origin: string): string {
  return createHash("sha256").update(origin).digest("hex").slice(0, 16);
}

/** The consumer group a peer's feed reads durable channels with (relay or WAN alike). */
export function forwarderGroup(origin: string): string {
  return `federation-${peerId(origin)}`;
}
