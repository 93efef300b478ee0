/** The trusted peers as the relay uses them, built from [[federation.peers]]. */
import type { KeyObject } from "node:crypto";
import type { Config } from "../config/index.ts";
import { publicKeyFromHex, thumbprint } from "../identity/index.ts";
import type { ManifestPeer } from "./manifest.ts";
import { HS256_ISSUER, type PeerKeys } from "./token.ts";

export interface Peer extends PeerKeys {
  /** Base URL of the peer's public listener (default: its origin). */
  url: string;
  keys: { kid: string; publicKey: KeyObject; publicKeyHex: string }[];
  accept: ReadonlySet<string>;
  forward: ReadonlySet<string>;
  ratePerSecond: number;
  /** How messages travel to and from it: the HTTPS relay, or the WAN (NATS JetStream). */
  transport: "relay" | "wan";
}

/**
 * Peers from the signed manifest get the manifest's default channels and rate; a static
 * [[federation.peers]] entry for the same origin overrides them.
 */
export function peersOf(c: Config, fromManifest: readonly ManifestPeer[] = []): Map<string, Peer> {
  const m = new Map<string, Peer>();
  const d = c.federation.manifest;
  for (const p of fromManifest) {
    if (!p.ed25519PublicKeyHex || p.origin === c.instance.origin) continue; // no key: nothing to verify with
    const h = p.ed25519PublicKeyHex;
    const prev = m.get(p.origin);
    const key = { kid: thumbprint(h), publicKey: publicKeyFromHex(h), publicKeyHex: h };
    if (prev) prev.keys.push(key);
    else m.set(p.origin, { origin: p.origin, url: p.origin, keys: [key], accept: new Set(d.accept_channels), forward: new Set(d.forward_channels), ratePerSecond: d.rate_per_second, transport: d.transport });
  }
  if (c.federation.hs256.enabled) {
    // The shared-secret mode has no identity: one pseudo-peer, with its own channel list.
    m.set(HS256_ISSUER, { origin: HS256_ISSUER, url: "", keys: [], accept: new Set(c.federation.hs256.accept_channels), forward: new Set(), ratePerSecond: d.rate_per_second, transport: "relay" });
  }
  for (const p of c.federation.peers) {
    const origin = new URL(p.origin).origin;
    m.set(origin, {
      origin,
      url: (p.url ?? origin).replace(/\/+$/, ""),
      keys: p.public_keys.map((h) => ({ kid: thumbprint(h.toLowerCase()), publicKey: publicKeyFromHex(h), publicKeyHex: h.toLowerCase() })),
      accept: new Set(p.accept_channels),
      forward: new Set(p.forward_channels),
      ratePerSecond: p.rate_per_second,
      transport: p.transport,
    });
  }
  return m;
}
