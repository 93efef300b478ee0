/**
 * The embedded record store: SQLite through node:sqlite (Node 24, Deno), WAL mode, one file.
 * node:sqlite is synchronous; a registry's writes are small and each is one transaction, so
 * they run inline (measured in bench/registry.get.ts).
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { servedColumns } from "./served.ts";
import type { Entry, RecordStore, Served } from "./store.ts";

interface Row {
  handle: string;
  seq: number;
  body: string;
  deleted: number;
  keys: string;
  agent_card_url: string;
  expires_at: number;
  cursor: number;
  etag: string;
}

const toEntry = (r: Row): Entry => ({
  handle: r.handle,
  seq: r.seq,
  body: JSON.parse(r.body) as Entry["body"],
  deleted: r.deleted === 1,
  keys: JSON.parse(r.keys) as string[],
  agentCardUrl: r.agent_card_url,
  expiresAt: r.expires_at,
  cursor: r.cursor,
  etag: r.etag,
});



export class SqliteStore implements RecordStore {
  readonly #db: DatabaseSync;
  readonly #get: StatementSync;
  readonly #insert: StatementSync;
  readonly #update: StatementSync;
  readonly #handles: StatementSync;
  readonly #changes: StatementSync;
  readonly #byCard: StatementSync;
  readonly #purge: StatementSync;
  readonly #count: StatementSync;
  readonly #nextCursor: StatementSync;
  readonly #served: StatementSync;

  constructor(file: string) {
    this.#db = new DatabaseSync(file);
    this.#db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = NORMAL;
      PRAGMA busy_timeout = 5000;
      CREATE TABLE IF NOT EXISTS records (
        handle TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        body TEXT NOT NULL,
        deleted INTEGER NOT NULL,
        keys TEXT NOT NULL,
        agent_card_url TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        cursor INTEGER NOT NULL UNIQUE,
        etag TEXT NOT NULL,
        valid_until INTEGER NOT NULL,
        ttl INTEGER NOT NULL
      );
      CREATE INDEX IF NOT EXISTS records_card ON records (agent_card_url);
      CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
      INSERT OR IGNORE INTO meta (k, v) VALUES ('cursor', 0);
    `);
    this.#get = this.#db.prepare("SELECT * FROM records WHERE handle = ?");
    this.#insert = this.#db.prepare("INSERT INTO records (handle, seq, body, deleted, keys, agent_card_url, expires_at, cursor, etag, valid_until, ttl) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    this.#update = this.#db.prepare("UPDATE records SET seq = ?, body = ?, deleted = ?, keys = ?, agent_card_url = ?, expires_at = ?, cursor = ?, etag = ?, valid_until = ?, ttl = ? WHERE handle = ? AND cursor = ?");
    this.#served = this.#db.prepare("SELECT body, etag, deleted, valid_until, ttl FROM records WHERE handle = ?");
    this.#handles = this.#db.prepare("SELECT handle FROM records WHERE deleted = 0 ORDER BY handle");
    this.#changes = this.#db.prepare("SELECT * FROM records WHERE cursor > ? ORDER BY cursor LIMIT ?");
    this.#byCard = this.#db.prepare("SELECT handle FROM records WHERE agent_card_url = ? AND deleted = 0 ORDER BY handle");
    this.#purge = this.#db.prepare("DELETE FROM records WHERE deleted = 1 AND expires_at > 0 AND expires_at <= ?");
    this.#count = this.#db.prepare("SELECT count(*) AS n FROM records WHERE deleted = 0");
    this.#nextCursor = this.#db.prepare("UPDATE meta SET v = v + 1 WHERE k = 'cursor' RETURNING v");
  }

  async get(handle: string): Promise<Entry | undefined> {
    const r = this.#get.get(handle) as Row | undefined;
    return r ? toEntry(r) : undefined;
  }

  async put(e: Omit<Entry, "cursor">, expectCursor: number | null): Promise<Entry | "conflict"> {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const cursor = (this.#nextCursor.get() as { v: number }).v;
      const args = [e.seq, JSON.stringify(e.body), e.deleted ? 1 : 0, JSON.stringify(e.keys), e.agentCardUrl, e.expiresAt, cursor, e.etag, ...servedColumns(e.body)] as const;
      let changed: number;
      if (expectCursor === null) {
        try {
          changed = Number(this.#insert.run(e.handle, ...args).changes);
        } catch (err) {
          if (/UNIQUE/.test((err as Error).message)) changed = 0;
          else throw err;
        }
      } else {
        changed = Number(this.#update.run(...args, e.handle, expectCursor).changes);
      }
      if (changed !== 1) {
        this.#db.exec("ROLLBACK");
        return "conflict";
      }
      this.#db.exec("COMMIT");
      return { ...e, cursor };
    } catch (err) {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      throw err;
    }
  }

  async served(handle: string): Promise<Served | undefined> {
    const r = this.#served.get(handle) as { body: string; etag: string; deleted: number; valid_until: number; ttl: number } | undefined;
    return r ? { text: r.body, etag: r.etag, deleted: r.deleted === 1, validUntil: r.valid_until, ttl: r.ttl } : undefined;
  }

  async handles(): Promise<string[]> {
    return (this.#handles.all() as { handle: string }[]).map((r) => r.handle);
  }

  async changes(since: number, limit: number): Promise<Entry[]> {
    return (this.#changes.all(since, limit) as unknown as Row[]).map(toEntry);
  }

  async byAgentCard(url: string): Promise<string[]> {
    return (this.#byCard.all(url) as { handle: string }[]).map((r) => r.handle);
  }

  async purge(nowMs: number): Promise<number> {
    return Number(this.#purge.run(nowMs).changes);
  }

  async count(): Promise<number> {
    return (this.#count.get() as { n: number }).n;
  }

  async close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close();
  }
}
