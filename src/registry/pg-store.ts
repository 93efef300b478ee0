/**
 * The shared record store: PostgreSQL, for one registry run as several replicas behind one
 * name. Client: postgres.js (measured against pg in bench/registry.pgclient.ts: 1.8× the
 * primary-key reads, 1.1× the conditional writes). Writes take one transaction-scoped advisory
 * lock, so change-feed cursors are handed out in commit order (a reader never skips a write
 * that committed late), and replace a version only if its cursor is still the one read: two
 * replicas never both accept conflicting versions. The format version and the usage totals
 * (quota.ts) live in pilox_registry_meta, changed under the same lock.
 */
import postgres from "postgres";
import { quotaRefusal, writerOf, type Quota, type QuotaExceeded } from "./quota.ts";
import { contentDigest } from "./digest.ts";
import { servedColumns } from "./served.ts";
import { STORE_FORMAT, StoreFormatError, StoreUnavailableError, fitting, type CatalogRow, type Entry, type NewEntry, type PageBound, type RecordStore, type Served } from "./store.ts";

/** Any fixed number: the lock that orders this registry's writes. */
const WRITE_LOCK = 0x70696c6f;

interface Row {
  handle: string;
  seq: string | number;
  body: string;
  deleted: boolean;
  keys: string;
  agent_card_url: string;
  expires_at: string | number;
  cursor: string | number;
  etag: string;
}

const toEntry = (r: Row): Entry => ({
  handle: r.handle,
  seq: Number(r.seq),
  body: JSON.parse(r.body) as Entry["body"],
  deleted: r.deleted,
  keys: JSON.parse(r.keys) as string[],
  agentCardUrl: r.agent_card_url,
  expiresAt: Number(r.expires_at),
  cursor: Number(r.cursor),
  etag: r.etag,
});

export interface PgTarget {
  url: string;
  password?: string;
  ca?: Buffer;
}

/** Rows migrated per statement when an older table is opened. */
const MIGRATE_PAGE = 500;

/**
 * Errors that mean "the server cannot be reached or is going away", as postgres.js reports
 * them (its own codes) or PostgreSQL does (class 08 connection, 57P0x shutdown or start-up).
 */
function unavailable(err: unknown): boolean {
  const code = String((err as { code?: unknown })?.code ?? "");
  return /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENOTFOUND|CONNECTION_\w+|CONNECT_TIMEOUT|08\w{3}|57P0[1-4])$/.test(code);
}

export class PgStore implements RecordStore {
  readonly #sql: postgres.Sql;
  #migrated: Promise<void> | undefined;

