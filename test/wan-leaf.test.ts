/**
 * An edge site on a leaf node: A's appliance talks only to a local nats-server running as a
 * leaf node (no JetStream of its own) of the hub, where the streams live; B is on the hub. The
 * leaf's link to the hub is cut for 30 s while A publishes (A's sender keeps frames in its queue
 * on disk), then restored: every message reaches B, once, in order.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Appliance } from "../src/daemon/appliance.ts";
import { createKeyFile } from "../src/identity/index.ts";
import { startAppliance, untilOnWan } from "./helpers/appliance.ts";
import { waitFor } from "./helpers/bus.ts";
import { Deliveries } from "./helpers/deliveries.ts";
import { startLink, type TestLink } from "./helpers/link.ts";
import { startNats, waitForJetStream, type TestNats } from "./helpers/nats.ts";
import { freePort, startRedis, type TestRedis } from "./helpers/redis.ts";
import { writeSite } from "./helpers/site.ts";
import { scratch, SECRET_A, SECRET_B } from "./helpers/tmp.ts";

const s = scratch();
let hub: TestNats, leaf: TestNats, link: TestLink;
let redisA: TestRedis, redisB: TestRedis;
let a: Appliance, b: Appliance;
const got = new Deliveries();

before(async () => {
  const [hubPort, hubLeafPort] = [await freePort(), await freePort()];
  link = await startLink(hubLeafPort);
  // The hub advertises the link as its leaf-node address, so the leaf cannot go around it.
  hub = await startNats({ port: hubPort, config: (dir) => `server_name: hub\nlisten: 127.0.0.1:${hubPort}\njetstream { store_dir: "${dir}", domain: hub }\nleafnodes { listen: 127.0.0.1:${hubLeafPort}, advertise: "127.0.0.1:${link.port}" }\n` });
  const leafPort = await freePort();
  // The usual edge shape: no JetStream on the leaf; A addresses the hub's domain through it.
  leaf = await startNats({ port: leafPort, config: () => `server_name: edge\nlisten: 127.0.0.1:${leafPort}\nleafnodes { remotes: [ { url: "nats-leaf://127.0.0.1:${link.port}" } ] }\n` });
  await waitForJetStream([leaf.url], 30_000, "hub");
  [redisA, redisB] = await Promise.all([startRedis(), startRedis()]);
  const [portA, portB] = [await freePort(), await freePort()];
  const keyA = createKeyFile(s.path("a-id.key"));
  const keyB = createKeyFile(s.path("b-id.key"));
  const extra = "ack_wait_seconds = 5\nconnect_timeout_ms = 2000";
  writeSite({ dir: s.dir, name: "a", port: portA, secret: SECRET_A, redis: redisA.url, blockMs: 200, logLevel: "warn", durable: ["a2b"], peer: { origin: `http://127.0.0.1:${portB}`, keys: [keyB.publicKeyHex], accept: [], forward: ["a2b"], transport: "wan" }, wan: { natsUrls: [leaf.url], extra: `${extra}\njetstream_domain = "hub"` } });
  writeSite({ dir: s.dir, name: "b", port: portB, secret: SECRET_B, redis: redisB.url, blockMs: 200, logLevel: "warn", durable: ["a2b"], peer: { origin: `http://127.0.0.1:${portA}`, keys: [keyA.publicKeyHex], accept: ["a2b"], forward: [], transport: "wan" }, wan: { natsUrls: [hub.url], extra } });
  a = await startAppliance(s.path("a.toml"), s.path("a-state"));
  b = await startAppliance(s.path("b.toml"), s.path("b-state"));
  await b.bus.subscribe("a2b", got.record, { group: "leaf-test" });
  await untilOnWan("A on the leaf, B on the hub", a, b);
});

after(async () => {
  await Promise.all([a?.stop(200), b?.stop(200)]);
  await link?.close();
  await Promise.all([leaf?.stop(), hub?.stop(), redisA?.stop(), redisB?.stop()]);
  s.cleanup();
});

describe("WAN through a leaf node", { timeout: 180_000 }, () => {
  it("the leaf's link to the hub cut for 30 s while A publishes: all delivered at B once, in order", async () => {
    const publish = async (from: number, n: number) => {
      for (let i = from; i < from + n; i++) await a.bus.publish("a2b", { type: "wan.leaf", payload: { i } });
    };
    await publish(0, 500);
    await waitFor(() => got.received() >= 500, 30_000, "500 at B through the leaf");
    link.cut();
    await publish(500, 1_500);
    // While the link is down the frames wait in A's queue on disk.
    await waitFor(async () => ((await a.status()).wan?.queue.messages ?? 0) > 0, 20_000, "A queueing");
    await new Promise((r) => setTimeout(r, 30_000));
    assert.ok(got.received() < 2_000, `nothing more crossed while the link was down (${got.received()})`);
    link.restore();
    await waitFor(() => got.received() >= 2_000, 90_000, "2,000 at B after the link returned");
    await new Promise((r) => setTimeout(r, 1_000));
    got.assertExactlyOnce(2_000);
    assert.deepEqual(got.order, Array.from({ length: 2_000 }, (_, i) => i), "in order");
  });
});
