/**
 * The layers of src/, lowest first (docs/architecture.md). A folder may import its own layer
 * and the ones below it, never one above; and no two folders may depend on each other, whatever
 * their layers (no folder cycle). `npm test` runs this check (test/run.sh).
 */
const LAYERS = [
  ["version.ts", "canon", "json", "schema", "random", "log", "secrets", "net", "redis"],
  ["identity", "metrics"],
  ["bus"],
  ["config"],
  ["discovery"],
  ["federation"],
  ["registry", "resolve", "gateway", "wan", "http"],
  ["daemon"],
  ["cli", "index.ts"],
];

const pathOf = (names) => `^src/(${names.map((n) => n.replace(".", "\\.")).join("|")})(/|$)`;

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-folder-cycles",
      severity: "error",
      comment: "Folders under src/ depend on each other one way.",
      scope: "folder",
      from: { path: "^src/" },
      to: { circular: true },
    },
    ...LAYERS.slice(0, -1).map((layer, i) => ({
      name: `layer-${i}-imports-no-higher-layer`,
      severity: "error",
      comment: `${layer.join(", ")} may not import ${LAYERS.slice(i + 1).flat().join(", ")} (a lower layer never imports a higher one).`,
      from: { path: pathOf(layer) },
      to: { path: pathOf(LAYERS.slice(i + 1).flat()) },
    })),
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "\\.test\\.ts$" },
    // TypeScript 7 (native) is not a parser dependency-cruiser takes (it wants < 7): swc parses.
    parser: "swc",
    tsPreCompilationDeps: true,
  },
};
