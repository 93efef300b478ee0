/**
 * How much a registry stores, in all and per writer key, so a leaked write token (or a peer
 * we sync from) cannot fill the disk. The writer of a record is the first key of its
 * authorship binding; unsigned records share one writer, "". Both stores check these inside
 * the write's own transaction, with the same arithmetic (here).
 */

export interface Quota {
  maxRecords: number;
  maxBytes: number;
  maxRecordsPerKey: number;
  maxBytesPerKey: number;
}

/** What is stored before the write: in all (records live, bytes of every row) and for the writer. */
export interface Usage {
  records: number;
  bytes: number;
  writerRecords: number;
  writerBytes: number;
}

/** The row being replaced (if any) and the one being written. */
export interface Change {
  old: { live: boolean; bytes: number; writer: string } | undefined;
  next: { live: boolean; bytes: number; writer: string };
}

export type QuotaLimit = "records" | "bytes" | "records_per_key" | "bytes_per_key";

export class QuotaExceeded {
  constructor(
    readonly limit: QuotaLimit,
    readonly detail: string,
  ) {}
}

export const writerOf = (keys: readonly string[]): string => keys[0] ?? "";

/** Usage after the change; what the change adds to the totals and to its writer. */
export function applyChange(u: Usage, c: Change): Usage {
  const same = c.old !== undefined && c.old.writer === c.next.writer;
  const oldLive = c.old?.live ? 1 : 0;
  const nextLive = c.next.live ? 1 : 0;
  return {
    records: u.records - oldLive + nextLive,
    bytes: u.bytes - (c.old?.bytes ?? 0) + c.next.bytes,
    writerRecords: u.writerRecords - (same ? oldLive : 0) + nextLive,
    writerBytes: u.writerBytes - (same && c.old?.live ? c.old.bytes : 0) + (c.next.live ? c.next.bytes : 0),
  };
}

/**
 * The limit a change would pass, if any. A change that does not grow a figure is never refused
 * (deleting, shrinking and re-signing always work, even above a lowered limit).
 */
export function quotaRefusal(q: Quota, before: Usage, c: Change): QuotaExceeded | undefined {
  const after = applyChange(before, c);
  const over = (limit: QuotaLimit, a: number, b: number, max: number, unit: string) =>
    a > max && a > b ? new QuotaExceeded(limit, `${limit}: ${a} ${unit} would pass the limit of ${max}`) : undefined;
  return (
    over("records", after.records, before.records, q.maxRecords, "records") ??
    over("bytes", after.bytes, before.bytes, q.maxBytes, "bytes") ??
    over("records_per_key", after.writerRecords, before.writerRecords, q.maxRecordsPerKey, "records of this writer key") ??
    over("bytes_per_key", after.writerBytes, before.writerBytes, q.maxBytesPerKey, "bytes of this writer key")
  );
}

export const UNLIMITED: Quota = { maxRecords: Infinity, maxBytes: Infinity, maxRecordsPerKey: Infinity, maxBytesPerKey: Infinity };
