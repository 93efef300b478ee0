/**
 * registry.pgclient: the PostgreSQL client for the shared registry store, picked by measuring
 * the store's two hot statements with `pg` (baseline) and `postgres` (postgres.js) on the same
 * cluster in the same run: a primary-key read, and the conditional update in a transaction.
 * 8 concurrent callers, interleaved rounds, best round reported.
 */
import pg from "pg";
import postgres from "postgres";
import { startPostgres } from "../test/helpers/postgres.ts";
import { report } from "./lib.ts";

const N = Number(process.env["BENCH_N"] ?? 5_000);
const ROUNDS = Number(process.env["BENCH_ROUNDS"] ?? 3);
const CONC = 8;

export async function run(): Promise<void> {
  const cluster = await startPostgres();
  const a = new pg.Pool({ connectionString: cluster.url, max: CONC });
  const b = postgres(cluster.url, { max: CONC, onnotice: () => {} });
  try {
    await a.query("CREATE TABLE r (handle text PRIMARY KEY, seq bigint NOT NULL, body text NOT NULL, cursor bigint NOT NULL)");
    await a.query("INSERT INTO r SELECT 'h' || i, 1, repeat('x', 600), i FROM generate_series(1, 10000) i");
    const readPg = (i: number) => a.query("SELECT * FROM r WHERE handle = $1", [`h${(i % 10000) + 1}`]);
    const readJs = (i: number) => b`SELECT * FROM r WHERE handle = ${`h${(i % 10000) + 1}`}`;
    const writePg = async (i: number) => {
      const c = await a.connect();
      try {
        await c.query("BEGIN");
        const cur = await c.query("SELECT cursor FROM r WHERE handle = $1 FOR UPDATE", [`h${(i % 10000) + 1}`]);
        await c.query("UPDATE r SET seq = seq + 1, cursor = $2 WHERE handle = $1 AND cursor = $3", [`h${(i % 10000) + 1}`, 100000 + i, cur.rows[0].cursor]);
        await c.query("COMMIT");
      } finally {
        c.release();
      }
    };
    const writeJs = (i: number) =>
      b.begin(async (t) => {
        const [cur] = await t`SELECT cursor FROM r WHERE handle = ${`h${(i % 10000) + 1}`} FOR UPDATE`;
        await t`UPDATE r SET seq = seq + 1, cursor = ${200000 + i} WHERE handle = ${`h${(i % 10000) + 1}`} AND cursor = ${cur!["cursor"]}`;
      });
    const rate = async (f: (i: number) => Promise<unknown>) => {
      let next = 0;
      const t0 = performance.now();
      await Promise.all(Array.from({ length: CONC }, async () => {
        while (next < N) await f(next++);
      }));
      return N / ((performance.now() - t0) / 1000);
    };
    for (const [name, fa, fb] of [["read", readPg, readJs], ["conditional_write", writePg, writeJs]] as const) {
      const ra: number[] = [];
      const rb: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        ra.push(await rate(fa));
        rb.push(await rate(fb));
      }
      report(`registry.pgclient.${name}`, "ops/s", Math.max(...ra), Math.max(...rb), { baseline_is: "pg", value_is: "postgres (postgres.js)", concurrency: CONC, rounds: ROUNDS });
    }
  } finally {
    await a.end();
    await b.end();
    await cluster.stop();
  }
}
