/** A site's short stable id, from its normalised origin: names queues, consumer groups and WAN subjects, and the discovery document carries it. */
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
