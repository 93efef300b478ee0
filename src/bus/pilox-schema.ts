/**
 * What a stock Pilox receiver accepts on its two channels, checked before we emit there. The
 * reference validates each event with its own schemas and strips unknown keys before computing
 * the MAC, so a field it does not know, a producer other than its own or a non-UUID event id
 * makes it refuse what we send. (Received messages are checked more loosely, by channels.ts:
 * stricter on what we send, tolerant of what others send.)
 */
import * as v from "valibot";
import { jsonObject, strictObject } from "../schema/index.ts";
import { canonicalChannel, describeIssues, PILOX_AGENT_STATUS, PILOX_SYSTEM_EVENTS } from "./channels.ts";

/** RFC 9562 UUID text, as the reference's `z.string().uuid()` takes it. */
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$/;

const STOCK_META = strictObject({
  v: v.literal(1),
  producer: v.literal("pilox-core", 'must be "pilox-core" on the Pilox channels (the reference refuses any other producer)'),
  eventId: v.pipe(v.string(), v.regex(UUID, "must be a UUID (the reference refuses any other event id)")),
  correlationId: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(256))),
});

const ISO = v.pipe(
  v.string(),
  v.check((s) => !Number.isNaN(Date.parse(s)), "expected an ISO-8601 timestamp"),
);
const agentId = v.pipe(v.string(), v.minLength(1), v.maxLength(128));
const agentName = v.pipe(v.string(), v.minLength(1), v.maxLength(512));
const lifecycle = strictObject({ agentId, name: agentName });
/** An origin or URL with a scheme the bridge and ingress both take, stricter: http(s) only. */
const HTTP_URL = v.pipe(
  v.string(),
  v.check((s) => {
    try {
      const u = new URL(s);
      return u.protocol === "https:" || u.protocol === "http:";
    } catch {
      return false;
    }
  }, "must be an http(s) URL"),
);

/** wan-envelope-v1 as Pilox's ingress validates it (plus: http(s) origins, a non-empty targetHandle). */
export const WAN_ENVELOPE = strictObject({
  v: v.literal(1),
  // 8–256 counted both ways (the bridge counts code points, the ingress UTF-16 units).
  correlationId: v.pipe(v.string(), v.minLength(8), v.maxLength(256), v.check((s) => [...s].length >= 8, "must be at least 8 characters")),
  sourceOrigin: HTTP_URL,
  targetOrigin: v.optional(HTTP_URL),
  targetHandle: v.optional(v.pipe(v.string(), v.minLength(1))),
  // An object, checked: an array is refused (the reference answers "payload must be object").
  payload: v.optional(jsonObject("payload must be object")),
  schema: v.optional(v.literal("wan-envelope-v1")),
});

const event = <T extends string, P extends v.GenericSchema>(type: T, payload: P) => v.strictObject({ type: v.literal(type), payload, timestamp: ISO });

const SYSTEM_EVENT = v.variant("type", [
  event("agent.created", lifecycle),
  event("agent.deleted", lifecycle),
  event("agent.started", lifecycle),
  event("agent.stopped", lifecycle),
  // The reference's agent.paused also lists {agentId, name, reason: "idle"}, but its union
  // matches the plain form first and strips `reason`, so its own receivers refuse such a
  // message (wrong MAC). We emit the form they accept, and refuse `reason` with that said.
  event("agent.paused", lifecycle),
  event("agent.resumed", lifecycle),
  event("model.pulled", strictObject({ modelName: v.pipe(v.string(), v.minLength(1), v.maxLength(512)) })),
  event("backup.completed", strictObject({ backupId: v.pipe(v.string(), v.minLength(1), v.maxLength(64)) })),
  event("mesh.wan.envelope", WAN_ENVELOPE),
  event(
    "agent.imported",
    strictObject({
      agentId,
      name: agentName,
      sourceType: v.pipe(v.string(), v.minLength(1), v.maxLength(64)),
      recordedSource: v.optional(v.picklist(["url-import", "marketplace", "registry"])),
    }),
  ),
]);

const AGENT_STATUS = strictObject({
  agentId,
  status: v.picklist(["running", "ready", "paused", "stopped"]),
  timestamp: ISO,
  instanceId: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(256))),
});

/** Why a stock Pilox receiver would refuse this core and meshMeta on `channel`, naming the field. */
export function piloxEmitProblem(channel: string, core: unknown, meshMeta: unknown): string | undefined {
  const c = canonicalChannel(channel);
  if (c !== PILOX_AGENT_STATUS && c !== PILOX_SYSTEM_EVENTS) return undefined;
  const m = v.safeParse(STOCK_META, meshMeta);
  if (!m.success) return describeIssues(m.issues, "meshMeta");
  const r = v.safeParse(c === PILOX_AGENT_STATUS ? AGENT_STATUS : SYSTEM_EVENT, core);
  if (r.success) return undefined;
  const type = (core as { type?: unknown } | null)?.type;
  if (c === PILOX_SYSTEM_EVENTS && type === "agent.paused" && (core as { payload?: { reason?: unknown } }).payload?.reason !== undefined) {
    return "payload.reason: agent.paused with a reason is refused by stock Pilox receivers (a reference bug); send it without reason";
  }
  return describeIssues(r.issues);
}
