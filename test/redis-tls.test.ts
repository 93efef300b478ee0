/**
 * rediss://: a redis-server speaking TLS only to clients with a certificate from our test CA.
 * The bus, built from the configuration file as the appliance builds it, trusts the CA from
 * bus.redis.tls_ca_file and presents tls_cert_file/tls_key_file; without the client
 * certificate the server refuses it.
 */
import assert from "node:assert/strict";
import { chmodSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { createBus } from "../src/daemon/bus-factory.ts";
import type { MeshBus } from "../src/bus/index.ts";
import { loadConfig, resolveSecrets } from "../src/config/index.ts";
import { silentLogger } from "../src/log/index.ts";
import { untilReady, waitFor } from "./helpers/bus.ts";
import { freePort, startRedis, type TestRedis } from "./helpers/redis.ts";
import { makePki } from "./helpers/pki.ts";
import { scratch, SECRET_A } from "./helpers/tmp.ts";

const s = scratch();
describe("Redis over TLS (rediss://)", { timeout: 60_000 }, () => {
  let redis: TestRedis;
  let tlsPort: number;
  const buses: MeshBus[] = [];

  before(async () => {
    makePki(s.dir);
    tlsPort = await freePort();
    // The plain port stays for the helper's readiness check; the bus only uses the TLS one.
    redis = await startRedis({
      aof: true,
      args: ["--tls-port", String(tlsPort), "--tls-cert-file", s.path("server.crt"), "--tls-key-file", s.path("server.key"), "--tls-ca-cert-file", s.path("ca.crt"), "--tls-auth-clients", "yes"],
    });
  });

  after(async () => {
    await Promise.all(buses.map((b) => b.close().catch(() => {})));
    await redis?.stop();
    s.cleanup();
  });

  const configFile = (name: string, redisTable: string) =>
    s.write(
      name,
      `[[bus.keys]]\nid = "k1"\nsecret_file = "${s.write("k1.key", SECRET_A)}"\n[[bus.channels]]\nname = "jobs"\ndurable = true\n[bus.redis]\n${redisTable}`,
    );

  const busFrom = async (file: string): Promise<MeshBus> => {
    const loaded = loadConfig({ path: file, stateDir: s.path(`state-${buses.length}`), env: {} });
    const bus = await createBus(loaded.config, resolveSecrets(loaded, true), silentLogger);
    buses.push(bus);
    await bus.start();
    return bus;
  };

  it("publishes and delivers, pub/sub and durable, with the CA and a client certificate", async () => {
    const file = configFile(
      "tls.toml",
      `url = "rediss://127.0.0.1:${tlsPort}"\ntls_ca_file = "${s.path("ca.crt")}"\ntls_cert_file = "${s.path("client.crt")}"\ntls_key_file = "${s.path("client.key")}"\n`,
    );
    const bus = await busFrom(file);
    await untilReady(bus);
    const got: unknown[] = [];
    await bus.subscribe("events", (d) => void got.push(d.message["n"]));
    await bus.subscribe("jobs", (d) => void got.push(d.message["n"]));
    await waitFor(
      async () => {
        await bus.publish("events", { n: "live" });
        return got.includes("live");
      },
      10_000,
      "pub/sub over TLS",
    );
    for (let n = 0; n < 50; n++) await bus.publish("jobs", { n });
    await waitFor(() => got.filter((x) => typeof x === "number").length === 50, 10_000, "durable over TLS");
    assert.ok((await bus.ready()).ok);
  });

  it("without the client certificate the server refuses the bus", async () => {
    const file = configFile("ca-only.toml", `url = "rediss://127.0.0.1:${tlsPort}"\ntls_ca_file = "${s.path("ca.crt")}"\n`);
    const bus = await busFrom(file);
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(bus.backend.isReady(), false);
    const r = await bus.ready();
    assert.equal(r.ok, false);
  });

  it("configuration errors name the key", () => {
    const plain = configFile("plain.toml", `url = "redis://127.0.0.1:6379"\ntls_ca_file = "${s.path("ca.crt")}"\n`);
    assert.throws(() => loadConfig({ path: plain, env: {} }), /bus\.redis\.tls_ca_file: needs a rediss:\/\/ bus\.redis\.url/);
    const half = configFile("half.toml", `url = "rediss://127.0.0.1:6379"\ntls_cert_file = "${s.path("client.crt")}"\n`);
    assert.throws(() => loadConfig({ path: half, env: {} }), /bus\.redis\.tls_key_file: a client certificate needs both/);
    chmodSync(s.path("client.key"), 0o644);
    const loose = configFile(
      "loose.toml",
      `url = "rediss://127.0.0.1:6379"\ntls_cert_file = "${s.path("client.crt")}"\ntls_key_file = "${s.path("client.key")}"\n`,
    );
    assert.throws(() => resolveSecrets(loadConfig({ path: loose, env: {} }), false), /bus\.redis\.tls_key_file.*chmod/s);
    chmodSync(s.path("client.key"), 0o600);
  });
});
