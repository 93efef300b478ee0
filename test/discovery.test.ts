/** The public listener: discovery document, keys, caching headers, limits, hostile requests. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import { Ajv } from "ajv";
import { canonicalize } from "../src/canon/index.ts";
import type { Appliance } from "../src/daemon/appliance.ts";
import { checkDocument } from "../src/discovery/index.ts";
import { publicKeyFromHex, verifyHex } from "../src/identity/index.ts";
import { HEADERS_TIMEOUT_MS } from "../src/http/listen.ts";
import { http, startAppliance } from "./helpers/appliance.ts";
import { cli, ROOT } from "./helpers/cli.ts";
import { scratch, SECRET_A } from "./helpers/tmp.ts";

const s = scratch();
let app: Appliance;
let pub: { port: number };
const METRICS_TOKEN = "metrics-token-0123456789abcdef";

before(async () => {
  s.write("bus.key", SECRET_A);
  s.write("metrics.token", METRICS_TOKEN);
  s.write(
    "pilox-mesh.toml",
    `[instance]\norigin = "https://mesh-a.example"\n[http]\nlisten = "127.0.0.1:0"\nmetrics_token_file = "${s.path("metrics.token")}"\n[api]\nsocket = "${s.path("api.sock")}"\n[discovery]\nbootstrap_urls = ["https://seed.example/.well-known/pilox-mesh.json"]\n`,
  );
  app = await startAppliance(s.path("pilox-mesh.toml"), s.path("state"));
  pub = { port: app.listeners[1]!.port! };
});
after(async () => {
  await app?.stop(200);
  s.cleanup();
});

describe("discovery document", () => {
  it("validates against docs/discovery.schema.json and carries the real state", async () => {
    const r = await http(pub, "GET", "/.well-known/pilox-mesh.json");
    assert.equal(r.status, 200);
    const doc = r.json;
    const schema = JSON.parse(readFileSync(`${ROOT}/docs/discovery.schema.json`, "utf8"));
    const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
    assert.ok(validate(structuredClone(doc)), JSON.stringify(validate.errors));
    assert.equal(doc.instanceOrigin, "https://mesh-a.example");
    assert.equal(doc.federation.localEd25519PublicKeyHex, app.identity.publicKeyHex);
    assert.equal(doc.instanceKeys.current.kid, app.identity.kid);
    assert.deepEqual(doc.publicMesh.bootstrapMeshDescriptorUrls, ["https://seed.example/.well-known/pilox-mesh.json"]);
  });

  it("serves every URL it advertises; no directory, no wanMesh while federation is off", async () => {
    const doc = (await http(pub, "GET", "/.well-known/pilox-mesh.json")).json;
    assert.equal(doc.federation.directoryUrl, null);
    assert.equal(doc.federation.wanMesh, null);
    for (const url of [doc.federation.federationStatusUrl, doc.instanceKeys.keysUrl]) {
      const path = new URL(url).pathname;
      const r = await http(pub, "GET", path);
      assert.equal(r.status, 200, path);
    }
    const st = (await http(pub, "GET", new URL(doc.federation.federationStatusUrl).pathname)).json;
    assert.deepEqual(st, { meshV2: "2.10.0", enabled: false, phase: "2.0-config", transportActive: false, wanMesh: null });
  });

  it("its signature verifies over the canonical document without the signature", async () => {
    const r = await http(pub, "GET", "/.well-known/pilox-mesh.json");
    const { documentSignature, ...body } = r.json;
    assert.ok(verifyHex(publicKeyFromHex(app.identity.publicKeyHex), canonicalize(body), documentSignature.sigHex));
    assert.deepEqual(checkDocument(r.json, app.identity.publicKeyHex).ok, true);
    const tampered = { ...r.json, instanceOrigin: "https://evil.example" };
    assert.equal(checkDocument(tampered, app.identity.publicKeyHex).ok, false);
    assert.equal(checkDocument(r.json, "11".repeat(32)).ok, false);
  });

  it("caching: public max-age=120, CORS *, strong ETag, 304 on If-None-Match", async () => {
    const r = await http(pub, "GET", "/.well-known/pilox-mesh.json");
    assert.equal(r.headers["cache-control"], "public, max-age=120");
    assert.equal(r.headers["access-control-allow-origin"], "*");
    assert.match(r.headers["content-type"] as string, /^application\/json/);
    const etag = r.headers["etag"] as string;
    assert.match(etag, /^"[A-Za-z0-9_-]+"$/);
    const again = await http(pub, "GET", "/.well-known/pilox-mesh.json", undefined, { "if-none-match": etag });
    assert.equal(again.status, 304);
    assert.equal(again.body, "");
    const list = await http(pub, "GET", "/.well-known/pilox-mesh.json", undefined, { "if-none-match": `"other", ${etag}` });
    assert.equal(list.status, 304);
    const stale = await http(pub, "GET", "/.well-known/pilox-mesh.json", undefined, { "if-none-match": '"other"' });
    assert.equal(stale.status, 200);
  });

  it("keys.json is a JWKS with the kid", async () => {
    const r = await http(pub, "GET", "/.well-known/pilox-mesh/keys.json");
    assert.equal(r.status, 200);
    assert.equal(r.json.keys.length, 1);
    const k = r.json.keys[0];
    assert.deepEqual([k.kty, k.crv, k.alg, k.kid], ["OKP", "Ed25519", "EdDSA", app.identity.kid]);
    assert.equal(Buffer.from(k.x, "base64url").toString("hex"), app.identity.publicKeyHex);
  });

  it("a staged next key is published before it is used", async () => {
    const next = s.path("next.key");
    const g = await cli(["keygen", "--out", next]);
    assert.equal(g.code, 0, g.stderr);
    const nextHex = g.stdout.trim();
    const text = readFileSync(s.path("pilox-mesh.toml"), "utf8").replace('[instance]\n', `[instance]\nnext_key_file = "${next}"\n`);
    s.write("pilox-mesh.toml", text);
    assert.deepEqual(await app.reload(), { ok: true });
    const r = await http(pub, "GET", "/.well-known/pilox-mesh.json");
    assert.equal(r.json.instanceKeys.next.publicKeyHex, nextHex);
    assert.equal(r.json.documentSignature.kid, app.identity.kid, "still signed with the current key");
    const keys = await http(pub, "GET", "/.well-known/pilox-mesh/keys.json");
    assert.equal(keys.json.keys.length, 2);
  });

  it("a rotation finished literally (next_key_file = the current key) is warned about in status", async () => {
    const before = readFileSync(s.path("pilox-mesh.toml"), "utf8");
    try {
      const text = before.replace(/^next_key_file = .*$/m, "").replace("[instance]\n", `[instance]\nkey_file = "${s.path("state", "identity.key")}"\nnext_key_file = "${s.path("state", "identity.key")}"\n`);
      s.write("pilox-mesh.toml", text);
      assert.deepEqual(await app.reload(), { ok: true });
      const st = await cli(["status", "--socket", s.path("api.sock")]);
      assert.equal(st.code, 0, st.stderr);
      assert.match(st.stdout, /^warning:\s+instance\.next_key_file holds the current key .*clear next_key_file and reload/m);
    } finally {
      s.write("pilox-mesh.toml", before);
      assert.deepEqual(await app.reload(), { ok: true });
    }
    const st = await cli(["status", "--socket", s.path("api.sock")]);
    assert.doesNotMatch(st.stdout, /next_key_file holds the current key/);
  });

  it("the identity persists across restarts (seed file 0600 in the state dir)", async () => {
    const { statSync } = await import("node:fs");
    assert.equal(statSync(s.path("state", "identity.key")).mode & 0o777, 0o600);
    const p = await cli(["pubkey", "--key-file", s.path("state", "identity.key")]);
    assert.equal(p.stdout.trim(), app.identity.publicKeyHex);
  });
});

describe("metrics", () => {
  it("needs the bearer token when one is configured", async () => {
    assert.equal((await http(pub, "GET", "/metrics")).status, 401);
    const ok = await http(pub, "GET", "/metrics", undefined, { authorization: `Bearer ${METRICS_TOKEN}` });
    assert.equal(ok.status, 200);
    assert.match(ok.body, /pilox_mesh_bus_rejected_total\{reason="forged"\} 0/);
    assert.doesNotMatch(ok.body, new RegExp(METRICS_TOKEN));
  });
});

describe("hostile HTTP", () => {
  it("oversized body → 413, oversized headers → 431, path tricks → 404, no 5xx", async () => {
    const big = await http(pub, "POST", "/healthz", Buffer.alloc(200 * 1024, 0x61), { "content-type": "application/octet-stream" });
    assert.equal(big.status, 413);
    const hdr = await http(pub, "GET", "/healthz", undefined, { "x-big": "y".repeat(20 * 1024) }).catch(() => ({ status: 431 }));
    assert.equal(hdr.status, 431);
    for (const p of ["/../../etc/passwd", "/.well-known/../metrics%00", "/%2e%2e/%2e%2e/etc/passwd", "/.well-known/pilox-mesh.json/..%2f..%2f", "//healthz"]) {
      const r = await http(pub, "GET", p);
      assert.ok(r.status < 500, `${p} → ${r.status}`);
      assert.doesNotMatch(r.body, /root:|at .*\.ts:\d+/);
    }
  });

  it("security headers are set", async () => {
    const r = await http(pub, "GET", "/healthz");
    assert.equal(r.headers["x-content-type-options"], "nosniff");
    assert.ok(r.headers["x-frame-options"]);
  });

  it("a slow client that never finishes its headers is cut off", { timeout: 30_000 }, async () => {
    const t0 = Date.now();
    const closed = await new Promise<boolean>((resolve) => {
      const sock = connect(pub.port, "127.0.0.1", () => sock.write("GET /healthz HTTP/1.1\r\nHost: x\r\n"));
      sock.on("close", () => resolve(true));
      // Node answers 408 Request Timeout (and closes) once the headers timeout passes.
      sock.on("data", (d) => d.toString().startsWith("HTTP/1.1 408") && (sock.destroy(), resolve(true)));
      setTimeout(() => resolve(false), HEADERS_TIMEOUT_MS + 5_000);
    });
    assert.ok(closed);
    assert.ok(Date.now() - t0 >= HEADERS_TIMEOUT_MS - 1_000);
  });

  it("a few thousand random requests: no 5xx, no crash, no secret in a body", async () => {
    const methods = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"];
    const paths = ["/", "/healthz", "/readyz", "/metrics", "/.well-known/pilox-mesh.json", "/.well-known/pilox-mesh/keys.json", "/v1/bus/publish", "/x"];
    let seed = 42;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    const bad: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const method = methods[rnd(methods.length)]!;
      let path = paths[rnd(paths.length)]!;
      if (rnd(3) === 0) path += "?" + "q=" + encodeURIComponent(String.fromCharCode(...Array.from({ length: rnd(40) }, () => 32 + rnd(90))));
      const body = method === "GET" || method === "HEAD" ? undefined : Buffer.from(Array.from({ length: rnd(300) }, () => rnd(256)));
      const headers: Record<string, string> = rnd(2) ? { "content-type": "application/json" } : {};
      if (rnd(5) === 0) headers["if-none-match"] = "W/" + "x".repeat(rnd(100));
      const r = await http(pub, method, path, body, headers);
      if (r.status >= 500 && !(path.startsWith("/readyz") && r.status === 503)) bad.push(`${method} ${path} → ${r.status}`);
      if (r.body.includes(METRICS_TOKEN) || r.body.includes(SECRET_A)) bad.push(`${method} ${path} leaked a secret`);
    }
    assert.deepEqual(bad, []);
    assert.equal((await http(pub, "GET", "/healthz")).status, 200);
  });
});

describe("pilox-mesh discover", () => {
  it("verifies against a pinned key and prints the routes; refuses a wrong pin", async () => {
    const url = `http://127.0.0.1:${pub.port}`;
    const ok = await cli(["discover", url, "--public-key", app.identity.publicKeyHex]);
    assert.equal(ok.code, 0, ok.stderr);
    const routes = JSON.parse(ok.stdout);
    assert.equal(routes.instanceOrigin, "https://mesh-a.example");
    assert.equal(routes.verified, "pinned key");
    const wrong = await cli(["discover", url, "--public-key", "22".repeat(32)]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /does not verify with the pinned key/);
  });

  it("a stock (unsigned) Pilox document: refused by default, shown marked unsigned with --allow-unsigned; unreachable is 69", async () => {
    const { createServer } = await import("node:http");
    const stock = { schema: "pilox-mesh-descriptor-v1", meshV2: "2.10.0", instanceOrigin: "https://stock.example", a2aEnabled: false, a2a: null, federation: { enabled: false, phase: "2.0-config", transportActive: false, jwtAlg: null, localEd25519PublicKeyHex: null, directoryUrl: null, federationStatusUrl: "https://stock.example/api/mesh/federation/status", wanMesh: null }, publicMesh: { bootstrapMeshDescriptorUrls: [] } };
    const srv = createServer((_q, r) => r.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(stock)));
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as { port: number }).port;
    try {
      const refused = await cli(["discover", `http://127.0.0.1:${port}`]);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /unsigned document[\s\S]*--allow-unsigned/);
      const shown = await cli(["discover", `http://127.0.0.1:${port}`, "--allow-unsigned"]);
      assert.equal(shown.code, 0, shown.stderr);
      assert.equal(JSON.parse(shown.stdout).verified, "unsigned");
      assert.equal(JSON.parse(shown.stdout).instanceOrigin, "https://stock.example");
      assert.match(shown.stderr, /UNSIGNED/);
    } finally {
      srv.close();
    }
    const gone = await cli(["discover", `http://127.0.0.1:${port}`]);
    assert.equal(gone.code, 69, gone.stderr);
    assert.match(gone.stderr, /cannot reach/);
  });

  it("on first contact prints the fingerprint to check", async () => {
    const r = await cli(["discover", `http://127.0.0.1:${pub.port}/.well-known/pilox-mesh.json`]);
    assert.equal(r.code, 0);
    assert.match(r.stderr, new RegExp(`first contact.*\\n\\s+${app.identity.publicKeyHex}`));
  });
});
