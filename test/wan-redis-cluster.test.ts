/**
 * The WAN's receiving site on a Redis Cluster of three masters with a replica each: frames whose
 * entries go to durable channels on three different masters, each stream taking its entries in
 * its own atomic step with its own sequence memory beside it (same hash slot). 10,000 messages
 * while one master is failed over by hand (CLUSTER FAILOVER on its replica) and another is
 * killed -9 and replaced by its replica: none lost (wait_replicas = 1), none repeated.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import type { Appliance } from "../src/daemon/appliance.ts";
import { createKeyFile } from "../src/identity/index.ts";
import { startAppliance, untilOnWan } from "./helpers/appliance.ts";
import { waitFor } from "./helpers/bus.ts";
import { cli } from "./helpers/cli.ts";
import { Deliveries } from "./helpers/deliveries.ts";
import { startNats, type TestNats } from "./helpers/nats.ts";
import { freePort, startRedis, startRedisCluster, type TestCluster, type TestRedis } from "./helpers/redis.ts";
import { writeSite } from "./helpers/site.ts";
import { scratch, SECRET_A, SECRET_B } from "./helpers/tmp.ts";

const PREFIX = "pilox-mesh:stream:";
const s = scratch();
let cluster: TestCluster;
let nats: TestNats;
let redisA: TestRedis;
let a: Appliance, b: Appliance;
let channels: string[] = [];
const got = new Deliveries();

/** Port of the master serving `key`, and of its replica, as the cluster says now. */
async function ownerOf(key: string): Promise<{ master: number; replica: number }> {
  const r = new Redis(cluster.nodes.find((n) => n.pid() !== undefined)!.port);
  try {
    const slot = Number(await r.call("CLUSTER", "KEYSLOT", key));
    for (const [from, to, master, replica] of (await r.call("CLUSTER", "SLOTS")) as [number, number, [string, number], [string, number] | undefined][]) {
      if (slot >= from && slot <= to) return { master: master[1], replica: replica?.[1] ?? 0 };
    }
  } finally {
    r.disconnect();
  }
  throw new Error(`no node serves ${key}`);
}

async function role(port: number): Promise<string> {
  const r = new Redis(port);
  try {
    return String(((await r.call("ROLE")) as unknown[])[0]);
  } finally {
    r.disconnect();
  }
}

before(async () => {
  [cluster, nats, redisA] = await Promise.all([startRedisCluster(3, 1), startNats(), startRedis()]);
  // One channel per master, so a frame's entries go to three nodes.
  const byMaster = new Map<number, string>();
  for (let i = 0; byMaster.size < 3 && i < 200; i++) {
    const { master } = await ownerOf(`${PREFIX}c${i}`);
    if (!byMaster.has(master)) byMaster.set(master, `c${i}`);
  }
  channels = [...byMaster.values()];
  assert.equal(channels.length, 3);
  const [portA, portB] = [await freePort(), await freePort()];
  const keyA = createKeyFile(s.path("a-id.key"));
  const keyB = createKeyFile(s.path("b-id.key"));
  const wan = { natsUrls: [nats.url], extra: "ack_wait_seconds = 5" };
  writeSite({ dir: s.dir, name: "a", port: portA, secret: SECRET_A, redis: redisA.url, blockMs: 200, logLevel: "warn", durable: channels, peer: { origin: `http://127.0.0.1:${portB}`, keys: [keyB.publicKeyHex], accept: [], forward: channels, transport: "wan" }, wan });
  writeSite({
    dir: s.dir, name: "b", port: portB, secret: SECRET_B, redis: "", redisCluster: cluster.nodes.slice(0, 3).map((n) => `127.0.0.1:${n.port}`), blockMs: 200, logLevel: "warn",
    redisExtra: "wait_replicas = 1\nwait_timeout_ms = 2000",
    durable: channels,
    peer: { origin: `http://127.0.0.1:${portA}`, keys: [keyA.publicKeyHex], accept: channels, forward: [], transport: "wan" },
    wan,
  });
  a = await startAppliance(s.path("a.toml"), s.path("a-state"));
  b = await startAppliance(s.path("b.toml"), s.path("b-state"));
  for (const ch of channels) await b.bus.subscribe(ch, got.record, { group: "cluster-test" });
  await untilOnWan("both sites on NATS", a, b);
});

after(async () => {
  await Promise.all([a?.stop(200), b?.stop(200)]);
  await Promise.all([cluster?.stop(), nats?.stop(), redisA?.stop()]);
  s.cleanup();
});

describe("WAN delivery on a Redis Cluster", { timeout: 180_000 }, () => {
  it("check-config takes [wan] with bus.redis.cluster_nodes", async () => {
    const r = await cli(["--config", s.path("b.toml"), "--state-dir", s.path("b-check"), "check-config", "--quiet"]);
    assert.equal(r.code, 0, r.stderr);
  });

  it("10,000 messages over three masters while one fails over by hand and another is killed -9: none lost, none repeated", async () => {
    const N = 10_000;
    // Thirty at a time, so A's frames carry entries for all three channels (three masters).
    const sending = (async () => {
      for (let i = 0; i < N; i += 30) await Promise.all(Array.from({ length: Math.min(30, N - i) }, (_, k) => a.bus.publish(channels[(i + k) % 3]!, { type: "wan.cluster", payload: { i: i + k } })));
    })();
    await waitFor(() => got.received() >= 2_000, 60_000, "2,000 at B");
    // A manual failover: the replica of the first channel's master takes over, without loss.
    const first = await ownerOf(PREFIX + channels[0]);
    const replica = new Redis(first.replica);
    await replica.call("CLUSTER", "FAILOVER");
    replica.disconnect();
    await waitFor(async () => (await role(first.replica)) === "master", 30_000, "the replica promoted");
    await waitFor(() => got.received() >= 5_000, 90_000, "5,000 at B");
    // A crash: the second channel's master killed; its replica is promoted by the cluster.
    const second = await ownerOf(PREFIX + channels[1]);
    const victim = cluster.nodes.find((n) => n.port === second.master)!;
    await victim.kill("SIGKILL");
    await waitFor(async () => (await role(second.replica)) === "master", 30_000, "the killed master's replica promoted");
    // Back (as a service manager restarts it), it rejoins as the new master's replica: until
    // then that shard has no replica, and wait_replicas = 1 holds its writes back (no loss).
    await victim.restart();
    await sending;
    try {
        await waitFor(() => got.received() >= N, 120_000, `${N} at B`);
    } catch (err) {
      const st = await b.status();
      const sa = await a.status();
      const dl = await cli(["wan", "dlq", "list", "--json", "--limit", "10000", "--socket", s.path("b.sock")]);
      const reasons: Record<string, number> = {};
      for (const d of JSON.parse(dl.stdout || "[]") as { reason: string; detail: string | null }[]) reasons[`${d.reason}: ${d.detail}`] = (reasons[`${d.reason}: ${d.detail}`] ?? 0) + 1;
      throw new Error(`${(err as Error).message}: ${JSON.stringify(reasons)} ${got.received()} received (${got.seen.size} distinct); B: ${JSON.stringify({ wan: st.wan, bus: st.bus })}; A: ${JSON.stringify(sa.wan?.peers)}`);
    }
    await new Promise((r) => setTimeout(r, 1_000));
    got.assertExactlyOnce(N);
  });
});
