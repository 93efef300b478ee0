/** `discover URL`: fetch a peer's discovery document, check its signature, print its routes. */
import { checkDocument, DISCOVERY_PATH } from "../../discovery/index.ts";
import { parseJson } from "../../json/index.ts";
import { BodyTooLargeError, readBounded } from "../../net/index.ts";
import { EXIT, intFlag, parse, UsageError, type Io } from "../args.ts";

const MAX_DOC_BYTES = 256 * 1024;

export const DISCOVER_USAGE = `usage: pilox-mesh discover URL [--public-key HEX] [--allow-unsigned] [--timeout S]
  Fetches URL's /.well-known/pilox-mesh.json and checks its documentSignature: against
  --public-key when given (pin it), else against the key it advertises (first contact: the
  fingerprint is printed to check out of band). Prints the routes as JSON.
  --allow-unsigned   also show a stock Pilox document (it has no signature), marked unsigned
  exit 0 verified (or unsigned, shown with --allow-unsigned), 1 refused, 69 unreachable`;

export async function discover(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { "public-key": { type: "string" }, timeout: { type: "string" }, "allow-unsigned": { type: "boolean" } }, true);
  if (positionals.length !== 1) throw new UsageError(DISCOVER_USAGE);
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
  const timeoutS = intFlag(values.timeout, "--timeout", 1, 120) ?? 10;
  const got = await fetchDocument(url, timeoutS);
  if (!got.ok) {
    io.stderr(`pilox-mesh discover: ${got.error}\n`);
    return got.code;
  }
  const doc = got.doc;
  const check = checkDocument(doc, pinned);
  if (!check.ok && check.unsigned && values["allow-unsigned"]) {
    io.stderr("pilox-mesh discover: UNSIGNED document (a stock Pilox instance): nothing below is authenticated\n");
    io.stdout(JSON.stringify({ ...routesOf(doc), verified: "unsigned" }, null, 2) + "\n");
    return EXIT.ok;
  }
  if (!check.ok) {
    io.stderr(`pilox-mesh discover: ${check.reason}\n`);
    if (check.unsigned) io.stderr("(a stock Pilox document is unsigned: --allow-unsigned shows it, marked unsigned)\n");
    if (!pinned && check.publicKeyHex) io.stderr(`advertised key ${check.publicKeyHex}\n`);
    return EXIT.failure;
  }
  if (!pinned) {
    io.stderr(`first contact: the document is signed by the key it advertises. Pin it only after checking this fingerprint out of band:\n  ${check.publicKeyHex}  (kid ${check.kid})\n`);
  }
  const routes = {
    ...routesOf(doc),
    verified: pinned ? "pinned key" : "self-signed (not pinned)",
    kid: check.kid,
    publicKeyHex: check.publicKeyHex,
  };
  io.stdout(JSON.stringify(routes, null, 2) + "\n");
  return EXIT.ok;
}

/** A peer's discovery document, read within a bound; or why not, with the exit code to give. */
export async function fetchDocument(url: URL, timeoutS: number): Promise<{ ok: true; doc: Record<string, any> } | { ok: false; error: string; code: number }> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutS * 1000), redirect: "error" });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return { ok: false, error: `cannot reach ${url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, code: EXIT.unavailable };
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    return { ok: false, error: `${url} answered ${res.status}`, code: EXIT.unavailable };
  }
  let text: string;
  try {
    text = await readBounded(res, MAX_DOC_BYTES, String(url));
  } catch (err) {
    if (!(err instanceof BodyTooLargeError)) throw err;
    return { ok: false, error: `document larger than ${MAX_DOC_BYTES} bytes`, code: EXIT.failure };
  }
  const parsed = parseJson(text, 32);
  if (!parsed.ok || parsed.value === null || typeof parsed.value !== "object" || Array.isArray(parsed.value)) return { ok: false, error: "the document is not a JSON object", code: EXIT.failure };
  return { ok: true, doc: parsed.value as Record<string, any> };
}

function routesOf(doc: Record<string, any>) {
  return {
    instanceOrigin: doc["instanceOrigin"],
    federation: doc["federation"],
    keysUrl: doc["instanceKeys"]?.keysUrl ?? null,
    nextKey: doc["instanceKeys"]?.next ?? null,
    tokenPolicy: doc["tokenPolicy"] ?? null,
    federationEndpoints: doc["federationEndpoints"] ?? null,
    // How the peer is reached over NATS JetStream (null: the HTTPS relay only).
    wan: doc["wan"] ?? null,
    bootstrapMeshDescriptorUrls: doc["publicMesh"]?.bootstrapMeshDescriptorUrls ?? [],
  };
}
