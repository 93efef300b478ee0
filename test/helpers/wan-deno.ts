/**
 * The WAN library path as a script (run by test/deno.test.ts under Deno): a frame sealed, sent
 * through JetStream with the NATS v3 client, fetched by a durable pull consumer and verified.
 * Usage: wan-deno.ts NATS_URL
 */
import { loadClient } from "../../src/wan/connect.ts";
import { frameSubject, sealFrame, verifyFrame } from "../../src/wan/index.ts";
import { peerId, type Peer } from "../../src/federation/index.ts";
import { keyFromSeedHex, publicKeyFromHex } from "../../src/identity/index.ts";

const url = process.argv[2] ?? "";
const { nats, js } = await loadClient();
const nc = await nats.connect({ servers: url.replace("nats://", "") });
const jsm = await js.jetstreamManager(nc);
await jsm.streams.add({ name: "DENO_WAN", subjects: ["pilox-mesh.wan.v1.*.*"], storage: js.StorageType.File });
await jsm.consumers.add("DENO_WAN", { durable_name: "b", ack_policy: js.AckPolicy.Explicit });
const key = keyFromSeedHex("11".repeat(32));
const A = "https://a.example";
const B = "https://b.example";
const f = sealFrame({ key, sender: A, senderId: peerId(A), subject: frameSubject("pilox-mesh.wan.v1", B, A), seq: 7, entries: [{ channel: "jobs", message: { type: "t", meshMeta: { v: 1, producer: "deno", eventId: "e1" } } }] });
const h = nats.headers();
for (const [k, v] of Object.entries(f.headers)) h.set(k, v);
const client = js.jetstream(nc);
const ack = await client.publish(f.subject, f.body, { msgID: f.msgId, headers: h });
const m = await (await client.consumers.get("DENO_WAN", "b")).next({ expires: 5_000 });
if (!m) throw new Error("nothing fetched");
const peer: Peer = { origin: A, url: A, keys: [{ kid: key.kid, publicKey: publicKeyFromHex(key.publicKeyHex), publicKeyHex: key.publicKeyHex }], accept: new Set(["jobs"]), forward: new Set(), ratePerSecond: 1, transport: "wan" };
const r = verifyFrame({ subject: m.subject, msgId: m.headers?.get("Nats-Msg-Id"), header: (n) => m.headers?.get(n) || undefined, body: m.data, peers: new Map([[A, peer]]), expectedSubject: (p) => frameSubject("pilox-mesh.wan.v1", B, p.origin), senderId: (p) => peerId(p.origin) });
const acked = await m.ackAck();
process.stdout.write(JSON.stringify({ stored: ack.seq, ok: r.ok, seq: r.ok ? r.seq : null, acked }) + "\n");
await nc.close();
