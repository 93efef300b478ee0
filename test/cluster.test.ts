/**
 * Redis Cluster: three masters made with redis-cli. The bus, configured with two of the nodes,
 * finds the rest, delivers pub/sub messages (PUBLISH reaches every node) and durable channels
 * whose streams live on different nodes, each message once.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { createBus } from "../src/daemon/bus-factory.ts";
import type { MeshBus } from "../src/bus/index.ts";
import { loadConfig, resolveSecrets } from "../src/config/index.ts";
import { silentLogger } from "../src/log/index.ts";
import { untilReady, waitFor } from "./helpers/bus.ts";
import { startRedisCluster, type TestCluster } from "./helpers/redis.ts";
import { scratch, SECRET_A } from "./helpers/tmp.ts";

const s = scratch();
const CHANNELS = ["orders", "invoices", "tasks", "audit"];

describe("Redis Cluster", { timeout: 90_000 }, () => {
  let cluster: TestCluster;
  const buses: MeshBus[] = [];

  before(async () => {
    cluster = await startRedisCluster(3);
  }, { timeout: 60_000 });

  after(async () => {
    await Promise.all(buses.map((b) => b.close().catch(() => {})));
    await cluster?.stop();
    s.cleanup();
  }, { timeout: 30_000 });

  const config = (name: string, redisTable: string) =>
    s.write(
      name,
      `[[bus.keys]]\nid = "k1"\nsecret_file = "${s.write("k1.key", SECRET_A)}"\n` +
        CHANNELS.map((c) => `[[bus.channels]]\nname = "${c}"\ndurable = true\n`).join("") +
        `[bus.redis]\n${redisTable}`,
    );

  const busFrom = async (file: string, stateDir: string): Promise<MeshBus> => {
    const loaded = loadConfig({ path: file, stateDir: s.path(stateDir), env: {} });
    const bus = await createBus(loaded.config, resolveSecrets(loaded, true), silentLogger);
    buses.push(bus);
    await bus.start();
    await untilReady(bus);
    return bus;
  };

  it("delivers pub/sub and durable messages, the streams spread over the nodes", async () => {
    const seeds = cluster.nodes.slice(0, 2).map((n) => `"127.0.0.1:${n.port}"`).join(", ");
    const file = config("cluster.toml", `cluster_nodes = [${seeds}]\nconsumer_group = "g"\n`);
    const pub = await busFrom(file, "pub");
    const sub = await busFrom(file, "sub");
    const seen = new Map<string, number>();
    const note = (k: string) => void seen.set(k, (seen.get(k) ?? 0) + 1);
    for (const c of CHANNELS) await sub.subscribe(c, (d) => note(`${c}:${d.message["n"]}`));
    const live: number[] = [];
    await sub.subscribe("events", (d) => void live.push(d.message["n"] as number));

    await waitFor(
      async () => {
        await pub.publish("events", { n: 1 });
        return live.includes(1);
      },
      10_000,
      "pub/sub across the cluster",
    );
    for (let n = 0; n < 100; n++) for (const c of CHANNELS) await pub.publish(c, { n });
    await waitFor(() => seen.size === 100 * CHANNELS.length, 20_000, `all durable messages (have ${seen.size})`);
    assert.deepEqual([...seen.values()].filter((x) => x !== 1), [], "each delivered once");

    // The four streams are not all on one node: the cluster really shares the work.
    const holders = new Set<number>();
    for (const n of cluster.nodes) {
      const r = new Redis(n.url);
      for (const c of CHANNELS) {
        const len = await r.call("XLEN", `pilox-mesh:stream:${c}`).catch(() => 0);
        if (Number(len) > 0) holders.add(n.port);
      }
      r.disconnect();
    }
    assert.ok(holders.size >= 2, `streams on ${holders.size} node(s)`);
    assert.ok((await pub.ready()).ok);
  });

  it("durable channels in one hash slot (a tag in stream_prefix) share one blocked read; spread ones still deliver", async () => {
    const many = Array.from({ length: 40 }, (_, i) => `many-${i}`);
    const seeds = cluster.nodes.slice(0, 2).map((n) => `"127.0.0.1:${n.port}"`).join(", ");
    const table = (prefix: string) =>
      s.write(
        `many-${prefix.length}.toml`,
        `[[bus.keys]]\nid = "k1"\nsecret_file = "${s.write("k1.key", SECRET_A)}"\n` +
          many.map((c) => `[[bus.channels]]\nname = "${c}"\ndurable = true\n`).join("") +
          `[bus.redis]\ncluster_nodes = [${seeds}]\nconsumer_group = "g"\nstream_prefix = "${prefix}"\nblock_ms = 30000\n`,
      );
    const clients = async () => {
      let n = 0;
      for (const node of cluster.nodes) {
        const r = new Redis(node.url);
        n += String(await r.client("LIST")).trim().split("\n").length - 1;
        r.disconnect();
      }
      return n;
    };
    for (const [prefix, tagged] of [["{mesh}:many:", true], ["mesh:many:", false]] as const) {
      const file = table(prefix);
      const pub = await busFrom(file, `many-pub-${tagged}`);
      const before = await clients();
      const sub = await busFrom(file, `many-sub-${tagged}`);
      const seen = new Map<string, number>();
      for (const c of many) await sub.subscribe(c, (d) => void seen.set(`${c}:${d.message["n"]}`, (seen.get(`${c}:${d.message["n"]}`) ?? 0) + 1));
      // Tails (resumable readers) of two streams: they wait in the tails' waiter of their slot.
      const tailed: string[] = [];
      for (const c of many.slice(0, 2)) await sub.tail(c, "$", async (d) => void tailed.push(`${c}:${d.message["n"]}`));
      for (let n = 0; n < 3; n++) {
        for (const c of many) await pub.publish(c, { n });
        await waitFor(() => seen.size === many.length * (n + 1), 20_000, `round ${n} with prefix ${prefix} (have ${seen.size})`);
      }
      assert.deepEqual([...seen.values()].filter((x) => x !== 1), [], "each delivered once");
      await waitFor(() => tailed.length === 6, 10_000, `the tails' entries (${tailed.join(" ")})`);
      assert.deepEqual(tailed.filter((t) => t.startsWith(`${many[0]}:`)), [0, 1, 2].map((n) => `${many[0]}:${n}`));
      const held = (await clients()) - before;
      // A cluster client holds a connection to each of the 3 masters. Tagged: command, pub/sub,
      // reads, the consumers' waiter, the tails' waiter. Spread: a waiter per slot (about one per channel).
      if (tagged) assert.ok(held <= 5 * 3, `${held} connections for ${many.length} channels in one slot`);
      else assert.ok(held > 20, `${held} connections: one read per slot`);
      await sub.close();
      await pub.close();
    }
  });

  it("refuses a configuration that names a cluster and something else", () => {
    const both = config("both.toml", `cluster_nodes = ["127.0.0.1:7000"]\nurl = "redis://127.0.0.1:6379"\n`);
    assert.throws(() => loadConfig({ path: both, env: {} }), /bus\.redis\.cluster_nodes: set one of/);
  });
});
