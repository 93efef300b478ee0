/**
 * The JetStream side the WAN needs: the frame stream, the dead-letter stream and this site's
 * durable pull consumer. Each is checked against the settings the guarantees rest on; it is
 * created only when `wan.manage_streams = true`, and a mismatch is an error that names the
 * setting, never a silent re-create (an operator's stream holds other sites' frames).
 */
import type { JetStreamManager, StreamInfo } from "@nats-io/jetstream";
import type { Config } from "../config/index.ts";
import type { Js } from "./connect.ts";
import { consumerName, inboxFilter } from "./subjects.ts";

const NS = 1_000_000_000;
/** Room for our headers and the frame's envelope beyond wan.max_frame_bytes. */
export const HEADER_ROOM = 4096;

export class StreamMismatchError extends Error {
  override name = "StreamMismatchError";
}

export function frameStreamConfig(js: Js, c: Config) {
  const w = c.wan;
  return {
    name: w.stream,
    subjects: [`${w.subject_prefix}.*.*`],
    storage: js.StorageType.File,
    retention: js.RetentionPolicy.Limits,
    // A full stream refuses new frames (the sender keeps them on disk): backpressure, not loss.
    discard: js.DiscardPolicy.New,
    max_age: w.stream_max_age_seconds * NS,
    max_bytes: w.stream_max_bytes,
    max_msg_size: w.max_frame_bytes + HEADER_ROOM,
    duplicate_window: w.duplicate_window_seconds * NS,
    num_replicas: w.stream_replicas,
  };
}

export function dlqStreamConfig(js: Js, c: Config) {
  const w = c.wan;
  return {
    name: w.dlq_stream,
    // Refused frames, and the server's own word when a frame ran out of deliveries.
    subjects: [`${w.dlq_subject_prefix}.>`, `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${w.stream}.*`],
    storage: js.StorageType.File,
    retention: js.RetentionPolicy.Limits,
    // The dead letters are for reading: the oldest go first when it is full.
    discard: js.DiscardPolicy.Old,
    max_age: w.stream_max_age_seconds * NS,
    max_bytes: w.stream_max_bytes,
    max_msg_size: 2 * (w.max_frame_bytes + HEADER_ROOM),
    num_replicas: w.stream_replicas,
  };
}

export function consumerConfig(js: Js, c: Config) {
  const w = c.wan;
  return {
    durable_name: consumerName(c.instance.origin),
    filter_subject: inboxFilter(w.subject_prefix, c.instance.origin),
    ack_policy: js.AckPolicy.Explicit,
    deliver_policy: js.DeliverPolicy.All,
    ack_wait: w.ack_wait_seconds * NS,
    // A backstop only: our own attempt limit (wan.max_attempts) dead-letters first.
    max_deliver: w.max_deliver,
    max_ack_pending: Math.max(w.fetch_batch * 4, 256),
    // A consumer's state is replicated like its stream's (0: as many as the stream).
    num_replicas: w.stream_replicas,
  };
}

async function streamInfo(jsm: JetStreamManager, name: string): Promise<StreamInfo | null> {
  try {
    return await jsm.streams.info(name);
  } catch (err) {
    if (/stream not found/i.test((err as Error).message)) return null;
    throw err;
  }
}

/** What differs between a stream's settings and what we need (each as "setting: want X, has Y"). */
function streamDiffs(have: Record<string, unknown>, want: ReturnType<typeof frameStreamConfig> | ReturnType<typeof dlqStreamConfig>): string[] {
  const out: string[] = [];
  const wantSubjects = want.subjects;
  const hasSubjects = (have["subjects"] as string[] | undefined) ?? [];
  for (const s of wantSubjects) if (!hasSubjects.includes(s)) out.push(`subjects: missing ${s}`);
  for (const k of ["storage", "discard", "retention"] as const) if (have[k] !== want[k]) out.push(`${k}: want ${String(want[k])}, has ${String(have[k])}`);
  if ("duplicate_window" in want && Number(have["duplicate_window"]) < want.duplicate_window) out.push(`duplicate_window: want at least ${want.duplicate_window / NS} s, has ${Number(have["duplicate_window"]) / NS} s`);
  const hasReplicas = Number(have["num_replicas"] ?? 1) || 1;
  if (hasReplicas < want.num_replicas) out.push(`num_replicas: want ${want.num_replicas} (wan.stream_replicas), has ${hasReplicas}`);
  const hasMax = Number(have["max_msg_size"]);
  if (hasMax > 0 && hasMax < want.max_msg_size) out.push(`max_msg_size: want at least ${want.max_msg_size}, has ${hasMax}`);
  return out;
}

