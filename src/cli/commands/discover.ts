/** `discover URL`: fetch a peer's discovery document, check its signature, print its routes. */
import { checkDocument, DISCOVERY_PATH } from "../../discovery/index.ts";
import { EXIT, parse, UsageError, type Io } from "../args.ts";

const MAX_DOC_BYTES = 256 * 1024;

export async function discover(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { "public-key": { type: "string" }, timeout: { type: "string" } }, true);
  if (positionals.length !== 1) throw new UsageError("usage: pilox-mesh discover URL [--public-key HEX]");
  let url: URL;
  try {
    url = new URL(positionals[0]!);
  } catch {
    throw new UsageError(`not a URL: ${positionals[0]}`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new UsageError("discover takes an http(s) URL");
  if (url.pathname === "/" || url.pathname === "") url.pathname = DISCOVERY_PATH;
  const pinned = values["public-key"];
  if (pinned !== undefined && !/^[0-9a-fA-F]{64}$/.test(pinned)) throw new UsageError("--public-key takes 64 hex characters");
  const res = await fetch(url, { signal: AbortSignal.timeout(Number(values.timeout ?? 10) * 1000), redirect: "error" });
  if (!res.ok) {
    io.stderr(`pilox-mesh discover: ${url} answered ${res.status}\n`);
    return EXIT.unavailable;
  }
  const text = await res.text();
  if (text.length > MAX_DOC_BYTES) {
    io.stderr(`pilox-mesh discover: document larger than ${MAX_DOC_BYTES} bytes\n`);
    return EXIT.failure;
  }
  let doc: Record<string, any>;
  try {
    doc = JSON.parse(text);
  } catch {
    io.stderr("pilox-mesh discover: the document is not JSON\n");
    return EXIT.failure;
  }
  const check = checkDocument(doc, pinned);
  if (!check.ok) {
    io.stderr(`pilox-mesh discover: ${check.reason}\n`);
    if (!pinned && check.publicKeyHex) io.stderr(`advertised key ${check.publicKeyHex}\n`);
    return EXIT.failure;
  }
  if (!pinned) {
    io.stderr(`first contact: the document is signed by the key it advertises. Pin it only after checking this fingerprint out of band:\n  ${check.publicKeyHex}  (kid ${check.kid})\n`);
  }
  const routes = {
    instanceOrigin: doc["instanceOrigin"],
    verified: pinned ? "pinned key" : "self-signed (not pinned)",
    kid: check.kid,
    publicKeyHex: check.publicKeyHex,
    federation: doc["federation"],
    keysUrl: doc["instanceKeys"]?.keysUrl ?? null,
    nextKey: doc["instanceKeys"]?.next ?? null,
    tokenPolicy: doc["tokenPolicy"] ?? null,
    federationEndpoints: doc["federationEndpoints"] ?? null,
    bootstrapMeshDescriptorUrls: doc["publicMesh"]?.bootstrapMeshDescriptorUrls ?? [],
  };
  io.stdout(JSON.stringify(routes, null, 2) + "\n");
  return EXIT.ok;
}
