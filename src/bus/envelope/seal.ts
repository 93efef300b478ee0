/** Where a bus message is sealed: meshSig (Pilox v1) plus, unless asked not to, our extension. */
import { randomUUID } from "node:crypto";
import { canonicalChannel, defaultProducer, isPiloxChannel, meshMetaProblem, piloxCoreProblem } from "../channels.ts";
import type { BusKey } from "../keyring.ts";
import { extMac, type MeshExt } from "./ext.ts";
import { coreOf, EXT_FIELD, macV1, type JsonObject } from "./v1.ts";

export class SealError extends Error {
  override name = "SealError";
}

export interface SealOptions {
  /** Emit the plain v1 form, byte-compatible with a stock Pilox producer. */
  v1Only?: boolean;
  /** Seal time in ms (tests, spool flush keeps the event id but re-stamps the time). */
  now?: number;
  origin?: string;
}

/**
 * Fills meshMeta (v, producer, eventId) when absent, then signs. The channel must be the
 * wire name it is published on. Returns a new object; the input is not modified.
 */
export function sealMessage(channel: string, message: JsonObject, key: BusKey, opts: SealOptions = {}): JsonObject {
  if (message === null || typeof message !== "object" || Array.isArray(message)) {
    throw new SealError("a bus message is a JSON object");
  }
  const given = message["meshMeta"];
  const meshMeta =
    given === undefined
      ? { v: 1, producer: defaultProducer(channel, "pilox-mesh"), eventId: randomUUID() }
      : (given as JsonObject);
  const pilox = isPiloxChannel(channel);
  const metaProblem = meshMetaProblem(meshMeta, pilox);
  if (metaProblem) throw new SealError(metaProblem);
  const core = coreOf(message);
  if (pilox) {
    const p = piloxCoreProblem(channel, core);
    if (p) throw new SealError(`${canonicalChannel(channel)}: ${p}`);
  }
  const meshSig = macV1(key.secret, channel, core, meshMeta);
  const out: JsonObject = { ...core, meshMeta, meshSig };
  if (!opts.v1Only) {
    const ext: Omit<MeshExt, "sig"> = { v: 1, kid: key.id, ts: opts.now ?? Date.now(), ch: channel };
    if (opts.origin !== undefined) ext.origin = opts.origin;
    out[EXT_FIELD] = { ...ext, sig: extMac(key.secret, meshSig, ext) };
  }
  return out;
}
