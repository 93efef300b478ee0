/**
 * The server's own delivery limit is a backstop: when it stops redelivering a frame (max_deliver
 * reached before our max_attempts), its advisory lands in the dead-letter stream.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { connect, headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Redis } from "ioredis";
import type { Appliance } from "../src/daemon/appliance.ts";
import { peerId } from "../src/federation/index.ts";
import { createKeyFile, type Ed25519Key } from "../src/identity/index.ts";
import { frameSubject, sealFrame } from "../src/wan/index.ts";
import { startAppliance } from "./helpers/appliance.ts";
import { waitFor } from "./helpers/bus.ts";
import { startNats, type TestNats } from "./helpers/nats.ts";
import { freePort, startRedis, type TestRedis } from "./helpers/redis.ts";
import { scratch, SECRET_B } from "./helpers/tmp.ts";

const s = scratch();
const A = "https://a.example";
let nats: TestNats;
let redis: TestRedis;
let b: Appliance;
let nc: NatsConnection;
let keyA: Ed25519Key;
let originB: string;

before(async () => {
  nats = await startNats();
  redis = await startRedis({ aof: false });
  const port = await freePort();
  originB = `http://127.0.0.1:${port}`;
  keyA = createKeyFile(s.path("a.key"));
  createKeyFile(s.path("b.key"));
  s.write("bus.key", SECRET_B);
  s.write(
    "b.toml",
    `[instance]\norigin = "${originB}"\nkey_file = "${s.path("b.key")}"\n[http]\nlisten = "127.0.0.1:${port}"\n[api]\nsocket = "${s.path("b.sock")}"\n[bus.redis]\nurl = "${redis.url}"\n[[bus.keys]]\nid = "b"\nsecret_file = "${s.path("bus.key")}"\n[[bus.channels]]\nname = "a2b"\ndurable = true\n[[federation.peers]]\norigin = "${A}"\ntransport = "wan"\npublic_keys = ["${keyA.publicKeyHex}"]\naccept_channels = ["a2b"]\n[wan]\nnats_urls = ["${nats.url}"]\nmanage_streams = true\nack_wait_seconds = 1\nmax_deliver = 2\nmax_attempts = 50\n`,
  );
  b = await startAppliance(s.path("b.toml"), s.path("state"));
  nc = await connect({ servers: nats.url.replace("nats://", "") });
  await waitFor(async () => (await b.status()).wan?.connected === true, 20_000, "B on NATS");
});

after(async () => {
  await nc?.close();
  await b?.stop(200);
  await Promise.all([redis?.stop(), nats?.stop()]);
  s.cleanup();
});

it("a frame that keeps failing past the server's max_deliver leaves its advisory in the dead-letter stream", async () => {
  // Every frame fails now: B's sequence memory lives where Redis holds a value of another type.
  const raw = new Redis(redis.url);
  await raw.set(`pilox-mesh:wan:marks:${peerId(originB)}`, "not a hash");
  raw.disconnect();
  const f = sealFrame({ key: keyA, sender: A, senderId: peerId(A), subject: frameSubject("pilox-mesh.wan.v1", originB, A), seq: 1, entries: [{ channel: "a2b", message: { type: "t", meshMeta: { v: 1, producer: "test", eventId: "adv-1" } } }] });
  const h = natsHeaders();
  for (const [k, v] of Object.entries(f.headers)) h.set(k, v);
  await jetstream(nc).publish(f.subject, f.body, { msgID: f.msgId, headers: h });
  const jsm = await jetstreamManager(nc);
  await waitFor(async () => (await jsm.streams.info("PILOX_MESH_WAN_DLQ")).state.messages > 0, 20_000, "something in the dead-letter stream");
  const m = await jsm.streams.getMessage("PILOX_MESH_WAN_DLQ", { seq: (await jsm.streams.info("PILOX_MESH_WAN_DLQ")).state.first_seq });
  assert.match(m!.subject, /^\$JS\.EVENT\.ADVISORY\.CONSUMER\.MAX_DELIVERIES\.PILOX_MESH_WAN_V1\./);
  const advisory = m!.json<{ stream: string; consumer: string; deliveries: number }>();
  assert.equal(advisory.stream, "PILOX_MESH_WAN_V1");
  assert.equal(advisory.consumer, `pilox-mesh-${peerId(originB)}`);
  assert.equal(advisory.deliveries, 2);
});
