/**
 * The inbound paths the bus and HTTP fuzz suites do not reach: frames on this site's WAN inbox
 * (as anyone who can publish to NATS), envelopes on the reference bridge's subjects (ingest),
 * bodies of the reference bridge's POST /v1/publish, and A2A JSON-RPC bodies at the gateway.
 * Each gets the adversarial corpus, an oversized body and a body nested far past any bound:
 * no crash, no 5xx, nothing forged delivered, and every frame or envelope accounted for.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Delivery } from "../src/bus/index.ts";
import type { Appliance } from "../src/daemon/appliance.ts";
import { createKeyFile } from "../src/identity/index.ts";
import { frameSubject } from "../src/wan/index.ts";
import { http, startAppliance } from "./helpers/appliance.ts";
import { counterSum, waitFor } from "./helpers/bus.ts";
import { corpus } from "./helpers/fuzz.ts";
import { startNats, type TestNats } from "./helpers/nats.ts";
import { freePort, startRedis, type TestRedis } from "./helpers/redis.ts";
import { scratch, SECRET_A } from "./helpers/tmp.ts";
import { startUpstream, type TestUpstream } from "./helpers/upstream.ts";

const N = 150;
const TOKEN = "bridge-token-0123456789abcdef";
const DEEP = "[".repeat(100_000) + "]".repeat(100_000);
const BIG = JSON.stringify({ v: 1, pad: "x".repeat(900 * 1024) });
const s = scratch();
let nats: TestNats;
let redis: TestRedis;
let up: TestUpstream;
let app: Appliance;
let port: number;
let nc: NatsConnection;
const peer = "https://fuzz-peer.example";
const delivered: Delivery[] = [];

before(async () => {
  nats = await startNats();
  redis = await startRedis();
  up = await startUpstream();
  port = await freePort();
  createKeyFile(s.path("id.key"));
  const peerKey = createKeyFile(s.path("peer.key"));
  s.write("bus.key", SECRET_A);
  s.write("publish.token", TOKEN);
  s.write("gw.secret", "gateway-upstream-secret-0123456789");
  s.write(
    "p.toml",
    `[instance]\norigin = "http://127.0.0.1:${port}"\nkey_file = "${s.path("id.key")}"\n[http]\nlisten = "127.0.0.1:${port}"\n[api]\nsocket = "${s.path("p.sock")}"\n` +
      `[bus.redis]\nurl = "${redis.url}"\n[[bus.keys]]\nid = "k1"\nsecret_file = "${s.path("bus.key")}"\n[[bus.channels]]\nname = "fz"\ndurable = true\n` +
      `[[federation.peers]]\norigin = "${peer}"\ntransport = "wan"\npublic_keys = ["${peerKey.publicKeyHex}"]\naccept_channels = ["fz"]\n` +
      `[wan]\nnats_urls = ["${nats.url}"]\nmanage_streams = true\nack_wait_seconds = 3\n` +
      `[wan.pilox]\ningest = true\naccept_unsigned = true\npublish_token_file = "${s.path("publish.token")}"\npublish_rate_per_second = 100000\n` +
      `[gateway]\nenabled = true\nupstream_url = "${up.url}"\nupstream_secret_file = "${s.path("gw.secret")}"\nrate_per_second = 100000\nburst = 100000\n`,
  );
  app = await startAppliance(s.path("p.toml"), s.path("p-state"));
  await app.bus.subscribe("fz", (d) => void delivered.push(d), { group: "fz-fuzz" });
  nc = await connect({ servers: nats.url.replace("nats://", "") });
  await waitFor(async () => (await app.status()).wan?.connected === true, 20_000, "on NATS");
});

after(async () => {
  await nc?.close();
  await app?.stop(200);
  await Promise.all([redis?.stop(), nats?.stop(), up?.close()]);
  s.cleanup();
});

const bodies = (seed: number) => [...corpus(seed, N, []), BIG, DEEP];

describe("fuzz: WAN and the reference bridge", { timeout: 180_000 }, () => {
  it("frames on this site's inbox, as the trusted peer and as a stranger: every one refused and counted, nothing delivered", async () => {
    const inbox = [frameSubject("pilox-mesh.wan.v1", `http://127.0.0.1:${port}`, peer), frameSubject("pilox-mesh.wan.v1", `http://127.0.0.1:${port}`, "https://stranger.example")];
    const before = (await counterSum(app.metrics, "pilox_mesh_wan_rejected_total")) + (await counterSum(app.metrics, "pilox_mesh_wan_dlq_total"));
    const texts = bodies(31);
    for (const [i, t] of texts.entries()) nc.publish(inbox[i % 2]!, t);
    await nc.flush();
    await waitFor(
      async () => (await counterSum(app.metrics, "pilox_mesh_wan_rejected_total")) + (await counterSum(app.metrics, "pilox_mesh_wan_dlq_total")) - before >= texts.length,
      60_000,
      "every junk frame refused",
    );
    assert.equal(delivered.length, 0, "nothing forged delivered");
    assert.equal((await http({ port }, "GET", "/readyz")).status, 200);
  });

  it("envelopes on the reference bridge's subjects: each accepted as the reference's or refused and counted; no crash", async () => {
    const events: Delivery[] = [];
    const sub = await app.bus.subscribe("pilox:system:events", (d) => void events.push(d));
    const refused = async () => (await counterSum(app.metrics, "pilox_mesh_wan_rejected_total")) + (await counterSum(app.metrics, "pilox_mesh_wan_dlq_total"));
    const before = await refused();
    const texts = bodies(32);
    for (const [i, t] of texts.entries()) nc.publish(i % 2 ? "pilox.mesh.wan" : "hive.mesh.wan", t);
    await nc.flush();
    await waitFor(async () => events.length + (await refused()) - before >= texts.length, 60_000, "every envelope accepted or refused");
    // Whatever was accepted is an object payload with the reference's fields, never a rebuilt one.
    for (const e of events) assert.equal(typeof e.message, "object");
    assert.equal((await http({ port }, "GET", "/readyz")).status, 200);
    await sub.close();
  });

  it("POST /v1/publish with the bridge's token: no 5xx for any body", async () => {
    const statuses = new Map<number, number>();
    for (const t of [...bodies(33), ...corpus(34, N, []).map((x) => `{"v":1,"correlationId":"corr-12345678","sourceOrigin":"https://a.example","payload":${x}}`)]) {
      const r = await http({ port }, "POST", "/v1/publish", t, { "content-type": "application/json", authorization: `Bearer ${TOKEN}` });
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      assert.ok(r.status < 500, `${r.status} for ${t.slice(0, 200)}: ${r.body}`);
    }
    assert.ok((statuses.get(400) ?? 0) > 0 && (statuses.get(413) ?? 0) > 0, JSON.stringify([...statuses]));
  });

  it("POST /v1/a2a/jsonrpc at the gateway: no 5xx of ours for any body (the upstream's answers pass through)", async () => {
    for (const t of [...bodies(35), ...corpus(36, N, []).map((x) => `{"jsonrpc":"2.0","method":"message/send","id":1,"params":${x}}`)]) {
      const r = await http({ port }, "POST", "/v1/a2a/jsonrpc", t, { "content-type": "application/json" });
      assert.ok(r.status < 500, `${r.status} for ${t.slice(0, 200)}: ${r.body}`);
    }
    assert.equal((await http({ port }, "GET", "/healthz")).status, 200);
  });
});
