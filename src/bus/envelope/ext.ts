/**
 * Our extension (docs/wire-formats.md): a key id, the send time and the channel, authenticated
 * by a second, small HMAC chained to meshSig, so a stock Pilox peer ignores it and still
 * verifies meshSig, while we can check freshness, rotation and the intended channel.
 */
import { createHmac } from "node:crypto";
import { canonicalize } from "../../canon/index.ts";

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

export function extMac(secret: Buffer, meshSig: string, ext: UnsignedExt): string {
  const { v, kid, ts, ch, origin } = ext;
  return createHmac("sha256", secret)
    .update(`${EXT_SIG_VERSION}\n${meshSig}\n${canonicalize({ v, kid, ts, ch, origin })}`)
    .digest("hex");
}
