/** Where a bus message is sealed: meshSig (Pilox v1) plus, unless asked not to, our extension. */
import { randomEventId } from "./event-id.ts";
import { canonicalize, canonicalizeWithout } from "../../canon/index.ts";
import { JsonDepthError } from "../../json/index.ts";
import { canonicalChannel, defaultProducer, isPiloxChannel, meshMetaProblem } from "../channels.ts";
import { piloxEmitProblem } from "../pilox-schema.ts";
import type { BusKey } from "../keyring.ts";
import { canonicalExt, sealExt, type MeshExt, type UnsignedExt } from "./ext.ts";
import type { TraceContext } from "../trace.ts";
import { coreOf, EXT_FIELD, hmacHex, signedStringFromCanon, type JsonObject } from "./v1.ts";

export class SealError extends Error {
  override name = "SealError";
}

/** The sealed message would be larger than receivers accept (bus.max_message_bytes). */
export class MessageTooLargeError extends SealError {
  override name = "MessageTooLargeError";
  constructor(
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(`the sealed message is ${bytes} bytes; bus.max_message_bytes is ${limit}`);
  }
}

export interface SealOptions {
  /** Emit the plain v1 form, byte-compatible with a stock Pilox producer. */
  v1Only?: boolean;
  /** Seal time in ms (tests; the spool keeps the event id but re-stamps the time). */
  now?: number;
  origin?: string;
  /** W3C trace context carried in meshExt (dropped with v1Only: the plain form has no place for it). */
  trace?: TraceContext;
  /** meshMeta.producer when the message has no meshMeta and one is generated. */
  producer?: string;
}

/** A message validated and put in canonical form, its MACs not yet computed (see `frame`). */
export interface Framed {
  channel: string;
  /** The message sealed (a v1 message on an operator channel may have gained a timestamp). */
  message: JsonObject;
  meshMeta: JsonObject;
  eventId: string;
  canonCore: string;
  canonMeta: string;
  /** The v1 signed string (wire-v1 §1): what meshSig covers. */
  signed: string;
  /** Our extension without its MAC, and its canonical text (absent in the plain v1 form). */
  ext?: UnsignedExt;
  canonExt?: string;
}

export interface Prepared extends Framed {
  meshSig: string;
  /** The extension with its MAC. */
  signedExt?: MeshExt;
  /** The extension as written on the wire (JSON.stringify(ext), without a second stringify). */
  extText?: string;
}

/** The top-level fields that are not part of `core`. */
const NOT_CORE = new Set(["meshMeta", "meshSig", EXT_FIELD]);

/**
 * Validates, fills meshMeta when absent and canonicalises: everything sealing does except the
 * two MACs, so an in-process message can be checked at publish and signed only if something
 * needs its wire form (see MeshBus.publish).
 */
export function frame(channel: string, message: JsonObject, keyId: string, opts: SealOptions): Framed {
  if (message === null || typeof message !== "object" || Array.isArray(message)) {
    throw new SealError("a bus message is a JSON object");
  }
  try {
    return frameObject(channel, message, keyId, opts);
  } catch (err) {
    if (err instanceof JsonDepthError) throw new SealError(`the message is ${err.message}`);
    throw err;
  }
}

function frameObject(channel: string, message: JsonObject, keyId: string, opts: SealOptions): Framed {
  const given = message["meshMeta"];
  const pilox = isPiloxChannel(channel);
  let meshMeta: JsonObject;
  let canonMeta: string;
  if (given === undefined) {
    // Generated here, so valid by construction and its canonical text is known: the hot path.
    const producer = defaultProducer(channel, opts.producer ?? "pilox-mesh");
    if (producer.length === 0 || producer.length > 128) throw new SealError("meshMeta.producer must be 1 to 128 characters");
    const eventId = randomEventId();
    meshMeta = { v: 1, producer, eventId };
    canonMeta = `{"eventId":"${eventId}","producer":${JSON.stringify(producer)},"v":1}`;
  } else {
    const metaProblem = meshMetaProblem(given, pilox);
    if (metaProblem) throw new SealError(metaProblem);
    meshMeta = given as JsonObject;
    canonMeta = canonicalize(meshMeta);
  }
  if (pilox) {
    const p = piloxEmitProblem(channel, coreOf(message), meshMeta);
    if (p) throw new SealError(`${canonicalChannel(channel)}: ${p}`);
  } else if (opts.v1Only && message["timestamp"] === undefined) {
    // Receivers bound how long a v1 message (no extension, so no send time of ours) can be
    // replayed by its `timestamp`, as every Pilox event carries one: give it one.
    message = { ...message, timestamp: new Date(opts.now ?? Date.now()).toISOString() };
  }
  const canonCore = canonicalizeWithout(message, NOT_CORE);
  const out: Framed = { channel, message, meshMeta, eventId: meshMeta["eventId"] as string, canonCore, canonMeta, signed: signedStringFromCanon(channel, canonCore, canonMeta) };
  if (!opts.v1Only) {
    const ext: UnsignedExt = { v: 1, kid: keyId, ts: opts.now ?? Date.now(), ch: channel };
    if (opts.origin !== undefined) ext.origin = opts.origin;
    if (opts.trace) {
      ext.traceparent = opts.trace.traceparent;
      if (opts.trace.tracestate !== undefined) ext.tracestate = opts.trace.tracestate;
    }
    out.ext = ext;
    out.canonExt = canonicalExt(ext);
  }
  return out;
}

