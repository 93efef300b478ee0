/**
 * Our extension (docs/wire-formats.md): a key id, the send time and the channel, with one MAC
 * that covers what meshSig covers (the v1 signed string), meshSig itself and the extension. A
 * stock Pilox peer ignores the field and checks meshSig; our receivers check `sig` alone.
 */
import { quoted } from "../../canon/index.ts";
import { hmacHex } from "./hmac.ts";

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
  /** W3C trace context of the publish that made it (src/bus/trace.ts). */
  traceparent?: string;
  tracestate?: string;
  sig: string;
}

export type UnsignedExt = Omit<MeshExt, "sig">;

/** canon({v, kid, ts, ch, origin, traceparent, tracestate}) written out by hand: it runs for every message. */
export function canonicalExt(ext: UnsignedExt): string {
  const origin = ext.origin === undefined ? "" : `"origin":${JSON.stringify(ext.origin)},`;
  const tp = ext.traceparent === undefined ? "" : `"traceparent":${quoted(ext.traceparent)},`;
  const tst = ext.tracestate === undefined ? "" : `"tracestate":${quoted(ext.tracestate)},`;
  return `{"ch":${quoted(ext.ch)},"kid":${quoted(ext.kid)},${origin}${tp}${tst}"ts":${ext.ts},"v":${ext.v}}`;
}

/**
 * The wire text of a signed extension: its canonical form with `sig` appended last. It equals
 * JSON.stringify of the object sealExt returns, so receivers can take the canonical text
 * back out of what they received.
 */
function extWireText(canonExt: string, sig: string): string {
  return `${canonExt.slice(0, -1)},"sig":"${sig}"}`;
}

/**
 * sig = HMAC(key, signed + "\n" + EXT_SIG_VERSION + "\n" + meshSig + "\n" + canonExt), where
 * `signed` is the v1 signed string. The input always ends with canonExt (`…"v":1}`)
 * and a v1 signed string always ends with `"sigVersion":"pilox-mesh-hmac-v1"}`, so a meshSig
 * can never stand in for a sig or the other way round.
 */
export function extMac(secret: Buffer, signed: string, meshSig: string, canonExt: string): string {
  return hmacHex(secret, `${signed}\n${EXT_SIG_VERSION}\n${meshSig}\n${canonExt}`);
}

/** Signs an extension; the object's keys are in wire order (canonical, then sig). */
export function sealExt(secret: Buffer, signed: string, meshSig: string, ext: UnsignedExt, canon: string = canonicalExt(ext)): { ext: MeshExt; text: string } {
  const sig = extMac(secret, signed, meshSig, canon);
  // Keys in canonical order, so that JSON.stringify of it is the wire text.
  const out = { ch: ext.ch, kid: ext.kid } as MeshExt;
  if (ext.origin !== undefined) out.origin = ext.origin;
  if (ext.traceparent !== undefined) out.traceparent = ext.traceparent;
  if (ext.tracestate !== undefined) out.tracestate = ext.tracestate;
  out.ts = ext.ts;
  out.v = ext.v;
  out.sig = sig;
  return { ext: out, text: extWireText(canon, sig) };
}
