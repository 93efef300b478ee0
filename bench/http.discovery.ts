/**
 * http.discovery: requests/s for GET /.well-known/pilox-mesh.json from the appliance, against a
 * bare node:http server returning the same bytes, both on the embedded Node 24 runtime, the
 * load generator in this process over keep-alive connections. Interleaved rounds, best round of
 * each side reported (medians printed too), as in bus.pubsub: on this shared machine single
 * runs of the same build ranged from 0.61 to 0.98.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../test/helpers/redis.ts";
import { BUNDLE_ARGV, requireBuild, runtimeNode, start, stop, versusBare, waitHttp } from "./http.ts";
import { reportRounds } from "./lib.ts";

const CONNECTIONS = 32;
const ROUND_MS = Number(process.env["BENCH_MS"] ?? 2_000);
const ROUNDS = Number(process.env["BENCH_ROUNDS"] ?? 5);

function fetchBody(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    request({ host: "127.0.0.1", port, path }, (res) => {
      let b = "";
      res.on("data", (d) => (b += d));
      res.on("end", () => resolve(b));
    })
      .on("error", reject)
      .end();
  });
}

export async function run(): Promise<void> {
  requireBuild();
  const node = runtimeNode();
  const dir = mkdtempSync(join(tmpdir(), "pilox-bench-"));
  const cfg = join(dir, "b.toml");
  writeFileSync(cfg, `[instance]\norigin = "https://bench.example"\n[api]\nsocket = "${join(dir, "api.sock")}"\n[log]\nlevel = "warn"\n`);
  const ours = await freePort();
  const mesh = start(node, [...BUNDLE_ARGV, "--config", cfg, "--state-dir", join(dir, "state"), "serve", "--listen", `127.0.0.1:${ours}`]);
  try {
    await waitHttp(ours);
    const body = await fetchBody(ours, "/.well-known/pilox-mesh.json");
    const r = await versusBare(node, ours, "/.well-known/pilox-mesh.json", body, { rounds: ROUNDS, roundMs: ROUND_MS, connections: CONNECTIONS });
    reportRounds("http.discovery", "req/s", r, { rounds: ROUNDS, round_ms: ROUND_MS, connections: CONNECTIONS, bytes: Buffer.byteLength(body), target_ratio: 0.7 });
  } finally {
    await stop(mesh);
    rmSync(dir, { recursive: true, force: true });
  }
}
