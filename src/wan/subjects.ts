/**
 * Where frames go on NATS: `<prefix>.<dst>.<src>`, each id the 16-hex peer id of a normalised
 * origin (the one the relay's outbound queue uses). A site consumes `<prefix>.<own id>.*`.
 */
import { peerId } from "../federation/index.ts";

export function frameSubject(prefix: string, dstOrigin: string, srcOrigin: string): string {
  return `${prefix}.${peerId(dstOrigin)}.${peerId(srcOrigin)}`;
}

/** Everything addressed to `origin`. */
export function inboxFilter(prefix: string, origin: string): string {
  return `${prefix}.${peerId(origin)}.*`;
}

/** Where a site keeps what it refused: `<dlq prefix>.<own id>.<reason>`. */
export function dlqSubject(dlqPrefix: string, ourOrigin: string, reason: string): string {
  return `${dlqPrefix}.${peerId(ourOrigin)}.${reason.replace(/[^A-Za-z0-9_\-]/g, "_")}`;
}

/** The durable pull consumer of one site on the shared stream. */
export function consumerName(origin: string): string {
  return `pilox-mesh-${peerId(origin)}`;
}
