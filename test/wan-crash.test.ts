/**
 * The WAN through the shipped executable, killed with -9 where it hurts: A with frames in flight
 * (restarted after JetStream's dedupe window, so only B's sequence memory can catch a repeat),
 * and B three times while it appends and acknowledges. Counted where it lands: B's Redis stream.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { peerId } from "../src/federation/index.ts";
import { createKeyFile, type Ed25519Key } from "../src/identity/index.ts";
import { http } from "./helpers/appliance.ts";
import { waitFor } from "./helpers/bus.ts";
import { ROOT } from "./helpers/cli.ts";
import { startNats, type TestNats } from "./helpers/nats.ts";
import { freePort, startRedis, type TestRedis } from "./helpers/redis.ts";
import { writeSite } from "./helpers/site.ts";
import { scratch, SECRET_A, SECRET_B } from "./helpers/tmp.ts";

const X64 = join(ROOT, "dist", "pilox-mesh-linux-x64");
const s = scratch();
let nats: TestNats;
let redisA: TestRedis, redisB: TestRedis;
let rawB: Redis;
let portA: number, portB: number;
let keyA: Ed25519Key, keyB: Ed25519Key;
const originA = () => `http://127.0.0.1:${portA}`;
const originB = () => `http://127.0.0.1:${portB}`;

function write(name: "a" | "b", port: number, origin: string, redis: string, secret: string, peer: string, peerKey: string, accept: string[], forward: string[]): void {
  writeSite({
    dir: s.dir, name, port, origin, secret, redis, blockMs: 200, logLevel: "warn",
    durable: ["a2b"],
    peer: { origin: peer, keys: [peerKey], accept, forward, transport: "wan" },
    wan: { natsUrls: [nats.url], extra: "duplicate_window_seconds = 2\nack_wait_seconds = 3\nframe_max_messages = 16" },
  });
}

/** The executable as systemd would run it. */
function run(name: "a" | "b") {
  const p: ChildProcess = spawn(X64, ["--config", s.path(`${name}.toml`), "--state-dir", s.path(`${name}-state`), "serve"], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  p.stderr!.on("data", (d) => (log += d));
  return {
    p,
    log: () => log,
    kill: () => new Promise<void>((r) => (p.exitCode !== null || p.signalCode !== null ? r() : (p.once("exit", () => r()), p.kill("SIGKILL")))),
    wanReady: () => waitFor(async () => (await http({ port: name === "a" ? portA : portB }, "GET", "/readyz").catch(() => ({ json: null }))).json?.degraded === false, 30_000, `${name} on the WAN`),
  };
}

/** What landed in B's log of "a2b": event ids with their counts. */
async function landed(): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const entries = await rawB.xrange("pilox-mesh:stream:a2b", "-", "+");
  for (const [, fields] of entries) {
    const m = JSON.parse(fields[fields.indexOf("m") + 1]!) as { meshMeta: { eventId: string } };
    out.set(m.meshMeta.eventId, (out.get(m.meshMeta.eventId) ?? 0) + 1);
  }
  return out;
}

/** Publishes e-<from>… through A's agent API; returns the ids A accepted (a kill cuts it short). */
async function publish(from: number, n: number, parallel = 8): Promise<Set<string>> {
  let next = from;
  const accepted = new Set<string>();
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < from + n) {
        const i = next++;
        let r;
        try {
          // (Bounded: a request caught by the kill must not hold the test.)
          r = await withTimeout(10_000, http({ socketPath: s.path("a.sock") }, "POST", "/v1/bus/publish", JSON.stringify({ channel: "a2b", message: { type: "crash.test", payload: { i }, meshMeta: { v: 1, producer: "test", eventId: `e-${i}` } } }), { "content-type": "application/json" }));
        } catch {
          return; // A is gone
        }
        if (r.status === 200 || r.status === 202) accepted.add(`e-${i}`);
      }
    }),
  );
  return accepted;
}

function withTimeout<T>(ms: number, p: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
    p.then((v) => (clearTimeout(t), resolve(v)), (e: unknown) => (clearTimeout(t), reject(e)));
  });
}

function assertOnce(m: Map<string, number>, from: number, n: number): void {
  const dups = [...m].filter(([, c]) => c > 1).map(([k]) => k);
  assert.deepEqual(dups, [], "delivered more than once");
  const missing = Array.from({ length: n }, (_, k) => `e-${from + k}`).filter((id) => !m.has(id));
  assert.deepEqual(missing.slice(0, 10), [], `${missing.length} lost`);
}

