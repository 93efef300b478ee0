/**
 * Channel names: the two Pilox channels (with their legacy hive aliases) carry a fixed schema
 * that the reference enforces before sealing; every other operator-named channel carries any
 * JSON object in the same envelope.
 */
import * as v from "valibot";
import { jsonObject, looseObject, strictObject } from "../schema/index.ts";

export const PILOX_AGENT_STATUS = "pilox:agent:status";
export const PILOX_SYSTEM_EVENTS = "pilox:system:events";

// A Map, not an object literal: a channel may be called "constructor" or "__proto__".
const ALIASES = new Map([
  ["hive:agent:status", PILOX_AGENT_STATUS],
  ["hive:system:events", PILOX_SYSTEM_EVENTS],
]);

/** The name we publish on and report: a hive alias maps to its pilox name. */
export function canonicalChannel(name: string): string {
  return ALIASES.get(name) ?? name;
}

/** Every wire name a subscription to `name` listens on. */
export function wireNamesOf(name: string): string[] {
  const c = canonicalChannel(name);
  const names = [c];
  for (const [alias, target] of ALIASES) if (target === c) names.push(alias);
  return names;
}

export function isPiloxChannel(name: string): boolean {
  const c = canonicalChannel(name);
  return c === PILOX_AGENT_STATUS || c === PILOX_SYSTEM_EVENTS;
}

/**
 * The producer written into a generated meshMeta: on the Pilox channels the reference's own
 * value, so stock subscribers that pin it accept us; elsewhere the configured name.
 */
export function defaultProducer(channel: string, configured: string): string {
  return isPiloxChannel(channel) ? "pilox-core" : configured;
}

/** Operator channel names: printable, no spaces, bounded. */
export const CHANNEL_NAME = v.pipe(
  v.string(),
  v.minLength(1),
  v.maxLength(200),
  v.regex(/^[A-Za-z0-9][A-Za-z0-9:._\-\/]*$/, "a channel name is letters, digits and : . _ - /"),
);

const UUIDISH = v.pipe(v.string(), v.minLength(1), v.maxLength(128));

const META_ENTRIES = {
  v: v.literal(1),
  producer: v.pipe(v.string(), v.minLength(1), v.maxLength(128)),
  eventId: UUIDISH,
  correlationId: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(256))),
};
/** What we seal on the Pilox channels: exactly the reference's fields. */
const MESH_META_STRICT = strictObject(META_ENTRIES);
/** What we accept: the same fields, extra keys tolerated (they are covered by the MAC). */
export const MESH_META_LOOSE = looseObject(META_ENTRIES);

const ISO_TIME = v.pipe(v.string(), v.isoTimestamp());

const AGENT_STATUS_CORE = strictObject({
  agentId: v.pipe(v.string(), v.minLength(1), v.maxLength(128)),
  status: v.picklist(["running", "ready", "paused", "stopped"]),
  timestamp: ISO_TIME,
  instanceId: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(256))),
});

const SYSTEM_EVENT_CORE = strictObject({
  type: v.pipe(v.string(), v.minLength(1), v.maxLength(128)),
  payload: jsonObject("payload must be an object"),
  timestamp: ISO_TIME,
});

/** Checks a Pilox channel's core; returns a message naming the field, or undefined when valid. */
export function piloxCoreProblem(channel: string, core: unknown): string | undefined {
  const c = canonicalChannel(channel);
  const schema = c === PILOX_AGENT_STATUS ? AGENT_STATUS_CORE : c === PILOX_SYSTEM_EVENTS ? SYSTEM_EVENT_CORE : undefined;
  if (!schema) return undefined;
  const r = v.safeParse(schema, core);
  return r.success ? undefined : describeIssues(r.issues);
}

export function meshMetaProblem(meta: unknown, strict = false): string | undefined {
  if (!strict && plainValidMeta(meta)) return undefined;
  const r = v.safeParse(strict ? MESH_META_STRICT : MESH_META_LOOSE, meta);
  return r.success ? undefined : describeIssues(r.issues, "meshMeta");
}

/**
 * The common case of MESH_META_LOOSE checked by hand, because it runs for every received
 * message: true only for inputs the schema accepts (a test holds it to that); anything else,
 * and every error message, goes through valibot.
 */
function plainValidMeta(meta: unknown): boolean {
  if (meta === null || typeof meta !== "object" || Array.isArray(meta)) return false;
  const m = meta as Record<string, unknown>;
  const { producer, eventId, correlationId } = m;
  return (
    m["v"] === 1 &&
    typeof producer === "string" &&
    producer.length >= 1 &&
    producer.length <= 128 &&
    typeof eventId === "string" &&
    eventId.length >= 1 &&
    eventId.length <= 128 &&
    (correlationId === undefined || (typeof correlationId === "string" && correlationId.length >= 1 && correlationId.length <= 256))
  );
}

export function describeIssues(issues: readonly v.BaseIssue<unknown>[], prefix = ""): string {
  const first = issues[0];
  if (!first) return "invalid";
  const path = v.getDotPath(first);
  const where = [prefix, path].filter(Boolean).join(".");
  return where ? `${where}: ${first.message}` : first.message;
}
