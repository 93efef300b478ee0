/**
 * The shared record store: PostgreSQL, for one registry run as several replicas behind one
 * name. Client: postgres.js (measured against pg in bench/registry.pgclient.ts: 1.8× the
 * primary-key reads, 1.1× the conditional writes). Writes take one transaction-scoped advisory
 * lock, so change-feed cursors are handed out in commit order (a reader never skips a write
 * that committed late), and replace a version only if its cursor is still the one read: two
 * replicas never both accept conflicting versions.
 */
import postgres from "postgres";
import { servedColumns } from "./served.ts";
import type { Entry, RecordStore, Served } from "./store.ts";

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
    });
  }

  async get(handle: string): Promise<Entry | undefined> {
    await this.#ready;
    const [r] = await this.#sql<Row[]>`SELECT * FROM pilox_registry_records WHERE handle = ${handle}`;
    return r ? toEntry(r) : undefined;
  }

  async put(e: Omit<Entry, "cursor">, expectCursor: number | null): Promise<Entry | "conflict"> {
    await this.#ready;
    return this.#sql.begin(async (t) => {
      await t`SELECT pg_advisory_xact_lock(${WRITE_LOCK})`;
      const [{ c }] = (await t`SELECT nextval('pilox_registry_cursor') AS c`) as unknown as [{ c: string }];
      const cursor = Number(c);
      const [valid_until, ttl] = servedColumns(e.body);
      const v = { seq: e.seq, body: JSON.stringify(e.body), deleted: e.deleted, keys: JSON.stringify(e.keys), agent_card_url: e.agentCardUrl, expires_at: e.expiresAt, cursor, etag: e.etag, valid_until, ttl };
      const res =
        expectCursor === null
          ? await t`INSERT INTO pilox_registry_records (handle, seq, body, deleted, keys, agent_card_url, expires_at, cursor, etag, valid_until, ttl)
                    VALUES (${e.handle}, ${v.seq}, ${v.body}, ${v.deleted}, ${v.keys}, ${v.agent_card_url}, ${v.expires_at}, ${v.cursor}, ${v.etag}, ${v.valid_until}, ${v.ttl})
                    ON CONFLICT (handle) DO NOTHING`
          : await t`UPDATE pilox_registry_records SET seq = ${v.seq}, body = ${v.body}, deleted = ${v.deleted}, keys = ${v.keys},
                      agent_card_url = ${v.agent_card_url}, expires_at = ${v.expires_at}, cursor = ${v.cursor}, etag = ${v.etag},
                      valid_until = ${v.valid_until}, ttl = ${v.ttl}
                    WHERE handle = ${e.handle} AND cursor = ${expectCursor}`;
      return res.count === 1 ? { ...e, cursor } : "conflict";
    }) as Promise<Entry | "conflict">;
  }

  async served(handle: string): Promise<Served | undefined> {
    await this.#ready;
    const [r] = await this.#sql<{ body: string; etag: string; deleted: boolean; valid_until: string; ttl: number }[]>`SELECT body, etag, deleted, valid_until, ttl FROM pilox_registry_records WHERE handle = ${handle}`;
    return r ? { text: r.body, etag: r.etag, deleted: r.deleted, validUntil: Number(r.valid_until), ttl: r.ttl } : undefined;
  }

  async handles(): Promise<string[]> {
    await this.#ready;
    return (await this.#sql<{ handle: string }[]>`SELECT handle FROM pilox_registry_records WHERE NOT deleted ORDER BY handle COLLATE "C"`).map((r) => r.handle);
  }

  async changes(since: number, limit: number): Promise<Entry[]> {
    await this.#ready;
    return (await this.#sql<Row[]>`SELECT * FROM pilox_registry_records WHERE cursor > ${since} ORDER BY cursor LIMIT ${limit}`).map(toEntry);
  }

  async byAgentCard(url: string): Promise<string[]> {
    await this.#ready;
    return (await this.#sql<{ handle: string }[]>`SELECT handle FROM pilox_registry_records WHERE agent_card_url = ${url} AND NOT deleted ORDER BY handle COLLATE "C"`).map((r) => r.handle);
  }

  async purge(nowMs: number): Promise<number> {
    await this.#ready;
    return (await this.#sql`DELETE FROM pilox_registry_records WHERE deleted AND expires_at > 0 AND expires_at <= ${nowMs}`).count;
  }

  async count(): Promise<number> {
    await this.#ready;
    const [r] = await this.#sql<{ n: string }[]>`SELECT count(*) AS n FROM pilox_registry_records WHERE NOT deleted`;
    return Number(r!.n);
  }

  async close(): Promise<void> {
    await this.#sql.end({ timeout: 5 });
  }
}
