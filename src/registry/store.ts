/**
 * Where registry records are kept: one interface, so the registry's rules (proofs, authorship,
 * sequence, tombstones) are written once. The embedded store is SQLite through node:sqlite
 * (WAL, one file under the state directory).
 */
import type { RegistryRecord } from "./record.ts";

/** A handle's current state: its latest record, or the tombstone that deleted it. */
export interface Entry {
  handle: string;
  /** The proof v2 sequence of the latest version (or of the tombstone). */
  seq: number;
  /** The record as served (with our registrar countersignature), or the tombstone. */
  body: RegistryRecord | Tombstone;
  deleted: boolean;
  /** Keys (64 hex) that may sign the next version: the authorship binding. Empty: unsigned handle. */
  keys: string[];
  agentCardUrl: string;
  /** When a tombstone may be forgotten (ms); 0 for live records. */
  expiresAt: number;
  /** The weak ETag of `body` as served (computed once, at write). */
  etag: string;
  /** Position in the change feed (assigned by the store, grows with every write). */
  cursor: number;
}

export interface Tombstone {
  schema: "pilox-registry-tombstone-v1";
  handle: string;
  seq: number;
  deletedAt: string;
  proof: { type: "pilox-registry-tombstone-ed25519-v1"; publicKeyHex: string; sigHex: string; signer?: string };
}

/** What GET /v1/records/{handle} needs, without parsing the body. */
export interface Served {
  text: string;
  etag: string;
  deleted: boolean;
  /** validUntil in ms (0: none). */
  validUntil: number;
  /** ttlSecondsRecommended (-1: none). */
  ttl: number;
}

export interface RecordStore {
  get(handle: string): Promise<Entry | undefined>;
  served(handle: string): Promise<Served | undefined>;
  /**
   * Writes `e` (its cursor is assigned) only if the handle's current cursor is still
   * `expectCursor` (null: the handle must not exist): a conditional write, so two writers
   * never both replace the same version.
   */
  put(e: Omit<Entry, "cursor">, expectCursor: number | null): Promise<Entry | "conflict">;
  /** Live handles, sorted. */
  handles(): Promise<string[]>;
  /** Entries (records and tombstones) written after `since`, in cursor order. */
  changes(since: number, limit: number): Promise<Entry[]>;
  byAgentCard(url: string): Promise<string[]>;
  /** Forgets tombstones whose retention ended; returns how many. */
  purge(nowMs: number): Promise<number>;
  count(): Promise<number>;
  close(): Promise<void>;
}
