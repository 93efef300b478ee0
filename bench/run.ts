/** `npm run bench` runs every benchmark; `npm run bench -- NAME` runs one. */
const BENCHES: Record<string, () => Promise<{ run: () => Promise<void> }>> = {
  "bus.pubsub": () => import("./bus.pubsub.ts"),
  "bus.durable": () => import("./bus.durable.ts"),
  "bus.embedded": () => import("./bus.embedded.ts"),
  "bus.replay_memory": () => import("./bus.replay_memory.ts"),
  "http.discovery": () => import("./http.discovery.ts"),
  binary: () => import("./binary.ts"),
  "federation.verify": () => import("./federation.verify.ts"),
  "federation.relay": () => import("./federation.relay.ts"),
  "registry.pgclient": () => import("./registry.pgclient.ts"),
  "registry.get": () => import("./registry.get.ts"),
  "registry.sync": () => import("./registry.sync.ts"),
  gateway: () => import("./gateway.ts"),
  resolve: () => import("./resolve.ts"),
  wan: () => import("./wan.ts"),
  "wan.cluster": () => import("./wan.cluster.ts"),
  "wan.scale": () => import("./wan.scale.ts"),
  scale: () => import("./scale.ts"),
};

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !BENCHES[w]);
if (unknown.length) {
  process.stderr.write(`unknown benchmark(s): ${unknown.join(", ")}\navailable: ${Object.keys(BENCHES).join(", ")}\n`);
  process.exit(2);
}
for (const name of wanted.length ? wanted : Object.keys(BENCHES)) {
  const m = await BENCHES[name]!();
  await m.run();
}
process.exit(0);
