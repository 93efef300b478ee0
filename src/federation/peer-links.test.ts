import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { MeshBus } from "../bus/index.ts";
import { silentLogger } from "../log/index.ts";
import { forwarderGroup } from "./peer-id.ts";
import { PeerLinks, type PeerLink } from "./peer-links.ts";
import type { Peer } from "./peers.ts";

function peer(origin: string, transport: Peer["transport"], forward: string[]): Peer {
  return { origin, url: origin, keys: [], accept: new Set(), forward: new Set(forward), ratePerSecond: 1, transport };
}

class FakeLink implements PeerLink {
  readonly events: string[] = [];
  constructor(public peer: Peer, log: string[]) {
    this.events = log;
  }
  async start() {
    this.events.push(`start ${this.peer.origin}`);
  }
  async update(p: Peer) {
    this.peer = p;
    this.events.push(`update ${p.origin} ${[...p.forward].join(",")}`);
  }
  async close() {
    this.events.push(`close ${this.peer.origin}`);
  }
}

function setup(transport: Peer["transport"]) {
  const events: string[] = [];
  const bus = {
    isDurable: (ch: string) => ch.startsWith("d"),
    backend: {
      dropGroup: async (ch: string, group: string) => {
        events.push(`drop ${ch} ${group}`);
      },
    },
  } as unknown as MeshBus;
  const seen: string[] = [];
  const links = new PeerLinks<FakeLink>({ transport, open: (p) => new FakeLink(p, events), onPeer: (p) => seen.push(p.origin), bus: () => bus, log: silentLogger });
  return { events, links, seen };
}

const map = (...ps: Peer[]) => new Map(ps.map((p) => [p.origin, p]));

describe("PeerLinks: one rule for every transport's per-peer links", () => {
  it("opens a link for each peer of its transport with channels to forward, and no other", async () => {
    const { events, links, seen } = setup("wan");
    await links.apply(map(peer("https://a", "wan", ["d1"]), peer("https://b", "relay", ["d1"]), peer("https://c", "wan", [])));
    assert.deepEqual(events, ["start https://a"]);
    assert.deepEqual(seen, ["https://a", "https://c"]);
    assert.deepEqual([...links.entries()].map(([o]) => o), ["https://a"]);
  });

  it("updates a changed peer in place", async () => {
    const { events, links } = setup("relay");
    await links.apply(map(peer("https://a", "relay", ["d1"])));
    await links.apply(map(peer("https://a", "relay", ["d1", "d2"])));
    assert.deepEqual(events, ["start https://a", "update https://a d1,d2"]);
  });

  it("a removed peer, or one with nothing to forward, loses its link and its groups on durable channels", async () => {
    for (const next of [map(), map(peer("https://a", "relay", []))]) {
      const { events, links } = setup("relay");
      await links.apply(map(peer("https://a", "relay", ["d1", "p2", "d3"])));
      await links.apply(next);
      assert.deepEqual(events, ["start https://a", "close https://a", `drop d1 ${forwarderGroup("https://a")}`, `drop d3 ${forwarderGroup("https://a")}`]);
      assert.equal(links.get("https://a"), undefined);
    }
  });

  it("a peer moved to the other transport loses its link but keeps its groups (the other transport reads them)", async () => {
    const { events, links } = setup("relay");
    await links.apply(map(peer("https://a", "relay", ["d1"])));
    await links.apply(map(peer("https://a", "wan", ["d1"])));
    assert.deepEqual(events, ["start https://a", "close https://a"]);
  });

  it("closeAll closes every link once", async () => {
    const { events, links } = setup("wan");
    await links.apply(map(peer("https://a", "wan", ["d1"]), peer("https://b", "wan", ["d1"])));
    await links.closeAll();
    await links.closeAll();
    assert.deepEqual(events.filter((e) => e.startsWith("close")).sort(), ["close https://a", "close https://b"]);
  });
});
