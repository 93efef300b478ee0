/**
 * The WAN on a three-node JetStream cluster (three nats-server processes routed into one
 * cluster), with `wan.stream_replicas = 3` and both sites listing every node: 10,000 durable
 * messages A → B while the frame stream's leader is killed -9, and later a second node once the
 * first is back; nothing lost, nothing repeated, and `status` shows the cluster, the stream's
 * leader and its replicas. A stream with fewer replicas than configured is reported, never
 * re-created.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import * as jsMod from "@nats-io/jetstream";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { loadConfig } from "../src/config/index.ts";
import type { Appliance } from "../src/daemon/appliance.ts";
import { createKeyFile } from "../src/identity/index.ts";
import { ensureStreams } from "../src/wan/streams.ts";
import { startAppliance, untilOnWan } from "./helpers/appliance.ts";
import { waitFor } from "./helpers/bus.ts";
import { cli } from "./helpers/cli.ts";
import { Deliveries } from "./helpers/deliveries.ts";
import { startNatsCluster, type TestNatsCluster } from "./helpers/nats.ts";
import { freePort, startRedis, type TestRedis } from "./helpers/redis.ts";
import { writeSite } from "./helpers/site.ts";
import { scratch, SECRET_A, SECRET_B } from "./helpers/tmp.ts";

const STREAM = "PILOX_MESH_WAN_V1";
const s = scratch();
let cluster: TestNatsCluster;
let redisA: TestRedis, redisB: TestRedis;
let a: Appliance, b: Appliance;
let nc: NatsConnection, jsm: JetStreamManager;
const got = new Deliveries();

function site(name: "a" | "b", port: number, peerPort: number, redis: string, secret: string, peerKey: string): string {
  return writeSite({
    dir: s.dir, name, port, secret, redis, blockMs: 200, logLevel: "warn",
    durable: ["a2b"],
    peer: { origin: `http://127.0.0.1:${peerPort}`, keys: [peerKey], accept: name === "b" ? ["a2b"] : [], forward: name === "a" ? ["a2b"] : [], transport: "wan" },
    wan: { natsUrls: cluster.urls, extra: "stream_replicas = 3\nack_wait_seconds = 5\nconnect_timeout_ms = 2000" },
  });
}

async function leader(): Promise<string> {
  let name = "";
  await waitFor(async () => (name = (await jsm.streams.info(STREAM).catch(() => null))?.cluster?.leader ?? "") !== "", 30_000, "a stream leader");
  return name;
}

/** Every replica current and online again (the restarted node caught up). */
async function caughtUp(): Promise<void> {
  await waitFor(
    async () => {
      const c = (await jsm.streams.info(STREAM).catch(() => null))?.cluster;
      return !!c?.leader && (c.replicas ?? []).length === 2 && (c.replicas ?? []).every((r) => r.current && !r.offline);
    },
    60_000,
    "every replica current",
  );
}

before(async () => {
  [cluster, redisA, redisB] = await Promise.all([startNatsCluster(3), startRedis(), startRedis()]);
  const [portA, portB] = [await freePort(), await freePort()];
  const keyA = createKeyFile(s.path("a-id.key"));
  const keyB = createKeyFile(s.path("b-id.key"));
  site("a", portA, portB, redisA.url, SECRET_A, keyB.publicKeyHex);
  site("b", portB, portA, redisB.url, SECRET_B, keyA.publicKeyHex);
  a = await startAppliance(s.path("a.toml"), s.path("a-state"));
  b = await startAppliance(s.path("b.toml"), s.path("b-state"));
  await b.bus.subscribe("a2b", got.record, { group: "cluster-test" });
  nc = await connect({ servers: cluster.urls });
  jsm = await jetstreamManager(nc);
  await untilOnWan("both sites on the cluster", a, b);
});

after(async () => {
  // The sites first, then what they ran on.
  await Promise.all([nc?.close(), a?.stop(200), b?.stop(200)]);
  for (const service of [cluster, redisA, redisB]) await service?.stop();
  s.cleanup();
});

