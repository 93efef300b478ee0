/**
 * The WAN dead-letter stream: what a site refused, with why, kept for an operator to read. Each
 * record is the frame's body as received, our `Pilox-Mesh-*`
 * headers as they came, and `Pilox-Mesh-Dlq-*` headers: reason, detail, the original subject,
 * stream sequence and `Nats-Msg-Id`. Its own `Nats-Msg-Id` makes a retried write land once.
 */
import type { JetStreamClient } from "@nats-io/jetstream";
import type { Nats } from "./connect.ts";
import type { DeadLetter } from "./receiver.ts";
import { dlqSubject } from "./subjects.ts";

export const DLQ_HDR = {
  reason: "Pilox-Mesh-Dlq-Reason",
  detail: "Pilox-Mesh-Dlq-Detail",
  subject: "Pilox-Mesh-Dlq-Subject",
  streamSeq: "Pilox-Mesh-Dlq-Stream-Seq",
  msgId: "Pilox-Mesh-Dlq-Msg-Id",
  entry: "Pilox-Mesh-Dlq-Entry",
  at: "Pilox-Mesh-Dlq-Time",
} as const;

/** Header values are one line of printable text, bounded. */
const clean = (s: string, max = 512) => s.replace(/[^\x20-\x7e]/g, "?").slice(0, max);

export async function writeDeadLetter(nats: Nats, js: JetStreamClient, o: { dlqPrefix: string; ourOrigin: string }, d: DeadLetter): Promise<void> {
  const h = nats.headers();
  for (const k of d.msg.headers?.keys() ?? []) {
    if (k.toLowerCase().startsWith("nats-")) continue;
    for (const v of d.msg.headers!.values(k)) h.append(k, clean(v, 4096));
  }
  const originalId = d.msg.headers?.get("Nats-Msg-Id") ?? "";
  h.set(DLQ_HDR.reason, clean(d.reason, 64));
  h.set(DLQ_HDR.detail, clean(d.detail) || "-");
  h.set(DLQ_HDR.subject, clean(d.msg.subject));
  h.set(DLQ_HDR.streamSeq, String(d.msg.seq));
  if (originalId) h.set(DLQ_HDR.msgId, clean(originalId));
  if (d.index !== undefined) h.set(DLQ_HDR.entry, String(d.index));
  h.set(DLQ_HDR.at, new Date().toISOString());
  // The frame as received, even when one entry of it is refused: it stays verifiable (a replay
  // checks its signature again), and the entry header says which one.
  await js.publish(dlqSubject(o.dlqPrefix, o.ourOrigin, d.reason), d.msg.data, { headers: h, msgID: `dlq-${d.msg.info.stream}-${d.msg.seq}-${d.index ?? "frame"}`, timeout: 5_000 });
}
