/** `resolve HANDLE`: the verified route to an agent, through registries and its descriptor. */
import { loadConfig } from "../../config/index.ts";
import { resolveHandle } from "../../resolve/index.ts";
import { EXIT, intFlag, loadOptions, parse, UsageError, type Io } from "../args.ts";

export const RESOLVE_USAGE = `usage: pilox-mesh resolve HANDLE [--registry URL]… [--json] [--allow-private] [--accept-proof-v1] [--timeout S]
  Asks every registry (--registry, else the configuration's gateway.registries) for HANDLE's
  record, verifies its proofs (v1, and v2: the author's key), fetches its mesh descriptor and
  checks that the document is signed by a key the record lists, then prints the routes the
  document advertises (federation relay, gateway, A2A, registry), which registry answered,
  any that disagree, and why each other candidate was refused. --json for scripts.
  --allow-private lets the fetches reach private, loopback and link-local addresses.
  --accept-proof-v1 trusts the registries given (else gateway.accept_proof_v1_from) for records
  with only the reference's proof v1 (stock Pilox registries): it proves consistency, not
  authorship, and their descriptors may be unsigned; the output says what was verified.
  exit 0 resolved, 1 no valid route, 69 no registry reachable`;

export async function resolve(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, { registry: { type: "string", multiple: true }, json: { type: "boolean" }, "allow-private": { type: "boolean" }, "accept-proof-v1": { type: "boolean" }, timeout: { type: "string" } }, true);
  if (positionals.length !== 1) throw new UsageError(RESOLVE_USAGE);
  const handle = positionals[0]!;
  let registries = values.registry ?? [];
  let acceptProofV1From: string[] = values["accept-proof-v1"] ? registries : [];
  if (registries.length === 0) {
    try {
      const g = loadConfig(loadOptions(values)).config.gateway;
      registries = g.registries;
      acceptProofV1From = values["accept-proof-v1"] ? registries : g.accept_proof_v1_from;
    } catch {
      registries = [];
    }
  }
  if (registries.length === 0) throw new UsageError("give --registry URL (or set gateway.registries in the configuration)");
  for (const r of registries) if (!/^https?:\/\/[^?#\s]+$/.test(r)) throw new UsageError(`not an http(s) URL: ${r}`);
  const timeout = intFlag(values.timeout, "--timeout", 1, 120) ?? 5;
  const r = await resolveHandle(handle, { registries, acceptProofV1From, allowPrivate: values["allow-private"] === true, timeoutMs: timeout * 1000 });
  if (values.json) {
    io.stdout(JSON.stringify(r.ok ? r.value : { error: r.reason, refused: r.refused }, null, 2) + "\n");
  } else if (r.ok) {
    const v = r.value;
    const lines = [
      `handle:          ${v.handle}`,
      `record:          from ${v.record.registry} (seq ${v.record.seq}, updated ${v.record.updatedAt}), signed by ${v.record.signerPublicKeyHex.slice(0, 16)}…${v.record.countersignedBy ? `, countersigned by ${v.record.countersignedBy.slice(0, 16)}…` : ""}`,
      `verified:        ${v.verified.record === "v2" ? "record proof v2 (the author's key over the whole record)" : "record proof v1 only (consistency, not authorship; taken because this registry is trusted)"}; descriptor ${v.verified.descriptor === "signed" ? "signed by a key the record lists" : "UNSIGNED (stock; trusted for its origin only)"}`,
      `descriptor:      ${v.descriptor.url}${v.verified.descriptor === "signed" ? ` (signed, kid ${v.descriptor.kid})` : " (unsigned)"}`,
      `federation:      ${v.routes.federationRelay ?? "-"}`,
      `gateway:         ${v.routes.gateway?.jsonRpcUrl ?? "-"}`,
      `a2a:             ${v.routes.a2a?.jsonRpcUrl ?? v.routes.a2a?.publicJsonRpcUrl ?? "-"}`,
      `registry:        ${v.routes.registry ?? "-"}`,
    ];
    for (const d of v.disagreements) lines.push(`disagrees:       ${d.registry} has seq ${d.seq}, updated ${d.updatedAt}`);
    for (const x of v.refused) lines.push(`refused:         ${x.source}: ${x.reason}`);
    io.stdout(lines.join("\n") + "\n");
  } else {
    io.stderr(`pilox-mesh resolve: ${r.reason}\n${r.refused.map((x) => `  ${x.source}: ${x.reason}`).join("\n")}\n`);
  }
  if (r.ok) return EXIT.ok;
  return r.unreachable ? EXIT.unavailable : EXIT.failure;
}
