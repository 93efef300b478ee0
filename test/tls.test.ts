/** TLS on the public listener: served, certificate swapped by reload without a restart. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { request } from "node:https";
import { after, before, it } from "node:test";
import type { Appliance } from "../src/daemon/appliance.ts";
import { startAppliance } from "./helpers/appliance.ts";
import { scratch } from "./helpers/tmp.ts";

const s = scratch();
let app: Appliance;
let port: number;

function makeCert(cn: string): void {
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", `/CN=${cn}`, "-keyout", s.path("tls.key"), "-out", s.path("tls.crt")], { stdio: "ignore" });
  execFileSync("chmod", ["600", s.path("tls.key")]);
}

function get(path: string): Promise<{ status: number; cn: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, rejectUnauthorized: false, agent: false }, (res) => {
      const cn = String((res.socket as unknown as { getPeerCertificate(): { subject: { CN: string } } }).getPeerCertificate().subject.CN);
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, cn, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

before(async () => {
  makeCert("first.example");
  s.write("pilox-mesh.toml", `[http]\nlisten = "127.0.0.1:0"\ntls_cert_file = "${s.path("tls.crt")}"\ntls_key_file = "${s.path("tls.key")}"\n[api]\nsocket = "${s.path("api.sock")}"\n`);
  app = await startAppliance(s.path("pilox-mesh.toml"), s.path("state"));
  port = app.listeners[1]!.port!;
});
after(async () => {
  await app?.stop(200);
  s.cleanup();
});

it("serves the discovery document over TLS", async () => {
  const r = await get("/.well-known/pilox-mesh.json");
  assert.equal(r.status, 200);
  assert.equal(r.cn, "first.example");
  assert.equal(JSON.parse(r.body).schema, "pilox-mesh-descriptor-v1");
});

it("reload swaps the certificate for new connections", async () => {
  makeCert("second.example");
  assert.deepEqual(await app.reload(), { ok: true });
  assert.equal((await get("/healthz")).cn, "second.example");
});

it("a key file readable by others is refused at reload, and the old certificate stays", async () => {
  execFileSync("chmod", ["644", s.path("tls.key")]);
  const r = await app.reload();
  assert.equal(r.ok, false);
  assert.match((r as { error: string }).error, /http.tls_key_file: .*chmod 600/);
  assert.equal((await get("/healthz")).cn, "second.example");
});
