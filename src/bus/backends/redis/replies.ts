/** Decoding of stream replies (RESP2, and RESP3's flattened maps). */

export type Entries = [string, string[] | null][];

/**
 * The entries of a one-stream XREAD/XREADGROUP reply. Over RESP2 it is [[key, entries]];
 * over RESP3 (ioredis 6's default; we pin 5, whose RESP2 parser decodes stream entries in about
 * half the CPU) the map arrives flattened as [key, entries].
 */
export function firstStreamEntries(reply: unknown): Entries {
  if (!Array.isArray(reply) || reply.length === 0) return [];
  if (Array.isArray(reply[0])) return (reply[0][1] ?? []) as Entries;
  return (reply[1] ?? []) as Entries;
}

export function pairs(flat: unknown[]): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([String(flat[i]), flat[i + 1]]);
  return out;
}

export function fieldValue(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/**
 * The entries of a many-stream XREADGROUP reply, by stream key: [[key, entries], …] over RESP2,
 * [key, entries, key, entries, …] when a RESP3 map arrives flattened.
 */
export function streamsEntries(reply: unknown): [string, Entries][] {
  if (!Array.isArray(reply) || reply.length === 0) return [];
  if (Array.isArray(reply[0])) return (reply as [unknown, Entries | null][]).map(([k, e]) => [String(k), e ?? []]);
  return pairs(reply).map(([k, e]) => [k, (e ?? []) as Entries]);
}
