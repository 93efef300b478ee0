/**
 * The embedded record store: SQLite through node:sqlite (Node 24, Deno), WAL mode, one file.
 * node:sqlite is synchronous; a registry's writes are small, so they run inline (measured in
 * bench/registry.get.ts). The writes of one event-loop turn share a transaction (group commit),
 * each in its own savepoint, and each put resolves only once that transaction is committed: a
 * sync merging a page of a thousand records writes the WAL once, not a thousand times
 * (measured: BEGIN/COMMIT per record was a sixth of an initial sync of 10,000 records).
 */
import { setImmediate } from "node:timers";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { quotaRefusal, writerOf, type Quota, type QuotaExceeded } from "./quota.ts";
import { contentDigest } from "./digest.ts";
import { servedColumns } from "./served.ts";
import { STORE_FORMAT, StoreFormatError, type CatalogRow, type Entry, type NewEntry, type PageBound, type RecordStore, type Served, fitting } from "./store.ts";

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

/** Rows migrated per transaction when an older database is opened. */
const MIGRATE_PAGE = 500;

export class SqliteStore implements RecordStore {
  readonly #db: DatabaseSync;
  readonly #get: StatementSync;
  readonly #insert: StatementSync;
  readonly #update: StatementSync;
  readonly #handles: StatementSync;
  readonly #catalog: StatementSync;
  readonly #changeSizes: StatementSync;
  readonly #changes: StatementSync;
  readonly #byCard: StatementSync;
  readonly #purge: StatementSync;
  readonly #count: StatementSync;
  readonly #nextCursor: StatementSync;
  readonly #head: StatementSync;
  readonly #served: StatementSync;
  readonly #usage: StatementSync;
  readonly #writerUsage: StatementSync;
  readonly #addUsage: StatementSync;
  readonly #addWriter: StatementSync;

  /** The open group transaction: what waits for its COMMIT. */
  #group: { resolve: () => void; reject: (err: Error) => void }[] | null = null;

  constructor(readonly file: string) {
    this.#db = new DatabaseSync(file);
    this.#db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;");
    this.#open();
    this.#get = this.#db.prepare("SELECT * FROM records WHERE handle = ?");
    this.#insert = this.#db.prepare("INSERT INTO records (handle, seq, body, deleted, keys, agent_card_url, expires_at, cursor, etag, valid_until, ttl, digest, writer, bytes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    this.#update = this.#db.prepare("UPDATE records SET seq = ?, body = ?, deleted = ?, keys = ?, agent_card_url = ?, expires_at = ?, cursor = ?, etag = ?, valid_until = ?, ttl = ?, digest = ?, writer = ?, bytes = ? WHERE handle = ? AND cursor = ?");
    this.#served = this.#db.prepare("SELECT body, etag, deleted, valid_until, ttl FROM records WHERE handle = ?");
    this.#handles = this.#db.prepare("SELECT handle FROM records WHERE deleted = 0 ORDER BY handle");
    this.#catalog = this.#db.prepare("SELECT handle, seq, digest FROM records WHERE deleted = 0 AND handle > ? ORDER BY handle LIMIT ?");
    this.#changeSizes = this.#db.prepare("SELECT bytes FROM records WHERE cursor > ? ORDER BY cursor LIMIT ?");
    this.#changes = this.#db.prepare("SELECT * FROM records WHERE cursor > ? ORDER BY cursor LIMIT ?");
    this.#byCard = this.#db.prepare("SELECT handle FROM records WHERE agent_card_url = ? AND deleted = 0 ORDER BY handle");
    this.#purge = this.#db.prepare("DELETE FROM records WHERE deleted = 1 AND expires_at > 0 AND expires_at <= ? RETURNING bytes");
    this.#count = this.#db.prepare("SELECT count(*) AS n FROM records WHERE deleted = 0");
    this.#nextCursor = this.#db.prepare("UPDATE meta SET v = v + 1 WHERE k = 'cursor' RETURNING v");
    this.#head = this.#db.prepare("SELECT v FROM meta WHERE k = 'cursor'");
    this.#usage = this.#db.prepare("SELECT (SELECT v FROM meta WHERE k = 'records') AS records, (SELECT v FROM meta WHERE k = 'bytes') AS bytes");
    this.#writerUsage = this.#db.prepare("SELECT records AS n, bytes AS b FROM writers WHERE writer = ?");
    this.#addUsage = this.#db.prepare("UPDATE meta SET v = v + ? WHERE k = ?");
    this.#addWriter = this.#db.prepare("INSERT INTO writers (writer, records, bytes) VALUES (?, ?, ?) ON CONFLICT (writer) DO UPDATE SET records = records + excluded.records, bytes = bytes + excluded.bytes");
  }