/** Checks (or, with manage_streams, creates) both streams and the consumer. */
export async function ensureStreams(js: Js, jsm: JetStreamManager, c: Config): Promise<void> {
  const problems: string[] = [];
  for (const want of [frameStreamConfig(js, c), dlqStreamConfig(js, c)]) {
    const info = await streamInfo(jsm, want.name);
    if (!info) {
      if (!c.wan.manage_streams) {
        problems.push(`stream ${want.name} does not exist; create it as docs/wire-formats.md describes, or set wan.manage_streams = true`);
        continue;
      }
      try {
        await jsm.streams.add(want);
      } catch (err) {
        // Another site made it at the same moment: check that one like any existing stream.
        if (!/already in use/i.test((err as Error).message)) throw err;
        const diffs = streamDiffs((await jsm.streams.info(want.name)).config as unknown as Record<string, unknown>, want);
        if (diffs.length) problems.push(`stream ${want.name} does not have the settings the WAN needs (${diffs.join("; ")})`);
      }
      continue;
    }
    const diffs = streamDiffs(info.config as unknown as Record<string, unknown>, want);
    if (diffs.length) problems.push(`stream ${want.name} does not have the settings the WAN needs (${diffs.join("; ")})`);
  }
  if (problems.length) throw new StreamMismatchError(problems.join(". "));
  const want = consumerConfig(js, c);
  let existing: Record<string, unknown> | null = null;
  try {
    existing = (await jsm.consumers.info(c.wan.stream, want.durable_name)).config as unknown as Record<string, unknown>;
  } catch (err) {
    if (!/consumer not found/i.test((err as Error).message)) throw err;
  }
  if (!existing) {
    if (!c.wan.manage_streams) throw new StreamMismatchError(`consumer ${want.durable_name} on stream ${c.wan.stream} does not exist; create it as docs/wire-formats.md describes, or set wan.manage_streams = true`);
    await jsm.consumers.add(c.wan.stream, want);
    return;
  }
  const diffs: string[] = [];
  if (existing["filter_subject"] !== want.filter_subject) diffs.push(`filter_subject: want ${want.filter_subject}, has ${String(existing["filter_subject"])}`);
  if (existing["ack_policy"] !== want.ack_policy) diffs.push(`ack_policy: want ${want.ack_policy}, has ${String(existing["ack_policy"])}`);
  if (existing["deliver_subject"]) diffs.push("deliver_subject: want a pull consumer, has a push consumer");
  // 0 means "as many as the stream", which the stream check above covers.
  const consumerReplicas = Number(existing["num_replicas"] ?? 0);
  if (consumerReplicas !== 0 && consumerReplicas < want.num_replicas) diffs.push(`num_replicas: want ${want.num_replicas} (wan.stream_replicas), has ${consumerReplicas}`);
  if (diffs.length === 0) return;
  throw new StreamMismatchError(`consumer ${want.durable_name} on stream ${c.wan.stream} does not have the settings the WAN needs (${diffs.join("; ")})`);
}

/** The reference's stream for its envelopes (the reference's operator creates it: 2 min window, file). */
export function piloxStreamConfig(js: Js, c: Config) {
  const p = c.wan.pilox;
  return {
    name: p.stream,
    subjects: [...p.subjects],
    storage: js.StorageType.File,
    retention: js.RetentionPolicy.Limits,
    discard: js.DiscardPolicy.Old,
    duplicate_window: 120 * NS,
    max_age: c.wan.stream_max_age_seconds * NS,
    max_bytes: c.wan.stream_max_bytes,
    max_msg_size: p.max_envelope_bytes + HEADER_ROOM,
    num_replicas: c.wan.stream_replicas,
  };
}

/** This site's durable pull consumer of the reference's envelopes. */
export function ingestConsumerName(origin: string): string {
  return `pilox-mesh-ingest-${consumerName(origin).slice("pilox-mesh-".length)}`;
}

/**
 * The envelope stream: it must exist and hold our subjects (the reference's operator made it;
 * with manage_streams we make it). Our ingest consumer likewise.
 */
export async function ensurePiloxIngest(js: Js, jsm: JetStreamManager, c: Config): Promise<void> {
  const want = piloxStreamConfig(js, c);
  const info = await streamInfo(jsm, want.name);
  if (!info) {
    if (!c.wan.manage_streams) throw new StreamMismatchError(`stream ${want.name} (wan.pilox.stream) does not exist; create it on ${want.subjects.join(", ")}, or set wan.manage_streams = true`);
    try {
      await jsm.streams.add(want);
    } catch (err) {
      if (!/already in use/i.test((err as Error).message)) throw err;
    }
  } else {
    const has = (info.config.subjects ?? []) as string[];
    const missing = want.subjects.filter((s) => !has.includes(s));
    if (missing.length) throw new StreamMismatchError(`stream ${want.name} does not take ${missing.join(", ")} (wan.pilox.subjects)`);
  }
  const name = ingestConsumerName(c.instance.origin);
  try {
    await jsm.consumers.info(want.name, name);
    return;
  } catch (err) {
    if (!/consumer not found/i.test((err as Error).message)) throw err;
  }
  if (!c.wan.manage_streams) throw new StreamMismatchError(`consumer ${name} on stream ${want.name} does not exist; create it (pull, explicit ack, deliver all), or set wan.manage_streams = true`);
  await jsm.consumers.add(want.name, { durable_name: name, ack_policy: js.AckPolicy.Explicit, deliver_policy: js.DeliverPolicy.All, ack_wait: c.wan.ack_wait_seconds * NS, max_deliver: c.wan.max_deliver, num_replicas: c.wan.stream_replicas });
}
