/**
 * Redis through Sentinel: a master, its replica and one Sentinel (quorum 1), each a real
 * redis-server. The bus finds the master through the Sentinel, and after the master is killed
 * and the replica promoted it follows the new master: durable messages published during the
 * failover wait in the spool and are delivered once, pub/sub works again.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { loadConfig } from "../src/config/index.ts";
import { redisTargetOf } from "../src/daemon/bus-factory.ts";
import type { MeshBus } from "../src/bus/index.ts";
import { makeBus, startReady, waitFor } from "./helpers/bus.ts";
import { startRedis, startSentinel, type TestRedis, type TestSentinel } from "./helpers/redis.ts";
import { scratch, SECRET_A } from "./helpers/tmp.ts";

const NAME = "pilox-test";
const k1 = { id: "k1", secret: Buffer.from(SECRET_A) };
const channels = { jobs: { durable: true } };
const s = scratch();

describe("Redis Sentinel", { timeout: 120_000 }, () => {
  let master: TestRedis;
  let replica: TestRedis;
  let sentinel: TestSentinel;
  const buses: MeshBus[] = [];

  before(async () => {
    master = await startRedis({ aof: true });
    replica = await startRedis({ aof: true, args: ["--replicaof", "127.0.0.1", String(master.port)] });
    sentinel = await startSentinel({ masterPort: master.port, name: NAME });
    // The Sentinel learns of the replica from the master; until then it could not fail over.
    const sc = new Redis({ port: sentinel.port, host: "127.0.0.1", lazyConnect: true });
    await sc.connect();
    await waitFor(async () => ((await sc.call("SENTINEL", "REPLICAS", NAME)) as unknown[]).length === 1, 20_000, "sentinel sees the replica");
    sc.disconnect();
    // And the replica has finished its first sync (on a loaded machine this takes a while).
    const rc = new Redis(replica.url);
    try {
      await waitFor(async () => /master_link_status:up/.test(await rc.info("replication")), 30_000, "replica in sync");
    } finally {
      rc.disconnect();
    }
  }, { timeout: 60_000 });

  after(async () => {
    await Promise.all(buses.map((b) => b.close().catch(() => {})));
    await sentinel?.stop();
    await replica?.stop();
    await master?.stop();
    s.cleanup();
  }, { timeout: 30_000 });

  const target = () => ({ hosts: [{ host: "127.0.0.1", port: sentinel.port }], master: NAME, db: 0 });

  it("the configuration names Sentinels and a master, and check-config refuses half of it", () => {
    const keys = `[[bus.keys]]\nid = "k1"\nsecret_file = "${s.write("k1.key", SECRET_A)}"\n`;
    const ok = s.write("sentinel.toml", `${keys}[bus.redis]\nsentinels = ["127.0.0.1:26379", "[::1]:26380"]\nsentinel_master = "${NAME}"\n`);
    const c = loadConfig({ path: ok, stateDir: s.path("st") }).config;
    assert.equal(c.bus.backend, "redis");
    assert.deepEqual(redisTargetOf(c, {}).sentinel, {
      hosts: [
        { host: "127.0.0.1", port: 26379 },
        { host: "::1", port: 26380 },
      ],
      master: NAME,
      db: 0,
    });
    const half = s.write("half.toml", `${keys}[bus.redis]\nsentinels = ["127.0.0.1:26379"]\n`);
    assert.throws(() => loadConfig({ path: half, stateDir: s.path("st") }), /bus\.redis\.sentinel_master/);
    const both = s.write("both.toml", `${keys}[bus.redis]\nurl = "redis://127.0.0.1:6379"\nsentinels = ["127.0.0.1:26379"]\nsentinel_master = "m"\n`);
    assert.throws(() => loadConfig({ path: both, stateDir: s.path("st") }), /either bus\.redis\.url .* or bus\.redis\.sentinels/);
  });

  it("finds the master through the Sentinel, follows a failover, and loses no durable message", async () => {
    const { bus: pub } = makeBus({ sentinel: target(), keys: [k1], channels, spoolDir: s.path("spool") });
    const { bus: sub } = makeBus({ sentinel: target(), keys: [k1], channels, group: "g", consumer: "c", claimIdleMs: 2_000 });
    buses.push(pub, sub);
    await startReady(pub, sub);
    const seen = new Map<number, number>();
    await sub.subscribe("jobs", (d) => void seen.set(d.message["n"] as number, (seen.get(d.message["n"] as number) ?? 0) + 1));
    const live: number[] = [];
    await sub.subscribe("events", (d) => void live.push(d.message["n"] as number));

    for (let n = 0; n < 200; n++) await pub.publish("jobs", { n });
    await waitFor(() => seen.size === 200, 20_000, "first 200");
    await pub.publish("events", { n: 1 });
    await waitFor(() => live.includes(1), 10_000, "pub/sub through the sentinel's master");

    // Everything so far is on the replica before the master dies (replication is asynchronous:
    // see the operator guide), then the master goes and the replica is promoted.
    const m = new Redis(master.url, { retryStrategy: () => null });
    m.on("error", () => {});
    try {
      assert.equal(await m.call("WAIT", 1, 20_000), 1);
    } finally {
      m.disconnect();
    }
    await master.kill("SIGKILL");

    let spooled = 0;
    for (let n = 200; n < 500; n++) {
      const r = await pub.publish("jobs", { n });
      if (r.spooled) spooled++;
      if (n % 20 === 0) await new Promise((r) => setTimeout(r, 20));
    }
    await waitFor(() => seen.size === 500, 60_000, `all 500 (have ${seen.size})`);
    assert.ok(spooled > 0, "some publishes waited in the spool while there was no master");
    assert.deepEqual([...seen.values()].filter((c) => c !== 1), [], "each delivered exactly once");

    const sc = new Redis({ port: sentinel.port, host: "127.0.0.1", retryStrategy: () => null });
    sc.on("error", () => {});
    let addr: string[];
    try {
      addr = (await sc.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", NAME)) as string[];
    } finally {
      sc.disconnect();
    }
    assert.equal(Number(addr[1]), replica.port, "the replica is the master now");

    await waitFor(
      async () => {
        await pub.publish("events", { n: 2 }).catch(() => {});
        return live.includes(2);
      },
      20_000,
      "pub/sub after the failover",
    );
  });
});
