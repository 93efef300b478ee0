/**
 * The alert rules and the Grafana dashboard that ship in the package: promtool checks the rules
 * and runs their unit tests (Debian's prometheus package), and every metric a rule or a panel
 * queries is one a running appliance exports (read from its live /metrics).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import type { Appliance } from "../src/daemon/appliance.ts";
import { http, startAppliance } from "./helpers/appliance.ts";
import { ROOT } from "./helpers/cli.ts";
import { scratch } from "./helpers/tmp.ts";

const s = scratch();
let app: Appliance;
before(async () => {
  s.write("m.toml", `[http]\nlisten = "127.0.0.1:0"\n[api]\nsocket = "${s.path("m.sock")}"\n`);
  app = await startAppliance(s.path("m.toml"), s.path("m-state"));
});
after(async () => {
  await app?.stop(200);
  s.cleanup();
});

const ALERTS = `${ROOT}/packaging/prometheus/alerts.yml`;
const DASHBOARD = `${ROOT}/packaging/grafana/pilox-mesh.json`;

/** The metric names a PromQL text queries (histogram series by their family name). */
function metricsIn(text: string): string[] {
  return [...new Set([...text.matchAll(/\bpilox_mesh_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, "")))];
}

describe("monitoring that ships", { timeout: 60_000 }, () => {
  it("promtool checks the alert rules and passes their unit tests", () => {
    const check = spawnSync("promtool", ["check", "rules", ALERTS], { encoding: "utf8" });
    assert.equal(check.status, 0, check.stdout + check.stderr);
    const t = spawnSync("promtool", ["test", "rules", "alerts.test.yml"], { cwd: `${ROOT}/packaging/prometheus`, encoding: "utf8" });
    assert.equal(t.status, 0, t.stdout + t.stderr);
    assert.match(t.stdout + t.stderr, /SUCCESS/);
  });

  it("every metric the rules and the dashboard query is exported by a running appliance", async () => {
    const live = (await http({ port: app.listeners[1]!.port! }, "GET", "/metrics")).body;
    const families = new Set([...live.matchAll(/^# TYPE (pilox_mesh_[a-z0-9_]+) /gm)].map((m) => m[1]!));
    assert.ok(families.size > 20, "the appliance exports its families");
    const dashboard = JSON.parse(readFileSync(DASHBOARD, "utf8")) as { panels: { title: string; targets: { expr: string }[] }[] };
    assert.ok(dashboard.panels.length >= 10);
    const queried = [...metricsIn(readFileSync(ALERTS, "utf8")), ...dashboard.panels.flatMap((p) => p.targets.flatMap((t) => metricsIn(t.expr)))];
    const missing = [...new Set(queried)].filter((m) => !families.has(m));
    assert.deepEqual(missing, [], "queried but not exported");
    for (const p of dashboard.panels) assert.ok(p.targets.length > 0, `${p.title} queries something`);
  });
});
