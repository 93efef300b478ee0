/** The appliance starts while Redis is down, reports it, and carries on once Redis is back. */
import assert from "node:assert/strict";
import { after, it } from "node:test";
import type { Appliance } from "../src/daemon/appliance.ts";
import { http, sse, startAppliance } from "./helpers/appliance.ts";
import { waitFor } from "./helpers/bus.ts";
import { startRedis } from "./helpers/redis.ts";
import { scratch, SECRET_A } from "./helpers/tmp.ts";

const s = scratch();
let app: Appliance | undefined;
after(async () => {
  await app?.stop(200);
  s.cleanup();
});

it("starts with Redis down (federation forwarders included), then recovers", { timeout: 60_000 }, async () => {
  const redis = await startRedis();
  await redis.kill();
  s.write("bus.key", SECRET_A);
  s.write(
    "p.toml",
    `[http]\nlisten = "127.0.0.1:0"\n[api]\nsocket = "${s.path("api.sock")}"\n[bus.redis]\nurl = "${redis.url}"\nconnect_timeout_ms = 1000\nblock_ms = 500\n[[bus.keys]]\nid = "k1"\nsecret_file = "${s.path("bus.key")}"\n[[federation.peers]]\norigin = "https://peer.example"\npublic_keys = ["93d197a4a08bee7e458f56430e644e8635fd331732a7a71692ee7b1429a76735"]\nforward_channels = ["out"]\n`,
  );
  const t0 = Date.now();
  app = await startAppliance(s.path("p.toml"), s.path("state"));
  assert.ok(Date.now() - t0 < 15_000, "start does not wait for Redis");
  const port = app.listeners[1]!.port!;
  const down = await http({ port }, "GET", "/readyz");
  assert.equal(down.status, 503);
  assert.match(down.json.checks.bus.detail, /redis not connected/);
  await redis.restart();
  await waitFor(async () => (await http({ port }, "GET", "/readyz")).status === 200, 20_000, "ready after Redis returns");
  const stream = sse({ socketPath: s.path("api.sock") }, "/v1/bus/subscribe?channel=news");
  await stream.open;
  await waitFor(async () => {
    await http({ socketPath: s.path("api.sock") }, "POST", "/v1/bus/publish", JSON.stringify({ channel: "news", message: { ok: true } }), { "content-type": "application/json" });
    return stream.events.length > 0;
  }, 15_000, "a message through the recovered bus");
  stream.close();
  await app.stop(200);
  app = undefined;
  await redis.stop();
});
