/** Where a bus message is sealed: meshSig (Pilox v1) plus, unless asked not to, our extension. */
import { randomUUID } from "node:crypto";
import { canonicalize } from "../../canon/index.ts";
import { canonicalChannel, defaultProducer, isPiloxChannel, meshMetaProblem, piloxCoreProblem } from "../channels.ts";
import type { BusKey } from "../keyring.ts";
import { extMac, type MeshExt } from "./ext.ts";
import { coreOf, EXT_FIELD, hmacHex, signedStringFromCanon, type JsonObject } from "./v1.ts";

export class SealError extends Error {
  override name = "SealError";
}

export interface SealOptions {
  /** Emit the plain v1 form, byte-compatible with a stock Pilox producer. */
  v1Only?: boolean;
  /** Seal time in ms (tests; the spool keeps the event id but re-stamps the time). */
  now?: number;
  origin?: string;
}

interface Prepared {
  core: JsonObject;
  meshMeta: JsonObject;
  eventId: string;
  canonCore: string;
  canonMeta: string;
  meshSig: string;
  ext?: MeshExt;
}

/** Validates, fills meshMeta when absent, and computes both MACs. */
function prepare(channel: string, message: JsonObject, key: BusKey, opts: SealOptions): Prepared {
  if (message === null || typeof message !== "object" || Array.isArray(message)) {
    throw new SealError("a bus message is a JSON object");
  }
  const given = message["meshMeta"];
  const meshMeta = (given === undefined ? { v: 1, producer: defaultProducer(channel, "pilox-mesh"), eventId: randomUUID() } : given) as JsonObject;
  const pilox = isPiloxChannel(channel);
  const metaProblem = meshMetaProblem(meshMeta, pilox);
  if (metaProblem) throw new SealError(metaProblem);
  const core = coreOf(message);
  if (pilox) {
    const p = piloxCoreProblem(channel, core);
    if (p) throw new SealError(`${canonicalChannel(channel)}: ${p}`);
  }
  const canonCore = canonicalize(core);
  const canonMeta = canonicalize(meshMeta);
  const meshSig = hmacHex(key.secret, signedStringFromCanon(channel, canonCore, canonMeta));
  const out: Prepared = { core, meshMeta, eventId: meshMeta["eventId"] as string, canonCore, canonMeta, meshSig };
  if (!opts.v1Only) {
    const ext: Omit<MeshExt, "sig"> = { v: 1, kid: key.id, ts: opts.now ?? Date.now(), ch: channel };
    if (opts.origin !== undefined) ext.origin = opts.origin;
    out.ext = { ...ext, sig: extMac(key.secret, meshSig, ext) };
  }
  return out;
}

/**
 * Seals into a new object: the message's own fields in their order, then meshMeta, meshSig
 * and meshExt (what `bus seal` prints, byte-exact with the spec vector in v1 form).
 */
export function sealMessage(channel: string, message: JsonObject, key: BusKey, opts: SealOptions = {}): JsonObject {
  const p = prepare(channel, message, key, opts);
  const out: JsonObject = { ...p.core, meshMeta: p.meshMeta, meshSig: p.meshSig };
  if (p.ext) out[EXT_FIELD] = p.ext;
  return out;
}

/**
 * Seals straight to the wire string, reusing the canonical text of the message (the hot
 * path of publish: one canonicalisation, no second JSON.stringify of the body).
 */
export function sealToWire(channel: string, message: JsonObject, key: BusKey, opts: SealOptions = {}): { wire: string; eventId: string } {
  const p = prepare(channel, message, key, opts);
  let wire = p.canonCore.length > 2 ? p.canonCore.slice(0, -1) + "," : "{";
  wire += `"meshMeta":${p.canonMeta},"meshSig":"${p.meshSig}"`;
  if (p.ext) wire += `,"${EXT_FIELD}":${JSON.stringify(p.ext)}`;
  return { wire: wire + "}", eventId: p.eventId };
}