before(async () => {
  nats = await startNats();
  [redisA, redisB] = await Promise.all([startRedis(), startRedis()]);
  rawB = new Redis(redisB.url);
  [portA, portB] = [await freePort(), await freePort()];
  keyA = createKeyFile(s.path("a-id.key"));
  keyB = createKeyFile(s.path("b-id.key"));
  write("a", portA, originA(), redisA.url, SECRET_A, originB(), keyB.publicKeyHex, [], ["a2b"]);
  write("b", portB, originB(), redisB.url, SECRET_B, originA(), keyA.publicKeyHex, ["a2b"], []);
});

after(async () => {
  rawB?.disconnect();
  await Promise.all([redisA?.stop(), redisB?.stop(), nats?.stop()]);
  s.cleanup();
});

describe("the WAN executable killed -9", { timeout: 300_000 }, () => {
  it("A killed with frames in flight, restarted after the dedupe window: nothing repeated, nothing lost", async (t) => {
    let a = run("a");
    const b = run("b");
    try {
      await Promise.all([a.wanReady(), b.wanReady()]);
      await publish(0, 200);
      await waitFor(async () => (await landed()).size >= 200, 60_000, "the first messages at B");
      // NATS paused: A's frames go into the socket and wait there, unacknowledged. A is killed
      // with them in flight; NATS then stores them, and A, restarted past the dedupe window,
      // sends them again: only B's sequence memory can catch the repeats.
      nats.pause(true);
      const before = await publish(200, 1_000);
      const framesLog = s.path("a-state", "wan", "outbound", peerId(originB()), "frames", "frames.log");
      // Two lines per frame (src/wan/frame-log.ts); the log is emptied whenever none is outstanding.
      const framesLogged = () => (existsSync(framesLog) ? Math.floor(readFileSync(framesLog, "utf8").split("\n").length / 2) : 0);
      await waitFor(() => framesLogged() > 0, 20_000, "frames in flight");
      const inFlight = framesLogged();
      await a.kill();
      nats.pause(false);
      for (let i = 0; i < 200; i++) before.add(`e-${i}`);
      const atKill = (await landed()).size;
      t.diagnostic(`at the kill: ${before.size} accepted, ${atKill} at B, ${inFlight} frames in flight`);
      await new Promise((r) => setTimeout(r, 2_500)); // past duplicate_window_seconds = 2
      a = run("a");
      await a.wanReady();
      const later = await publish(3_000, 500);
      await waitFor(async () => {
        const m = await landed();
        return [...before, ...later].every((id) => m.has(id));
      }, 60_000, "everything A accepted at B");
      await new Promise((r) => setTimeout(r, 1_000));
      const m = await landed();
      assert.deepEqual([...m].filter(([, c]) => c > 1), [], "delivered more than once");
      // The frames NATS stored after the kill came again from A and were caught by B's memory.
      const metrics = (await http({ port: portB }, "GET", "/metrics")).body;
      const caught = Number(/^pilox_mesh_wan_duplicates_total\{layer="receiver"\} (\d+)/m.exec(metrics)?.[1] ?? 0);
      t.diagnostic(`repeats caught by B's memory: ${caught}`);
      // Whether NATS got the frames written before the kill is the kernel's call: a killed
      // process's socket with unread data is reset, and what it had not sent is dropped. So
      // repeats are not certain here (wan.test.ts proves B's memory on repeats it forces); what
      // must hold either way is asserted above: nothing lost, nothing delivered twice.
      if (caught === 0) t.diagnostic("no frame of the killed process reached NATS this time (its socket was reset)");
    } finally {
      nats.pause(false); // a failure above must not leave the next test a frozen server
      await a.kill();
      await b.kill();
    }
  });

  it("B killed three times while it appends and acknowledges: nothing repeated, nothing lost", async () => {
    await rawB.del("pilox-mesh:stream:a2b");
    const a = run("a");
    let b = run("b");
    try {
      await Promise.all([a.wanReady(), b.wanReady()]);
      const sending = publish(10_000, 6_000);
      for (const at of [1_000, 2_500, 4_000]) {
        await waitFor(async () => (await rawB.xlen("pilox-mesh:stream:a2b")) > at, 120_000, `${at} at B`);
        await b.kill();
        b = run("b");
      }
      await sending;
      await waitFor(async () => (await landed()).size >= 6_000, 120_000, "6,000 at B");
      await new Promise((r) => setTimeout(r, 4_000)); // past ack_wait: any redelivery has come
      assertOnce(await landed(), 10_000, 6_000);
    } finally {
      await a.kill();
      await b.kill();
    }
  });
});
