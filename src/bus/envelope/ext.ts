/**
 * Our extension (docs/wire-formats.md): a key id, the send time and the channel, authenticated
 * by a second, small HMAC chained to meshSig, so a stock Pilox peer ignores it and still
 * verifies meshSig, while we can check freshness, rotation and the intended channel.
 */
import { hmacHex } from "./v1.ts";

export const EXT_SIG_VERSION = "pilox-mesh-ext-v1";

export interface MeshExt {
  v: 1;
  /** Bus key id that made meshSig and sig. */
  kid: string;
  /** Seal time, milliseconds since the Unix epoch. */
  ts: number;
  /** The channel the producer sealed for. */
  ch: string;
  /** Origin of a message relayed from a federated mesh (set by the relay). */
  origin?: string;
  sig: string;
}

export type UnsignedExt = Omit<MeshExt, "sig">;

/** canon({v, kid, ts, ch, origin}) written out by hand: it runs twice per message. */
export function canonicalExt(ext: UnsignedExt): string {
  const origin = ext.origin === undefined ? "" : `"origin":${JSON.stringify(ext.origin)},`;
  return `{"ch":${JSON.stringify(ext.ch)},"kid":${JSON.stringify(ext.kid)},${origin}"ts":${JSON.stringify(ext.ts)},"v":${JSON.stringify(ext.v)}}`;
}

export function extMac(secret: Buffer, meshSig: string, ext: UnsignedExt): string {
  return hmacHex(secret, `${EXT_SIG_VERSION}\n${meshSig}\n${canonicalExt(ext)}`);
}
