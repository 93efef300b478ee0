/**
 * A JSON object: a plain object, not an array (`typeof [] === "object"`) nor a class instance.
 * (No schema library here: the stores that use this folder run under Deno without one.)
 */
export function isJsonObject(x: unknown): x is Record<string, unknown> {
  if (x === null || typeof x !== "object" || Array.isArray(x)) return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}