  constructor(t: PgTarget) {
    this.#sql = postgres(t.url, {
      max: 8,
      onnotice: () => {},
      ...(t.password ? { password: t.password } : {}),
      ...(t.ca ? { ssl: { ca: t.ca.toString("utf8") } } : {}),
      connect_timeout: 10,
    });
  }

  /** Runs `f` once the schema is there; a server that cannot be reached is StoreUnavailableError. */
  async #run<T>(f: () => Promise<T>): Promise<T> {
    try {
      await this.#ready;
      return await f();
    } catch (err) {
      if (unavailable(err)) throw new StoreUnavailableError(`PostgreSQL unavailable: ${(err as Error).message}`);
      throw err;
    }
  }

  /** The schema, made once; a failure (the server away at start) is tried again on the next call. */
  get #ready(): Promise<void> {
    this.#migrated ??= this.#migrate().catch((err: unknown) => {
      this.#migrated = undefined;
      throw err;
    });
    return this.#migrated;
  }

  async #migrate(): Promise<void> {
    await this.#sql.begin(async (t) => {
      await t`SELECT pg_advisory_xact_lock(${WRITE_LOCK})`;
      await t`CREATE TABLE IF NOT EXISTS pilox_registry_meta (k text PRIMARY KEY, v bigint NOT NULL)`;
      const [fmt] = await t<{ v: string }[]>`SELECT v FROM pilox_registry_meta WHERE k = 'format'`;
      const format = fmt ? Number(fmt.v) : 1;
      if (format > STORE_FORMAT) throw new StoreFormatError(`the PostgreSQL registry tables have format ${format}; this build reads format ${STORE_FORMAT} and older: run the newer pilox-mesh on every replica`);
      await t`CREATE TABLE IF NOT EXISTS pilox_registry_records (
        handle text PRIMARY KEY,
        seq bigint NOT NULL,
        body text NOT NULL,
        deleted boolean NOT NULL,
        keys text NOT NULL,
        agent_card_url text NOT NULL,
        expires_at bigint NOT NULL,
        cursor bigint NOT NULL UNIQUE,
        etag text NOT NULL,
        valid_until bigint NOT NULL,
        ttl integer NOT NULL
      )`;
      await t`CREATE INDEX IF NOT EXISTS pilox_registry_records_card ON pilox_registry_records (agent_card_url)`;
      await t`CREATE SEQUENCE IF NOT EXISTS pilox_registry_cursor`;
      if (format < 2) {
        await t`ALTER TABLE pilox_registry_records ADD COLUMN IF NOT EXISTS digest text NOT NULL DEFAULT ''`;
        await t`ALTER TABLE pilox_registry_records ADD COLUMN IF NOT EXISTS writer text NOT NULL DEFAULT ''`;
        await t`ALTER TABLE pilox_registry_records ADD COLUMN IF NOT EXISTS bytes bigint NOT NULL DEFAULT 0`;
        // Existing rows in pages: memory does not grow with the table.
        let after = -1;
        for (;;) {
          const rows = await t<{ handle: string; body: string; keys: string; cursor: string }[]>`SELECT handle, body, keys, cursor FROM pilox_registry_records WHERE cursor > ${after} ORDER BY cursor LIMIT ${MIGRATE_PAGE}`;
          if (rows.length === 0) break;
          for (const r of rows) {
            await t`UPDATE pilox_registry_records SET digest = ${contentDigest(JSON.parse(r.body) as Entry["body"])}, writer = ${writerOf(JSON.parse(r.keys) as string[])}, bytes = ${Buffer.byteLength(r.body)} WHERE handle = ${r.handle}`;
          }
          after = Number(rows[rows.length - 1]!.cursor);
        }
        await t`CREATE TABLE IF NOT EXISTS pilox_registry_writers (writer text PRIMARY KEY, records bigint NOT NULL, bytes bigint NOT NULL)`;
        await t`DELETE FROM pilox_registry_writers`;
        await t`INSERT INTO pilox_registry_writers (writer, records, bytes) SELECT writer, count(*), coalesce(sum(bytes), 0) FROM pilox_registry_records WHERE NOT deleted GROUP BY writer`;
        await t`INSERT INTO pilox_registry_meta (k, v) SELECT 'records', count(*) FROM pilox_registry_records WHERE NOT deleted ON CONFLICT (k) DO UPDATE SET v = excluded.v`;
        await t`INSERT INTO pilox_registry_meta (k, v) SELECT 'bytes', coalesce(sum(bytes), 0) FROM pilox_registry_records ON CONFLICT (k) DO UPDATE SET v = excluded.v`;
        await t`INSERT INTO pilox_registry_meta (k, v) VALUES ('format', ${STORE_FORMAT}) ON CONFLICT (k) DO UPDATE SET v = excluded.v`;
      }
    });
  }

  get(handle: string): Promise<Entry | undefined> {
    return this.#run(async () => {
      const [r] = await this.#sql<Row[]>`SELECT * FROM pilox_registry_records WHERE handle = ${handle}`;
      return r ? toEntry(r) : undefined;
    });
  }

  put({ digest, ...e }: NewEntry, expectCursor: number | null, quota?: Quota): Promise<Entry | "conflict" | QuotaExceeded> {
    const body = JSON.stringify(e.body);
    const bytes = Buffer.byteLength(body);
    const writer = writerOf(e.keys);
    return this.#run(
      () =>
        this.#sql.begin(async (t) => {
          await t`SELECT pg_advisory_xact_lock(${WRITE_LOCK})`;
          const [old] = await t<{ deleted: boolean; bytes: string; writer: string; cursor: string }[]>`SELECT deleted, bytes, writer, cursor FROM pilox_registry_records WHERE handle = ${e.handle}`;
          if ((old ? Number(old.cursor) : null) !== expectCursor) return "conflict";
          const change = { old: old && { live: !old.deleted, bytes: Number(old.bytes), writer: old.writer }, next: { live: !e.deleted, bytes, writer } };
          if (quota) {
            const [u] = await t<{ records: string; bytes: string; wn: string; wb: string }[]>`SELECT
              (SELECT v FROM pilox_registry_meta WHERE k = 'records') AS records, (SELECT v FROM pilox_registry_meta WHERE k = 'bytes') AS bytes,
              coalesce((SELECT records FROM pilox_registry_writers WHERE writer = ${writer}), 0) AS wn,
              coalesce((SELECT bytes FROM pilox_registry_writers WHERE writer = ${writer}), 0) AS wb`;
            const refused = quotaRefusal(quota, { records: Number(u!.records), bytes: Number(u!.bytes), writerRecords: Number(u!.wn), writerBytes: Number(u!.wb) }, change);
            if (refused) return refused;
          }
          const [{ c }] = (await t`SELECT nextval('pilox_registry_cursor') AS c`) as unknown as [{ c: string }];
          const cursor = Number(c);
          const [valid_until, ttl] = servedColumns(e.body);
          const v = { seq: e.seq, body, deleted: e.deleted, keys: JSON.stringify(e.keys), agent_card_url: e.agentCardUrl, expires_at: e.expiresAt, cursor, etag: e.etag, valid_until, ttl, digest: digest ?? contentDigest(e.body), writer, bytes };
          if (old === undefined) {
            await t`INSERT INTO pilox_registry_records (handle, seq, body, deleted, keys, agent_card_url, expires_at, cursor, etag, valid_until, ttl, digest, writer, bytes)
                    VALUES (${e.handle}, ${v.seq}, ${v.body}, ${v.deleted}, ${v.keys}, ${v.agent_card_url}, ${v.expires_at}, ${v.cursor}, ${v.etag}, ${v.valid_until}, ${v.ttl}, ${v.digest}, ${v.writer}, ${v.bytes})`;
          } else {
            await t`UPDATE pilox_registry_records SET seq = ${v.seq}, body = ${v.body}, deleted = ${v.deleted}, keys = ${v.keys},
                      agent_card_url = ${v.agent_card_url}, expires_at = ${v.expires_at}, cursor = ${v.cursor}, etag = ${v.etag},
                      valid_until = ${v.valid_until}, ttl = ${v.ttl}, digest = ${v.digest}, writer = ${v.writer}, bytes = ${v.bytes}
                    WHERE handle = ${e.handle}`;
          }
          await t`UPDATE pilox_registry_meta SET v = v + ${(e.deleted ? 0 : 1) - (old && !old.deleted ? 1 : 0)} WHERE k = 'records'`;
          await t`UPDATE pilox_registry_meta SET v = v + ${bytes - Number(old?.bytes ?? 0)} WHERE k = 'bytes'`;
          // Per writer: live rows only (a tombstone counts in the total bytes, not against a key).
          if (old && !old.deleted) await t`UPDATE pilox_registry_writers SET records = records - 1, bytes = bytes - ${Number(old.bytes)} WHERE writer = ${old.writer}`;
          if (!e.deleted) {
            await t`INSERT INTO pilox_registry_writers (writer, records, bytes) VALUES (${writer}, 1, ${bytes})
                    ON CONFLICT (writer) DO UPDATE SET records = pilox_registry_writers.records + 1, bytes = pilox_registry_writers.bytes + excluded.bytes`;
          }
          return { ...e, cursor };
        }) as Promise<Entry | "conflict" | QuotaExceeded>,
    );
  }

  served(handle: string): Promise<Served | undefined> {
    return this.#run(async () => {
      const [r] = await this.#sql<{ body: string; etag: string; deleted: boolean; valid_until: string; ttl: number }[]>`SELECT body, etag, deleted, valid_until, ttl FROM pilox_registry_records WHERE handle = ${handle}`;
      return r ? { text: r.body, etag: r.etag, deleted: r.deleted, validUntil: Number(r.valid_until), ttl: r.ttl } : undefined;
    });
  }

  handles(): Promise<string[]> {
    return this.#run(async () => (await this.#sql<{ handle: string }[]>`SELECT handle FROM pilox_registry_records WHERE NOT deleted ORDER BY handle COLLATE "C"`).map((r) => r.handle));
  }

  catalogPage(after: string, limit: number): Promise<CatalogRow[]> {
    return this.#run(async () =>
      (await this.#sql<{ handle: string; seq: string; digest: string }[]>`SELECT handle, seq, digest FROM pilox_registry_records
        WHERE NOT deleted AND handle COLLATE "C" > ${after} ORDER BY handle COLLATE "C" LIMIT ${limit}`).map((r) => ({ handle: r.handle, seq: Number(r.seq), digest: r.digest })),
    );
  }

  changes(since: number, bound: PageBound): Promise<Entry[]> {
    return this.#run(async () => {
      const sizes = await this.#sql<{ bytes: string }[]>`SELECT bytes FROM pilox_registry_records WHERE cursor > ${since} ORDER BY cursor LIMIT ${bound.limit}`;
      const n = fitting(sizes.map((r) => Number(r.bytes)), bound.maxBytes);
      if (n === 0) return [];
      return (await this.#sql<Row[]>`SELECT * FROM pilox_registry_records WHERE cursor > ${since} ORDER BY cursor LIMIT ${n}`).map(toEntry);
    });
  }

  head(): Promise<number> {
    return this.#run(async () => {
      const [r] = await this.#sql<{ c: string | null }[]>`SELECT max(cursor) AS c FROM pilox_registry_records`;
      return Number(r?.c ?? 0);
    });
  }

  byAgentCard(url: string): Promise<string[]> {
    return this.#run(async () => (await this.#sql<{ handle: string }[]>`SELECT handle FROM pilox_registry_records WHERE agent_card_url = ${url} AND NOT deleted ORDER BY handle COLLATE "C"`).map((r) => r.handle));
  }

  purge(nowMs: number): Promise<number> {
    return this.#run(
      () =>
        this.#sql.begin(async (t) => {
          await t`SELECT pg_advisory_xact_lock(${WRITE_LOCK})`;
          const gone = await t<{ bytes: string }[]>`DELETE FROM pilox_registry_records WHERE deleted AND expires_at > 0 AND expires_at <= ${nowMs} RETURNING bytes`;
          await t`UPDATE pilox_registry_meta SET v = v - ${gone.reduce((a, r) => a + Number(r.bytes), 0)} WHERE k = 'bytes'`;
          return gone.length;
        }) as Promise<number>,
    );
  }

  count(): Promise<number> {
    return this.#run(async () => {
      const [r] = await this.#sql<{ n: string }[]>`SELECT count(*) AS n FROM pilox_registry_records WHERE NOT deleted`;
      return Number(r!.n);
    });
  }

  async close(): Promise<void> {
    await this.#sql.end({ timeout: 5 });
  }
}