describe("WAN on a three-node JetStream cluster", { timeout: 180_000 }, () => {
  it("creates the streams and its consumer with three replicas", async () => {
    const info = await jsm.streams.info(STREAM);
    assert.equal(info.config.num_replicas, 3);
    assert.equal(info.cluster?.name, cluster.name);
    assert.equal((await jsm.streams.info("PILOX_MESH_WAN_DLQ")).config.num_replicas, 3);
    const consumers = await jsm.consumers.list(STREAM).next();
    assert.equal(consumers.length, 2);
    for (const c of consumers) assert.equal(c.config.num_replicas, 3, c.name);
  });

  it("10,000 messages while the stream's leader is killed -9, then a second node: none lost, none repeated", async () => {
    const N = 10_000;
    const sending = (async () => {
      for (let i = 0; i < N; i++) await a.bus.publish("a2b", { type: "wan.cluster", payload: { i } });
    })();
    await waitFor(() => got.received() >= 1_500, 60_000, "1,500 at B");
    const first = await leader();
    const node = (name: string) => cluster.nodes.find((n) => n.serverName === name)!;
    await node(first).kill("SIGKILL");
    await waitFor(() => got.received() >= 4_000, 90_000, "4,000 at B with the leader gone");
    await node(first).start();
    await caughtUp();
    // A second node: the leader now, unless that is the one just restarted.
    const now = await leader();
    const second = now !== first ? now : cluster.nodes.find((n) => n.serverName !== first)!.serverName;
    await node(second).kill("SIGKILL");
    await waitFor(() => got.received() >= 7_000, 90_000, "7,000 at B with a second node gone");
    await node(second).start();
    await sending;
    await waitFor(() => got.received() >= N, 120_000, `${N} at B`);
    await new Promise((r) => setTimeout(r, 1_000));
    got.assertExactlyOnce(N);
    await caughtUp();
    // status names the cluster, the stream's leader and each replica's state.
    await waitFor(async () => (await b.status()).wan?.placement?.replicas.length === 2, 15_000, "status shows the replicas");
    const out = await cli(["status", "--socket", s.path("b.sock")]);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, new RegExp(`^  stream:\\s+cluster ${cluster.name}, leader n[123]; 3 replica\\(s\\): n[123] (current|behind by \\d+), n[123] (current|behind by \\d+)$`, "m"));
  });

  it("a stream with fewer replicas than wan.stream_replicas is reported by name, not re-created", async () => {
    // Right after the previous test's restarts the cluster's meta leader may still be settling:
    // "JetStream system temporarily unavailable" is waited out, any other error fails the test.
    const r1 = { name: "PILOX_MESH_WAN_R1", subjects: ["pm-r1.wan.v1.*.*"], storage: jsMod.StorageType.File, discard: jsMod.DiscardPolicy.New, duplicate_window: 120e9, num_replicas: 1 };
    await waitFor(
      async () => {
        try {
          await jsm.streams.add(r1);
          return true;
        } catch (err) {
          if (/temporarily unavailable/i.test((err as Error).message)) return false;
          throw err;
        }
      },
      30_000,
      "JetStream to take a stream",
    );
    const toml = s.write("r1.toml", `[instance]\norigin = "http://127.0.0.1:1"\n[wan]\nnats_urls = [${cluster.urls.map((u) => `"${u}"`).join(", ")}]\nstream = "PILOX_MESH_WAN_R1"\nsubject_prefix = "pm-r1.wan.v1"\nstream_replicas = 3\nmanage_streams = true\n`);
    const { config } = loadConfig({ path: toml, stateDir: s.path("r1-state") });
    await assert.rejects(ensureStreams(jsMod, jsm, config), /stream PILOX_MESH_WAN_R1 does not have the settings the WAN needs \(num_replicas: want 3 \(wan\.stream_replicas\), has 1\)/);
    assert.equal((await jsm.streams.info("PILOX_MESH_WAN_R1")).config.num_replicas, 1, "left as it was");
  });
});
