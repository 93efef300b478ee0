/** The consumer group a peer's feed reads durable channels with (relay or WAN alike); the id is discovery's. */
import { peerId } from "../discovery/index.ts";

export { peerId };

export function forwarderGroup(origin: string): string {
  return `federation-${peerId(origin)}`;
}