  /** Creates the tables, or checks and migrates what an earlier version left. */
  #open(): void {
    const version = (this.#db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;
    if (version > STORE_FORMAT) {
      this.#db.close();
      throw new StoreFormatError(`${this.file} has registry format ${version}; this build reads format ${STORE_FORMAT} and older: run the newer pilox-mesh, or restore a backup taken before the upgrade`);
    }
    const existed = this.#db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'records'").get() !== undefined;
    this.#db.exec(`
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
        ttl INTEGER NOT NULL,
        digest TEXT NOT NULL DEFAULT '',
        writer TEXT NOT NULL DEFAULT '',
        bytes INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX IF NOT EXISTS records_card ON records (agent_card_url);
      CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
      INSERT OR IGNORE INTO meta (k, v) VALUES ('cursor', 0);
      CREATE TABLE IF NOT EXISTS writers (writer TEXT PRIMARY KEY, records INTEGER NOT NULL, bytes INTEGER NOT NULL);
    `);
    if (existed && version < 2) this.#migrateTo2();
    this.#db.exec(`
      INSERT OR IGNORE INTO meta (k, v) VALUES ('records', 0), ('bytes', 0);
      PRAGMA user_version = ${STORE_FORMAT};
    `);
  }

  /** Format 1 → 2: digest, writer and size per row, in pages (memory does not grow with the table). */
  #migrateTo2(): void {
    const cols = (this.#db.prepare("PRAGMA table_info(records)").all() as { name: string }[]).map((c) => c.name);
    for (const [name, type] of [["digest", "TEXT NOT NULL DEFAULT ''"], ["writer", "TEXT NOT NULL DEFAULT ''"], ["bytes", "INTEGER NOT NULL DEFAULT 0"]] as const) {
      if (!cols.includes(name)) this.#db.exec(`ALTER TABLE records ADD COLUMN ${name} ${type}`);
    }
    const page = this.#db.prepare("SELECT handle, body, keys, cursor FROM records WHERE cursor > ? ORDER BY cursor LIMIT ?");
    const set = this.#db.prepare("UPDATE records SET digest = ?, writer = ?, bytes = ? WHERE handle = ?");
    let after = 0;
    for (;;) {
      const rows = page.all(after, MIGRATE_PAGE) as { handle: string; body: string; keys: string; cursor: number }[];
      if (rows.length === 0) break;
      this.#db.exec("BEGIN IMMEDIATE");
      for (const r of rows) set.run(contentDigest(JSON.parse(r.body) as Entry["body"]), writerOf(JSON.parse(r.keys) as string[]), Buffer.byteLength(r.body), r.handle);
      this.#db.exec("COMMIT");
      after = rows[rows.length - 1]!.cursor;
    }
    const t = this.#db.prepare("SELECT (SELECT count(*) FROM records WHERE deleted = 0) AS n, (SELECT total(bytes) FROM records) AS b").get() as { n: number; b: number };
    this.#db.prepare("INSERT OR REPLACE INTO meta (k, v) VALUES ('records', ?), ('bytes', ?)").run(t.n, t.b);
    this.#db.exec("DELETE FROM writers; INSERT INTO writers (writer, records, bytes) SELECT writer, count(*), total(bytes) FROM records WHERE deleted = 0 GROUP BY writer");
  }

  async get(handle: string): Promise<Entry | undefined> {
    const r = this.#get.get(handle) as Row | undefined;
    return r ? toEntry(r) : undefined;
  }

  async put({ digest, ...e }: NewEntry, expectCursor: number | null, quota?: Quota): Promise<Entry | "conflict" | QuotaExceeded> {
    const body = JSON.stringify(e.body);
    const bytes = Buffer.byteLength(body);
    const writer = writerOf(e.keys);
    this.#joinGroup();
    this.#db.exec("SAVEPOINT put");
    let cursor: number;
    try {
      const old = this.#get.get(e.handle) as (Row & { writer: string; bytes: number }) | undefined;
      if ((old?.cursor ?? null) !== expectCursor) {
        this.#db.exec("ROLLBACK TO put; RELEASE put");
        return "conflict";
      }
      const change = { old: old && { live: old.deleted === 0, bytes: old.bytes, writer: old.writer }, next: { live: !e.deleted, bytes, writer } };
      if (quota) {
        const u = this.#usage.get() as { records: number; bytes: number };
        const w = (this.#writerUsage.get(writer) as { n: number; b: number } | undefined) ?? { n: 0, b: 0 };
        const refused = quotaRefusal(quota, { records: u.records, bytes: u.bytes, writerRecords: w.n, writerBytes: w.b }, change);
        if (refused) {
          this.#db.exec("ROLLBACK TO put; RELEASE put");
          return refused;
        }
      }
      cursor = (this.#nextCursor.get() as { v: number }).v;
      const args = [e.seq, body, e.deleted ? 1 : 0, JSON.stringify(e.keys), e.agentCardUrl, e.expiresAt, cursor, e.etag, ...servedColumns(e.body), digest ?? contentDigest(e.body), writer, bytes] as const;
      if (old === undefined) this.#insert.run(e.handle, ...args);
      else this.#update.run(...args, e.handle, expectCursor);
      this.#addUsage.run((e.deleted ? 0 : 1) - (old && old.deleted === 0 ? 1 : 0), "records");
      this.#addUsage.run(bytes - (old?.bytes ?? 0), "bytes");
      // Per writer: live rows only (a tombstone counts in the total bytes, not against a key).
      if (old && old.deleted === 0) this.#addWriter.run(old.writer, -1, -old.bytes);
      if (!e.deleted) this.#addWriter.run(writer, 1, bytes);
      this.#db.exec("RELEASE put");
    } catch (err) {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK TO put; RELEASE put");
      throw err;
    }
    await this.#committed();
    return { ...e, cursor };
  }

  /** Opens this turn's transaction if none is open; it commits once the turn's other work is done. */
  #joinGroup(): void {
    if (this.#group) return;
    this.#db.exec("BEGIN IMMEDIATE");
    this.#group = [];
    setImmediate(() => this.#commitGroup());
  }

  #committed(): Promise<void> {
    return new Promise((resolve, reject) => this.#group!.push({ resolve, reject }));
  }

  /** Commits the group transaction now (a write with its own transaction comes next, or the turn ended). */
  #commitGroup(): void {
    const waiting = this.#group;
    if (!waiting) return;
    this.#group = null;
    try {
      this.#db.exec("COMMIT");
    } catch (err) {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      for (const w of waiting) w.reject(err as Error);
      return;
    }
    for (const w of waiting) w.resolve();
  }

  async served(handle: string): Promise<Served | undefined> {
    const r = this.#served.get(handle) as { body: string; etag: string; deleted: number; valid_until: number; ttl: number } | undefined;
    return r ? { text: r.body, etag: r.etag, deleted: r.deleted === 1, validUntil: r.valid_until, ttl: r.ttl } : undefined;
  }

  async handles(): Promise<string[]> {
    return (this.#handles.all() as { handle: string }[]).map((r) => r.handle);
  }

  async catalogPage(after: string, limit: number): Promise<CatalogRow[]> {
    return (this.#catalog.all(after, limit) as unknown as CatalogRow[]).map((r) => ({ handle: r.handle, seq: r.seq, digest: r.digest }));
  }

  async changes(since: number, bound: PageBound): Promise<Entry[]> {
    const n = fitting((this.#changeSizes.all(since, bound.limit) as { bytes: number }[]).map((r) => r.bytes), bound.maxBytes);
    return n === 0 ? [] : (this.#changes.all(since, n) as unknown as Row[]).map(toEntry);
  }

  async head(): Promise<number> {
    return (this.#head.get() as { v: number }).v;
  }

  async byAgentCard(url: string): Promise<string[]> {
    return (this.#byCard.all(url) as { handle: string }[]).map((r) => r.handle);
  }

  async purge(nowMs: number): Promise<number> {
    this.#commitGroup();
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const gone = this.#purge.all(nowMs) as { bytes: number }[];
      this.#addUsage.run(-gone.reduce((a, r) => a + r.bytes, 0), "bytes");
      this.#db.exec("COMMIT");
      return gone.length;
    } catch (err) {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      throw err;
    }
  }

  async count(): Promise<number> {
    return (this.#count.get() as { n: number }).n;
  }

  async close(): Promise<void> {
    if (this.#db.isOpen) {
      this.#commitGroup();
      this.#db.close();
    }
  }
}