/** Computes the MACs of a framed message with the key it was framed for. */
export function sign(f: Framed, key: BusKey): Prepared {
  const meshSig = hmacHex(key.secret, f.signed);
  if (!f.ext) return { ...f, meshSig };
  const sealed = sealExt(key.secret, f.signed, meshSig, f.ext, f.canonExt);
  return { ...f, meshSig, signedExt: sealed.ext, extText: sealed.text };
}

/** Validates, fills meshMeta when absent, and computes both MACs. */
function prepare(channel: string, message: JsonObject, key: BusKey, opts: SealOptions): Prepared {
  return sign(frame(channel, message, key.id, opts), key);
}

/** meshSig and the extension's sig: 64 hex characters each. */
const MAC_CHARS = 64;

/**
 * The length in UTF-16 units of the wire string a framed message seals to (wireOf), known
 * before signing: the MACs have a fixed size.
 */
export function wireLength(f: Framed): number {
  // {core…,"meshMeta":M,"meshSig":"S"[,"meshExt":{…ext…,"sig":"X"}]}
  let n = (f.canonCore.length > 2 ? f.canonCore.length : 1) + 11 + f.canonMeta.length + 12 + MAC_CHARS + 1;
  if (f.canonExt !== undefined) n += 11 + f.canonExt.length + 8 + MAC_CHARS + 1;
  return n + 1;
}

/** Refuses a wire string over `max` bytes: what every receiver would refuse (bus.max_message_bytes). */
export function checkSize(length: number, bytes: () => number, max: number): void {
  // Byte length is at least string length; only measure exactly when near the bound.
  if (length > max || (length * 3 > max && bytes() > max)) throw new MessageTooLargeError(bytes(), max);
}

/**
 * Seals into a new object: the message's own fields in their order, then meshMeta, meshSig
 * and meshExt (what `bus seal` prints, byte-exact with the spec vector in v1 form).
 */
export function sealMessage(channel: string, message: JsonObject, key: BusKey, opts: SealOptions = {}): JsonObject {
  const p = prepare(channel, message, key, opts);
  const out: JsonObject = { ...coreOf(p.message), meshMeta: p.meshMeta, meshSig: p.meshSig };
  if (p.signedExt) out[EXT_FIELD] = p.signedExt;
  return out;
}

/**
 * Seals straight to the wire string, reusing the canonical text of the message (the hot
 * path of publish: one canonicalisation, no second JSON.stringify of the body). Returns the
 * meshMeta used, so a caller that keeps the message (the spool) keeps its event id.
 */
export function sealToWire(
  channel: string,
  message: JsonObject,
  key: BusKey,
  opts: SealOptions = {},
): { wire: string; eventId: string; meshMeta: JsonObject } {
  const p = prepare(channel, message, key, opts);
  return { wire: wireOf(p), eventId: p.eventId, meshMeta: p.meshMeta };
}

/** The wire string of a signed message: the canonical body, then meshMeta, meshSig and meshExt. */
export function wireOf(p: Prepared): string {
  let wire = p.canonCore.length > 2 ? p.canonCore.slice(0, -1) + "," : "{";
  wire += `"meshMeta":${p.canonMeta},"meshSig":"${p.meshSig}"`;
  if (p.extText) wire += `,"${EXT_FIELD}":${p.extText}`;
  return wire + "}";
}
