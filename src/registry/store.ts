/**
 * Where registry records are kept: one interface, so the registry's rules (proofs, authorship,
 * sequence, tombstones) are written once. The embedded store is SQLite through node:sqlite
 * (WAL, one file under the state directory).
 */
import type { Quota, QuotaExceeded } from "./quota.ts";
import type { RegistryRecord } from "./record.ts";

/**
 * The on-disk format of the record table. A store refuses a database written by a newer
 * format (a downgrade would misread it) and migrates an older one in pages when it opens it.
 * 1: the first tables; 2: each row carries its content digest, writer key and size.
 */
export const STORE_FORMAT = 2;

export class StoreFormatError extends Error {
  override name = "StoreFormatError";
}

/** The store cannot be reached (PostgreSQL down, restarting): the caller answers 503. */
export class StoreUnavailableError extends Error {
  override name = "StoreUnavailableError";
}

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

/** What a write gives the store: an entry without its cursor, and its body's contentDigest when the caller has it. */
export type NewEntry = Omit<Entry, "cursor"> & { digest?: string };

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

/** A catalog row: a live handle with its sequence and content digest (no body). */
export interface CatalogRow {
  handle: string;
  seq: number;
  digest: string;
}

/** How many change-feed entries a page holds at most, and how many bytes of bodies. */
export interface PageBound {
  limit: number;
  maxBytes: number;
}

export interface RecordStore {
  get(handle: string): Promise<Entry | undefined>;
  served(handle: string): Promise<Served | undefined>;
  /**
   * Writes `e` (its cursor is assigned) only if the handle's current cursor is still
   * `expectCursor` (null: the handle must not exist): a conditional write, so two writers
   * never both replace the same version.
   */
  put(e: NewEntry, expectCursor: number | null, quota?: Quota): Promise<Entry | "conflict" | QuotaExceeded>;
  /** Live handles, sorted. */
  handles(): Promise<string[]>;
  /**
   * Live handles after `after` ("" for the first page) in the store's handle order, with
   * their sequence and digest, `limit` at most: the catalog reads these, never bodies.
   */
  catalogPage(after: string, limit: number): Promise<CatalogRow[]>;
  /**
   * Entries (records and tombstones) written after `since`, in cursor order: at most
   * `bound.limit`, and no more bodies than fit in `bound.maxBytes` (at least one).
   */
  changes(since: number, bound: PageBound): Promise<Entry[]>;
  /** The latest cursor handed out (0: nothing written): what changed since a cached catalog. */
  head(): Promise<number>;
  byAgentCard(url: string): Promise<string[]>;
  /** Forgets tombstones whose retention ended; returns how many. */
  purge(nowMs: number): Promise<number>;
  count(): Promise<number>;
  close(): Promise<void>;
}

/** How many of the first rows (of these body sizes) fit in `maxBytes` (at least one, so a page always moves). */
export function fitting(sizes: readonly number[], maxBytes: number): number {
  let total = 0;
  for (let i = 0; i < sizes.length; i++) {
    total += sizes[i]!;
    if (total > maxBytes) return Math.max(i, 1);
  }
  return sizes.length;
}
