/**
 * `registry.verify_origin`: the record's origin (of its mesh descriptor URL, else of its agent
 * card URL) must serve a signed discovery document that lists the key that signed the record,
 * as its current or next instance key. Fetched through the SSRF guard.
 */
import { checkDocument, DISCOVERY_PATH } from "../discovery/index.ts";
import { parseJson } from "../json/index.ts";
import { guardedGet } from "../net/index.ts";
import type { RegistryRecord } from "./record.ts";

/** undefined when the origin vouches for the key, else the refusal reason. */
export async function originRefusal(rec: RegistryRecord, publicKeyHex: string, o: { allowPrivate: boolean; timeoutMs?: number }): Promise<string | undefined> {
  const origin = new URL(rec.meshDescriptorUrl ?? rec.agentCardUrl).origin;
  let res: { status: number; body: string };
  try {
    res = await guardedGet(origin + DISCOVERY_PATH, { allowPrivate: o.allowPrivate, timeoutMs: o.timeoutMs ?? 5_000, maxBytes: 256 * 1024 });
  } catch (err) {
    return `origin_unreachable: ${(err as Error).message}`;
  }
  if (res.status !== 200) return `origin_unreachable: ${origin}${DISCOVERY_PATH} answered ${res.status}`;
  const doc = parseJson(res.body, 32);
  if (!doc.ok) return "origin_document_invalid: not JSON";
  const check = checkDocument(doc.value);
  if (!check.ok) return `origin_document_invalid: ${check.reason}`;
  const d = doc.value as { instanceKeys?: { current?: { publicKeyHex?: unknown }; next?: { publicKeyHex?: unknown } | null } };
  const listed = [d.instanceKeys?.current?.publicKeyHex, d.instanceKeys?.next?.publicKeyHex, check.publicKeyHex].filter((k): k is string => typeof k === "string").map((k) => k.toLowerCase());
  return listed.includes(publicKeyHex.toLowerCase()) ? undefined : `origin_does_not_list_key: ${origin} does not list the key that signed the record`;
}
