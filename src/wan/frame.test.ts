import assert from "node:assert/strict";
import { test } from "node:test";
import { peerId, type Peer } from "../federation/index.ts";
import { keyFromSeedHex, publicKeyFromHex, type Ed25519Key } from "../identity/index.ts";
import { HDR, frameBody, sealFrame, signingString, verifyFrame } from "./frame.ts";
import { frameSubject } from "./subjects.ts";

const A = "https://a.example";
const B = "https://b.example";
const key = keyFromSeedHex("11".repeat(32));
const next = keyFromSeedHex("22".repeat(32));
const other = keyFromSeedHex("33".repeat(32));
const entry = { channel: "jobs", message: { type: "t", meshMeta: { v: 1, producer: "p", eventId: "e1" } } };
const asKey = (k: Ed25519Key) => ({ kid: k.kid, publicKey: publicKeyFromHex(k.publicKeyHex), publicKeyHex: k.publicKeyHex });
const peer = (o: Partial<Peer> = {}): Peer => ({ origin: A, url: A, keys: [asKey(key), asKey(next)], accept: new Set(["jobs"]), forward: new Set(), ratePerSecond: 1, transport: "wan", ...o });
const subject = frameSubject("pilox-mesh.wan.v1", B, A);

function check(f: { subject: string; msgId: string; headers: Record<string, string>; body: string }, o: { peers?: Map<string, Peer>; on?: string } = {}) {
  return verifyFrame({
    subject: o.on ?? f.subject,
    msgId: f.msgId,
    header: (n) => f.headers[n],
    body: Buffer.from(f.body),
    peers: o.peers ?? new Map([[A, peer()]]),
    expectedSubject: (p) => frameSubject("pilox-mesh.wan.v1", B, p.origin),
    senderId: (p) => peerId(p.origin),
  });
}
const sealed = (k = key, seq = 5) => sealFrame({ key: k, sender: A, senderId: peerId(A), subject, seq, entries: [entry] });
const reason = (r: ReturnType<typeof check>) => (r.ok ? "ok" : r.reason);

test("a sealed frame verifies, with the current or the next key", () => {
  const r = check(sealed());
  assert.ok(r.ok);
  assert.equal(r.seq, 5);
  assert.ok(check(sealed(next)).ok);
  assert.equal(sealed().msgId, `${peerId(A)}-5`);
  assert.equal(sealed().body, frameBody([entry]));
});

test("the signed string names every part, one per line", () => {
  assert.equal(signingString({ subject: "s", msgId: "m", sender: A, seq: 9, kid: "k", bodySha256Hex: "h" }), `pilox-mesh-wan-frame-v1\ns\nm\n${A}\n9\nk\nh`);
});

test("each missing header, or the msg id, is unsigned", () => {
  for (const h of Object.values(HDR)) {
    const f = sealed();
    const { [h]: _gone, ...rest } = f.headers;
    assert.equal(reason(check({ ...f, headers: rest })), "unsigned", h);
  }
  assert.equal(reason(check({ ...sealed(), msgId: "" })), "unsigned");
});

test("every refusal has its reason", () => {
  const f = sealed();
  assert.equal(reason(check(f, { peers: new Map() })), "unknown_sender");
  assert.equal(reason(check(f, { peers: new Map([[A, peer({ transport: "relay" })]]) })), "not_wan_peer");
  assert.equal(reason(check({ ...f, headers: { ...f.headers, [HDR.seq]: "05" } })), "malformed");
  assert.equal(reason(check({ ...f, headers: { ...f.headers, [HDR.seq]: "1".repeat(17) } })), "malformed");
  assert.equal(reason(check(f, { on: frameSubject("pilox-mesh.wan.v1", B, "https://c.example") })), "wrong_subject");
  assert.equal(reason(check({ ...f, msgId: `${peerId(A)}-6` })), "bad_signature");
  assert.equal(reason(check({ ...f, headers: { ...f.headers, [HDR.seq]: "6" }, msgId: `${peerId(A)}-6` })), "bad_signature");
  assert.equal(reason(check({ ...f, headers: { ...f.headers, [HDR.kid]: other.kid } })), "unknown_kid");
  assert.equal(reason(check({ ...f, body: f.body.replace('"t"', '"u"') })), "bad_signature");
  assert.equal(reason(check({ ...f, headers: { ...f.headers, [HDR.sig]: "00".repeat(64) } })), "bad_signature");
  // Signed by a key B does not hold for A, presented under A's kid.
  const forged = sealed(other);
  assert.equal(reason(check({ ...forged, headers: { ...forged.headers, [HDR.kid]: key.kid } })), "bad_signature");
  // A genuine frame for another destination, moved onto B's subject.
  const elsewhere = sealFrame({ key, sender: A, senderId: peerId(A), subject: frameSubject("pilox-mesh.wan.v1", "https://c.example", A), seq: 5, entries: [entry] });
  assert.equal(reason(check(elsewhere, { on: subject })), "bad_signature");
});
