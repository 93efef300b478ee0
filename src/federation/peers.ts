/** The trusted peers as the relay uses them, built from [[federation.peers]]. */
import type { KeyObject } from "node:crypto";
import type { Config } from "../config/index.ts";
import { publicKeyFromHex, thumbprint } from "../identity/index.ts";
import type { PeerKeys } from "./token.ts";

export interface Peer extends PeerKeys {
  /** Base URL of the peer's public listener (default: its origin). */
  url: string;
  keys: { kid: string; publicKey: KeyObject; publicKeyHex: string }[];
  accept: ReadonlySet<string>;
  forward: ReadonlySet<string>;
  ratePerSecond: number;
}

export function peersOf(c: Config): Map<string, Peer> {
  const m = new Map<string, Peer>();
  for (const p of c.federation.peers) {
    const origin = new URL(p.origin).origin;
    m.set(origin, {
      origin,
      url: (p.url ?? origin).replace(/\/+$/, ""),
      keys: p.public_keys.map((h) => ({ kid: thumbprint(h.toLowerCase()), publicKey: publicKeyFromHex(h), publicKeyHex: h.toLowerCase() })),
      accept: new Set(p.accept_channels),
      forward: new Set(p.forward_channels),
      ratePerSecond: p.rate_per_second,
    });
  }
  return m;
}
