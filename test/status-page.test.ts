/**
 * The status page in a real headless Chromium (Debian's chromium): it renders the peers of a
 * two-site setup under its strict CSP (no violation), and a peer's link going down changes its
 * state on the page within 5 s. Off by default; behind the metrics token when one is set.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import type { Appliance } from "../src/daemon/appliance.ts";
import { createKeyFile, type Ed25519Key } from "../src/identity/index.ts";
import { http, startAppliance } from "./helpers/appliance.ts";
import { waitFor } from "./helpers/bus.ts";
import { freePort } from "./helpers/redis.ts";
import { scratch, SECRET_A, SECRET_B } from "./helpers/tmp.ts";

const run = promisify(execFile);
const s = scratch();
const port = { a: 0, b: 0 };
const key: Partial<Record<"a" | "b", Ed25519Key>> = {};
let a: Appliance, b: Appliance | undefined;
const origin = (n: "a" | "b") => `http://127.0.0.1:${port[n]}`;

function config(n: "a" | "b", peer: "a" | "b", extra: string): string {
  return s.write(
    `${n}.toml`,
    `[instance]\norigin = "${origin(n)}"\nkey_file = "${s.path(`${n}.key`)}"\n[http]\nlisten = "127.0.0.1:${port[n]}"\n${extra}[api]\nsocket = "${s.path(`${n}.sock`)}"\n[[bus.keys]]\nid = "${n}1"\nsecret_file = "${s.path(`${n}-bus.key`)}"\n` +
      `[[federation.peers]]\norigin = "${origin(peer)}"\npublic_keys = ["${key[peer]!.publicKeyHex}"]\naccept_channels = ["jobs"]\nforward_channels = ["jobs"]\n`,
  );
}

/** The page as Chromium renders it after its script ran (its DOM), and what the console said. */
async function render(url: string): Promise<string> {
  const r = await run("chromium", ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--user-data-dir=" + s.path("chromium"), "--virtual-time-budget=3000", "--dump-dom", url], { timeout: 60_000, maxBuffer: 8 * 1024 * 1024 });
  return r.stdout;
}

const stateOf = (dom: string, peer: string) => new RegExp(`<tr data-peer="${peer.replace(/[.]/g, "\\.")}" data-state="(\\w+)"`).exec(dom)?.[1];

before(async () => {
  [port.a, port.b] = [await freePort(), await freePort()];
  for (const n of ["a", "b"] as const) key[n] = createKeyFile(s.path(`${n}.key`));
  s.write("a-bus.key", SECRET_A);
  s.write("b-bus.key", SECRET_B);
  a = await startAppliance(config("a", "b", "status_page = true\n"), s.path("a-state"));
  b = await startAppliance(config("b", "a", ""), s.path("b-state"));
});
after(async () => {
  await a?.stop(200);
  await b?.stop(200);
  s.cleanup();
});

describe("the status page", { timeout: 120_000 }, () => {
  it("is off unless configured, and served with a strict CSP", async () => {
    assert.equal((await http({ port: port.b }, "GET", "/")).status, 404, "off by default");
    const r = await http({ port: port.a }, "GET", "/");
    assert.equal(r.status, 200);
    assert.match(String(r.headers["content-security-policy"]), /^default-src 'none'; script-src 'sha256-[^']+'; style-src 'sha256-[^']+'; connect-src 'self'/);
    assert.doesNotMatch(r.body, /<(script|link|img)[^>]+(src|href)=/, "no external asset");
  });

  it("renders the peers of a two-site setup in Chromium, and a link going down within 5 s", async () => {
    // Traffic A → B, so the relay has a link state to show.
    await a.bus.publish("jobs", { n: 1 });
    await waitFor(async () => (await http({ port: port.a }, "GET", "/v1/status-page.json")).json.peers[0]?.up === true, 15_000, "A's link to B up");
    const up = await render(`${origin("a")}/`);
    assert.match(up, new RegExp(`<h1 id="site">${origin("a")}</h1>`), "the script ran under the CSP");
    assert.equal(stateOf(up, origin("b")), "up");
    assert.match(up, /<line [^>]*stroke="#17803d"[^>]*data-peer=/, "the topology draws the link, green");

    await b!.stop(200);
    b = undefined;
    const down = Date.now();
    await a.bus.publish("jobs", { n: 2 }); // the next delivery finds B gone
    let dom = "";
    await waitFor(async () => stateOf((dom = await render(`${origin("a")}/`)), origin("b")) === "down", 20_000, "B shown down");
    const took = Date.now() - down;
    assert.ok(took < 5_000 + 3_000, `shown down ${took} ms after the link went (5 s, plus Chromium's own start)`);
    assert.match(dom, /<line [^>]*stroke="#c0262d"[^>]*data-peer=/);
  });
});
